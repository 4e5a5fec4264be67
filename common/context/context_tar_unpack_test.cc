// unpack_context_tar against tars written here with libarchive (RawTar): a normal
// context unpacks with its modes and links; every way out of the job
// directory is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/context/context_tar.h"
#include "common/context/raw_tar_for_test.h"
#include "common/fs.h"
#include "common/ids/temp_tree_for_test.h"

namespace kiln::context {
namespace {

using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  return read_file(path).value_or("(unreadable)");
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
    RawTar w(tar());
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
    RawTar w(tar());
    w.file("/etc/evil", "x");
  }
  expect_refused("absolute path");
  {
    RawTar w(tar());
    w.file("ok", "x").file("a/../../outside/secret", "overwritten");
  }
  expect_refused("\"..\"");
}

TEST_F(ContextUnpackTest, RefusesDevicesAndFifos) {
  {
    RawTar w(tar());
    w.device("null");
  }
  expect_refused("character device");
  {
    RawTar w(tar());
    w.fifo("pipe");
  }
  expect_refused("fifo");
}

TEST_F(ContextUnpackTest, RefusesSymlinksLeadingOutside) {
  {
    RawTar w(tar());
    w.symlink("etc", "/etc");
  }
  expect_refused("absolute path \"/etc\"");
  {
    RawTar w(tar());
    w.symlink("up", "../outside/secret");
  }
  expect_refused("leads outside the context");
  // Each link alone stays inside; followed together they leave.
  {
    RawTar w(tar());
    w.dir("s").symlink("s/b", "..").symlink("l", "s/b/../outside");
  }
  expect_refused("leads outside the context");
}

TEST_F(ContextUnpackTest, NeverWritesThroughASymlink) {
  {
    RawTar w(tar());
    w.symlink("d", "sub").dir("sub").file("d/file", "through the link");
  }
  expect_refused("a symlink or a file");
  EXPECT_FALSE(std::filesystem::exists(out() + "/sub/file"));
}

TEST_F(ContextUnpackTest, RefusesHardLinksToOutsideOrThroughSymlinks) {
  {
    RawTar w(tar());
    w.hardlink("h", "../outside/secret");
  }
  expect_refused("outside the context");
  {
    RawTar w(tar());
    w.symlink("o", "sub").dir("sub").file("sub/f", "x").hardlink("h", "o/f");
  }
  expect_refused("not a file unpacked before it");
  {
    RawTar w(tar());
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
}  // namespace kiln::context
