// write_layer_diff (layer_diff.h) on two trees made here: exactly the
// changed entries, their parents, and whiteouts for what is gone; digests
// that are the file's and the uncompressed tar's sha256; the same trees give
// the same bytes.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>

#include "common/fs.h"
#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"
#include "worker/pusher/layer_diff.h"

namespace kiln::pusher {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// name -> content ("<dir>", "-> TARGET" for symlinks) of a gzip tar.
std::map<std::string, std::string> entries_of(const std::string& path) {
  std::map<std::string, std::string> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 1 << 16), ARCHIVE_OK);
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    if (archive_entry_filetype(e) == AE_IFDIR) {
      out[name] = "<dir>";
    } else if (archive_entry_filetype(e) == AE_IFLNK) {
      out[name] = std::string("-> ") + archive_entry_symlink(e);
    } else {
      std::string data(static_cast<std::size_t>(archive_entry_size(e)), '\0');
      archive_read_data(a, data.data(), data.size());
      out[name] = data;
    }
  }
  archive_read_free(a);
  return out;
}

void set_mtime(const std::string& path, time_t t) {
  timespec times[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
}

TEST(LayerDiffTest, WritesChangesParentsAndWhiteoutsOnly) {
  ids::TempTree tree;
  for (const char* root : {"lower", "upper"}) {
    std::string r = root;
    tree.file(r + "/etc/passwd", "root:x:0:0\n");
    tree.file(r + "/usr/bin/tool", "v1", 0755);
    tree.file(r + "/app/copied", "aaaa");  // a copy step's file: mtime 0
    tree.file(r + "/same/file", "same");
    tree.file(r + "/gone/deep/file", "x");
    tree.file(r + "/bin/vi", "vi");
    set_mtime(tree.host(r + "/app/copied"), 0);
    set_mtime(tree.host(r + "/etc/passwd"), 1000);
    set_mtime(tree.host(r + "/usr/bin/tool"), 1000);
    set_mtime(tree.host(r + "/same/file"), 1000);
  }
  // Directories' mtimes equal on both sides, so that only content decides.
  tree.file("upper/usr/bin/tool", "v2.0", 0755);  // changed size
  tree.file("upper/app/copied", "bbbb");          // same size and mtime 0: content compared
  set_mtime(tree.host("upper/app/copied"), 0);
  std::filesystem::remove_all(tree.host("upper/gone"));  // a whole directory
  std::filesystem::remove(tree.host("upper/bin/vi"));    // a file
  tree.symlink("upper/app/link", "copied");              // new
  set_mtime(tree.host("upper/usr/bin/tool"), 1000);
  for (const char* d : {"etc", "usr", "usr/bin", "app", "same", "bin", ""}) {
    set_mtime(tree.host(std::string("lower/") + d), 500);
    set_mtime(tree.host(std::string("upper/") + d), 500);
  }

  auto blob = write_layer_diff(tree.host("lower"), tree.host("upper"), tree.host("layer.tar.gz"));
  ASSERT_TRUE(blob) << blob.error().to_string();
  EXPECT_THAT(entries_of(blob->path),
              ElementsAre(Pair(".wh.gone", ""), Pair("app/", "<dir>"), Pair("app/copied", "bbbb"),
                          Pair("app/link", "-> copied"), Pair("bin/", "<dir>"), Pair("bin/.wh.vi", ""),
                          Pair("usr/", "<dir>"), Pair("usr/bin/", "<dir>"), Pair("usr/bin/tool", "v2.0")))
      << "unchanged etc/ and same/ must not be in the layer";
  EXPECT_EQ(blob->entries, 9u);
  EXPECT_EQ(blob->digest, "sha256:" + sha256_hex(read_file(blob->path).value()));
  EXPECT_EQ(blob->size, read_file(blob->path).value().size());

  // Deterministic: the same trees give the same blob.
  auto again = write_layer_diff(tree.host("lower"), tree.host("upper"), tree.host("again.tar.gz"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->digest, blob->digest);
  EXPECT_EQ(again->diff_id, blob->diff_id);
  EXPECT_NE(blob->diff_id, blob->digest);

  // No lower tree: everything of upper.
  auto full = write_layer_diff("", tree.host("upper"), tree.host("full.tar.gz"));
  ASSERT_TRUE(full);
  EXPECT_EQ(entries_of(full->path).count("same/file"), 1u);
  EXPECT_EQ(entries_of(full->path).count("etc/passwd"), 1u);
}

}  // namespace
}  // namespace kiln::pusher
