#include "common/context/context_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <filesystem>
#include <map>
#include <fstream>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "common/context/internal/utf8_locale.h"
#include "common/sha256.h"
#include "tests/support/temp_dir.h"

namespace kiln::context {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

struct TarEntry {
  std::string path;
  unsigned type = 0;
  unsigned perm = 0;
  long mtime = -1;
  long uid = -1;
  std::string symlink;
  std::string content;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<TarEntry> read_tar(const std::string& path) {
  std::vector<TarEntry> entries;
  internal::Utf8Locale utf8;  // names are UTF-8, as the product's reader takes them
  auto in_utf8 = utf8.use();
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 10240), ARCHIVE_OK) << archive_error_string(a);
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    TarEntry e{.path = archive_entry_pathname(entry),
               .type = archive_entry_filetype(entry),
               .perm = archive_entry_perm(entry),
               .mtime = static_cast<long>(archive_entry_mtime(entry)),
               .uid = static_cast<long>(archive_entry_uid(entry))};
    if (const char* target = archive_entry_symlink(entry)) e.symlink = target;
    char buffer[4096];
    for (la_ssize_t n; (n = archive_read_data(a, buffer, sizeof buffer)) > 0;) e.content.append(buffer, n);
    entries.push_back(e);
  }
  archive_read_free(a);
  return entries;
}

class ContextTarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "ctx/scripts");
    write("ctx/greeting.txt", "hello\n");
    write("ctx/scripts/run.sh", "#!/bin/sh\necho hi\n");
    fs::permissions(dir_ / "ctx/scripts/run.sh", fs::perms(0755));
    fs::create_symlink("scripts/run.sh", dir_ / "ctx/run");
  }

  void write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ / rel, std::ios::binary) << text;
  }

  ContextTar tar_of(const std::string& rel, const std::string& out = "out.tar") {
    auto tar = write_context_tar((dir_ / rel).string(), (dir_ / out).string());
    EXPECT_TRUE(tar.has_value()) << tar.error().to_string();
    return tar.value_or(ContextTar{});
  }

  kiln::testing::TempDir temp_{"kiln-context-tar"};
  fs::path dir_{temp_.path()};
};

TEST_F(ContextTarTest, DigestIsTheSha256OfTheTarBytes) {
  ContextTar tar = tar_of("ctx");
  std::string bytes = read_all((dir_ / "out.tar").string());
  EXPECT_EQ(tar.size, bytes.size());
  EXPECT_EQ(tar.digest, "sha256:" + sha256_hex(bytes));
  EXPECT_EQ(tar.entries, 4u);
}

TEST_F(ContextTarTest, SameTreeGivesTheSameDigestWhateverTheTimesAndLocation) {
  ContextTar first = tar_of("ctx", "a.tar");
  // A copy made later, with other mtimes, in another directory.
  fs::copy(dir_ / "ctx", dir_ / "copy", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  struct utimbuf times {
    .actime = 1000000, .modtime = 2000000
  };
  ASSERT_EQ(::utime((dir_ / "copy/greeting.txt").c_str(), &times), 0);
  ContextTar second = tar_of("copy", "b.tar");
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_EQ(read_all((dir_ / "a.tar").string()), read_all((dir_ / "b.tar").string()));
}

TEST_F(ContextTarTest, ExecutableBitChangesTheDigest) {
  ContextTar before = tar_of("ctx");
  fs::permissions(dir_ / "ctx/greeting.txt", fs::perms::owner_exec, fs::perm_options::add);
  ContextTar after = tar_of("ctx");
  EXPECT_NE(before.digest, after.digest);
}

TEST_F(ContextTarTest, ContentChangeChangesTheDigest) {
  ContextTar before = tar_of("ctx");
  write("ctx/greeting.txt", "hullo\n");
  EXPECT_NE(before.digest, tar_of("ctx").digest);
}

TEST_F(ContextTarTest, GitAndKilnDirectoriesAreLeftOut) {
  ContextTar before = tar_of("ctx");
  fs::create_directories(dir_ / "ctx/.git/objects");
  write("ctx/.git/HEAD", "ref: refs/heads/main\n");
  fs::create_directories(dir_ / "ctx/scripts/.kiln");
  write("ctx/scripts/.kiln/state", "x");
  ContextTar after = tar_of("ctx");
  EXPECT_EQ(before.digest, after.digest);
  for (const TarEntry& e : read_tar((dir_ / "out.tar").string())) {
    EXPECT_EQ(e.path.find(".git"), std::string::npos) << e.path;
    EXPECT_EQ(e.path.find(".kiln"), std::string::npos) << e.path;
  }
}

TEST_F(ContextTarTest, EntriesAreSortedRelativeWithModesLinksAndNoOwnersOrTimes) {
  tar_of("ctx");
  std::vector<TarEntry> entries = read_tar((dir_ / "out.tar").string());
  std::vector<std::string> paths;
  for (const TarEntry& e : entries) paths.push_back(e.path);
  EXPECT_THAT(paths, ElementsAre("greeting.txt", "run", "scripts/", "scripts/run.sh"));
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].type, static_cast<unsigned>(AE_IFREG));
  EXPECT_EQ(entries[0].content, "hello\n");
  EXPECT_EQ(entries[1].type, static_cast<unsigned>(AE_IFLNK));
  EXPECT_EQ(entries[1].symlink, "scripts/run.sh");
  EXPECT_EQ(entries[2].type, static_cast<unsigned>(AE_IFDIR));
  EXPECT_EQ(entries[3].perm, 0755u);
  for (const TarEntry& e : entries) {
    EXPECT_EQ(e.mtime, 0) << e.path;
    EXPECT_EQ(e.uid, 0) << e.path;
  }
}

