// unpack_context_tar against tars written here with libarchive: a normal
// context unpacks with its modes and links; every way out of the job
// directory is refused.
#include "worker/daemon/context_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/ids/temp_tree_for_test.h"

namespace kiln::worker {
namespace {

using ::testing::HasSubstr;

// Writes a pax tar entry by entry.
class TarWriter {
 public:
  explicit TarWriter(std::string path) : path_(std::move(path)) {
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    archive_write_open_filename(a_, path_.c_str());
  }
  ~TarWriter() { close(); }
  void close() {
    if (a_ == nullptr) return;
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
  }
  TarWriter& dir(const std::string& name, mode_t perm = 0755) { return add(name, AE_IFDIR, perm, ""); }
  TarWriter& file(const std::string& name, const std::string& content, mode_t perm = 0644) {
    return add(name, AE_IFREG, perm, content);
  }
  TarWriter& symlink(const std::string& name, const std::string& target) {
    archive_entry* e = entry(name, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target.c_str());
    return write(e, "");
  }
  TarWriter& hardlink(const std::string& name, const std::string& target) {
    archive_entry* e = entry(name, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    return write(e, "");
  }
  TarWriter& device(const std::string& name) {
    archive_entry* e = entry(name, AE_IFCHR, 0666);
    archive_entry_set_rdev(e, makedev(1, 3));
    return write(e, "");
  }
  TarWriter& fifo(const std::string& name) { return add(name, AE_IFIFO, 0644, ""); }

 private:
  archive_entry* entry(const std::string& name, mode_t type, mode_t perm) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    return e;
  }
  TarWriter& add(const std::string& name, mode_t type, mode_t perm, const std::string& content) {
    archive_entry* e = entry(name, type, perm);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    return write(e, content);
  }
  TarWriter& write(archive_entry* e, const std::string& content) {
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    if (!content.empty()) archive_write_data(a_, content.data(), content.size());
    archive_entry_free(e);
    return *this;
  }

  std::string path_;
  archive* a_ = nullptr;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ContextUnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.dir("out");
    tree_.dir("outside");
    tree_.file("outside/secret", "host secret\n");
  }
  std::string tar() const { return tree_.host("ctx.tar"); }
  std::string out() const { return tree_.host("out"); }
  // Unpacks and expects a refusal mentioning `needle`.
  void expect_refused(const std::string& needle) {
    Status s = unpack_context_tar(tar(), out());
    ASSERT_FALSE(s) << "unpacked a context that " << needle;
    EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_THAT(s.error().to_string(), HasSubstr(needle));
    EXPECT_EQ(read_text(tree_.host("outside/secret")), "host secret\n");
  }

  ids::TempTree tree_;
};

TEST_F(ContextUnpackTest, UnpacksFilesDirectoriesLinksAndModes) {
  {
    TarWriter w(tar());
    w.dir("./").dir("src").file("src/main.c", "int main() {}\n").file("run.sh", "#!/bin/sh\n", 04755);
    w.symlink("src/link", "main.c").symlink("up", "src/../run.sh").hardlink("copy.c", "src/main.c");
    w.file("nested/deep/file", "made parents\n");
  }
  ASSERT_TRUE(unpack_context_tar(tar(), out()));
  EXPECT_EQ(read_text(out() + "/src/main.c"), "int main() {}\n");
  EXPECT_EQ(read_text(out() + "/copy.c"), "int main() {}\n");
  EXPECT_EQ(read_text(out() + "/nested/deep/file"), "made parents\n");
  EXPECT_EQ(std::filesystem::read_symlink(out() + "/src/link"), "main.c");
  EXPECT_EQ(std::filesystem::read_symlink(out() + "/up"), "src/../run.sh");
  struct stat st {};
  ASSERT_EQ(::stat((out() + "/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // executable, setuid dropped
  ASSERT_EQ(::stat((out() + "/src/main.c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(ContextUnpackTest, RefusesAbsoluteAndDotDotPaths) {
  {
    TarWriter w(tar());
    w.file("/etc/evil", "x");
  }
  expect_refused("absolute path");
  {
    TarWriter w(tar());
    w.file("ok", "x").file("a/../../outside/secret", "overwritten");
  }
  expect_refused("\"..\"");
}

TEST_F(ContextUnpackTest, RefusesDevicesAndFifos) {
  {
    TarWriter w(tar());
    w.device("null");
  }
  expect_refused("character device");
  {
    TarWriter w(tar());
    w.fifo("pipe");
  }
  expect_refused("fifo");
}

TEST_F(ContextUnpackTest, RefusesSymlinksLeadingOutside) {
  {
    TarWriter w(tar());
    w.symlink("etc", "/etc");
  }
  expect_refused("absolute path \"/etc\"");
  {
    TarWriter w(tar());
    w.symlink("up", "../outside/secret");
  }
  expect_refused("leads outside the context");
  // Each link alone stays inside; followed together they leave.
  {
    TarWriter w(tar());
    w.dir("s").symlink("s/b", "..").symlink("l", "s/b/../outside");
  }
  expect_refused("leads outside the context");
}

TEST_F(ContextUnpackTest, NeverWritesThroughASymlink) {
  {
    TarWriter w(tar());
    w.symlink("d", "sub").dir("sub").file("d/file", "through the link");
  }
  expect_refused("a symlink or a file");
  EXPECT_FALSE(std::filesystem::exists(out() + "/sub/file"));
}

TEST_F(ContextUnpackTest, RefusesHardLinksToOutsideOrThroughSymlinks) {
  {
    TarWriter w(tar());
    w.hardlink("h", "../outside/secret");
  }
  expect_refused("outside the context");
  {
    TarWriter w(tar());
    w.symlink("o", "sub").dir("sub").file("sub/f", "x").hardlink("h", "o/f");
  }
  expect_refused("not a file unpacked before it");
  {
    TarWriter w(tar());
    w.hardlink("h", "missing");
  }
  expect_refused("not a file unpacked before it");
}

TEST_F(ContextUnpackTest, CheckSymlinksFindsEscapesInAnyTree) {
  tree_.file("checked/a/file", "x");
  tree_.symlink("checked/a/ok", "file");
  EXPECT_TRUE(check_symlinks_stay_inside(tree_.host("checked")));
  tree_.symlink("checked/a/bad", "../../outside");
  Status s = check_symlinks_stay_inside(tree_.host("checked"));
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().to_string(), HasSubstr("a/bad"));
}

}  // namespace
}  // namespace kiln::worker
