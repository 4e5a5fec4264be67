// Test helper: writes a tar entry by entry with libarchive, including what
// `kiln submit` never writes (absolute names, "..", devices, hard links,
// sparse files, duplicates, compression), to check what readers refuse.
//
//   {
//     RawTar w(tree.host("ctx.tar"));
//     w.dir("src").file("src/main.c", "int main() {}\n").symlink("link", "src/main.c");
//   }  // written when destroyed (or close())
//
// Failures are test failures (EXPECT). Thread safety: one thread.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>
#include <utility>

namespace kiln::context {

class RawTar {
 public:
  enum class Compression { kNone, kGzip };
  explicit RawTar(std::string path, Compression compression = Compression::kNone) : path_(std::move(path)) {
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    if (compression == Compression::kGzip) archive_write_add_filter_gzip(a_);
    archive_write_open_filename(a_, path_.c_str());
  }
  ~RawTar() { close(); }
  RawTar(const RawTar&) = delete;
  RawTar& operator=(const RawTar&) = delete;

  void close() {
    if (a_ == nullptr) return;
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
  }
  RawTar& dir(const std::string& name, mode_t perm = 0755) { return add(name, AE_IFDIR, perm, ""); }
  RawTar& file(const std::string& name, const std::string& content, mode_t perm = 0644) {
    return add(name, AE_IFREG, perm, content);
  }
  RawTar& symlink(const std::string& name, const std::string& target) {
    archive_entry* e = entry(name, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target.c_str());
    return write(e, "");
  }
  RawTar& hardlink(const std::string& name, const std::string& target, mode_t perm = 0644) {
    archive_entry* e = entry(name, AE_IFREG, perm);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    return write(e, "");
  }
  RawTar& device(const std::string& name) {
    archive_entry* e = entry(name, AE_IFCHR, 0666);
    archive_entry_set_rdev(e, makedev(1, 3));
    return write(e, "");
  }
  RawTar& fifo(const std::string& name) { return add(name, AE_IFIFO, 0644, ""); }
  // A file of `size` bytes whose only data is `content` at offset 0, the
  // rest a hole.
  RawTar& sparse_file(const std::string& name, const std::string& content, la_int64_t size) {
    archive_entry* e = entry(name, AE_IFREG, 0644);
    archive_entry_set_size(e, size);
    archive_entry_sparse_add_entry(e, 0, static_cast<la_int64_t>(content.size()));
    return write(e, content);
  }

 private:
  archive_entry* entry(const std::string& name, mode_t type, mode_t perm) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    return e;
  }
  RawTar& add(const std::string& name, mode_t type, mode_t perm, const std::string& content) {
    archive_entry* e = entry(name, type, perm);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    return write(e, content);
  }
  RawTar& write(archive_entry* e, const std::string& content) {
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    if (!content.empty()) archive_write_data(a_, content.data(), content.size());
    archive_entry_free(e);
    return *this;
  }

  std::string path_;
  archive* a_ = nullptr;
};

}  // namespace kiln::context