// Names that do not fit a ustar header (over 100 bytes with no split into a
// 155-byte prefix, non-ASCII) and long link targets go through pax extended
// headers; libarchive and GNU tar read them back as they were.
TEST_F(ContextTarTest, LongAndNonAsciiNamesAndLongLinkTargetsReadBackExactly) {
  const std::string deep = "d" + std::string(120, 'e') + "/" + std::string(99, 'f');  // splits: prefix + name
  const std::string unsplittable = std::string(180, 'g');                            // needs pax
  const std::string accented = "caf\xc3\xa9 \xe2\x98\x95.txt";
  const std::string long_target = std::string(150, 'h');
  fs::create_directories(dir_ / "ctx" / deep);
  write("ctx/" + deep + "/x", "deep\n");
  write("ctx/" + unsplittable, "long\n");
  write("ctx/" + accented, "utf8\n");
  fs::create_symlink(long_target, dir_ / "ctx/far");
  tar_of("ctx");
  std::map<std::string, TarEntry> by_path;
  for (const TarEntry& e : read_tar((dir_ / "out.tar").string())) by_path[e.path] = e;
  EXPECT_EQ(by_path[deep + "/x"].content, "deep\n");
  EXPECT_EQ(by_path[unsplittable].content, "long\n");
  EXPECT_EQ(by_path[accented].content, "utf8\n");
  EXPECT_EQ(by_path["far"].symlink, long_target);
  EXPECT_EQ(by_path[deep + "/"].type, static_cast<unsigned>(AE_IFDIR));
  EXPECT_EQ(by_path.size(), 10u);  // SetUp's 4, two directories, x, g..., café, far; no PaxHeader entries
  // GNU tar agrees, and finds the archive well formed.
  std::string listing = (dir_ / "list.txt").string();
  ASSERT_EQ(std::system(("tar -tf " + (dir_ / "out.tar").string() + " > " + listing).c_str()), 0);
  std::string names = read_all(listing);
  EXPECT_THAT(names, ::testing::HasSubstr(unsplittable + "\n"));
  EXPECT_THAT(names, ::testing::HasSubstr(deep + "/x\n"));
  EXPECT_THAT(names, ::testing::HasSubstr(accented + "\n"));
}

TEST_F(ContextTarTest, TheTarIsWholeRecordsEndingInTwoZeroRecords) {
  ContextTar tar = tar_of("ctx");
  std::string bytes = read_all((dir_ / "out.tar").string());
  ASSERT_EQ(bytes.size() % 512, 0u);
  ASSERT_GE(bytes.size(), 1024u);
  EXPECT_EQ(bytes.substr(bytes.size() - 1024), std::string(1024, '\0'));
  // Each header's checksum is what a reader computes.
  std::string_view first(bytes.data(), 512);
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(first[i]);
  EXPECT_EQ(std::stoul(std::string(first.substr(148, 6)), nullptr, 8), sum);
  EXPECT_EQ(first.substr(257, 6), std::string_view("ustar\0", 6));
  EXPECT_EQ(tar.entries, 4u);
}

TEST_F(ContextTarTest, SpecialFilesAreSkippedAndNamed) {
  ASSERT_EQ(::mkfifo((dir_ / "ctx/pipe").c_str(), 0644), 0);
  ContextTar tar = tar_of("ctx");
  EXPECT_THAT(tar.skipped, ElementsAre("pipe"));
  EXPECT_EQ(tar.entries, 4u);
}

TEST_F(ContextTarTest, MissingDirectoryIsAClearErrorAndLeavesNoOutput) {
  auto tar = write_context_tar((dir_ / "nope").string(), (dir_ / "out.tar").string());
  ASSERT_FALSE(tar.has_value());
  EXPECT_EQ(tar.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(tar.error().to_string(), ::testing::HasSubstr("nope"));
  EXPECT_FALSE(fs::exists(dir_ / "out.tar"));
}

}  // namespace
}  // namespace kiln::context
