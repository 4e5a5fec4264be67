// The filesystem helpers, on a scratch directory.
#include "common/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace kiln {
namespace {

namespace stdfs = std::filesystem;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class FsTest : public ::testing::Test {
 protected:
  std::string at(const std::string& rel) const { return dir_.path() + "/" + rel; }
  testing::TempDir dir_{"kiln-fs-test"};
};

TEST_F(FsTest, WriteThenReadAWholeFile) {
  ASSERT_TRUE(write_file(at("a"), "hello\n"));
  auto text = read_file(at("a"));
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_EQ(*text, "hello\n");
  // Truncates what was there.
  ASSERT_TRUE(write_file(at("a"), "x"));
  EXPECT_EQ(*read_file(at("a")), "x");
  // Large content, more than one read.
  std::string big(300'000, 'z');
  ASSERT_TRUE(write_file(at("big"), big));
  EXPECT_EQ(*read_file(at("big")), big);
}

TEST_F(FsTest, ReadFileHonoursItsSizeCap) {
  ASSERT_TRUE(write_file(at("a"), "12345"));
  EXPECT_EQ(*read_file(at("a"), 5), "12345");
  auto over = read_file(at("a"), 4);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(over.error().message().find(at("a")), std::string::npos) << over.error().message();
}

TEST_F(FsTest, ReadFileReadsProcFilesWholeAndNamesMissingOnes) {
  auto self = read_file("/proc/self/status");
  ASSERT_TRUE(self);
  EXPECT_NE(self->find("Pid:"), std::string::npos);
  auto missing = read_file(at("missing"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(missing.error().message().find(at("missing")), std::string::npos);
}

TEST_F(FsTest, WriteFileAppliesTheModeToNewFilesAndRefusesSymlinks) {
  mode_t old = ::umask(022);
  ASSERT_TRUE(write_file(at("secret"), "s", 0400));
  ASSERT_TRUE(write_file(at("wide"), "w", 0666));
  ::umask(old);
  EXPECT_EQ(mode_of(at("secret")), 0400u);
  EXPECT_EQ(mode_of(at("wide")), 0644u);

  ASSERT_TRUE(write_file(at("target"), "keep"));
  stdfs::create_symlink(at("target"), at("link"));
  EXPECT_FALSE(write_file(at("link"), "through the link"));
  EXPECT_EQ(*read_file(at("target")), "keep");
}

TEST_F(FsTest, WriteFileAtomicallyReplacesWithExactModeAndLeavesNoTemporary) {
  ASSERT_TRUE(write_file(at("state.json"), "old"));
  ASSERT_TRUE(write_file_atomically(at("state.json"), "new", 0640));
  EXPECT_EQ(*read_file(at("state.json")), "new");
  EXPECT_EQ(mode_of(at("state.json")), 0640u);
  auto names = list_dir(dir_.path());
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{"state.json"});

  auto failed = write_file_atomically(at("no/such/dir/file"), "x");
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find(at("no/such/dir/file")), std::string::npos);
}

TEST_F(FsTest, WriteAllWritesEverything) {
  UniqueFd fd(::open(at("out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write_all(fd.get(), std::string(100'000, 'q'), "out"));
  fd.reset();
  EXPECT_EQ(read_file(at("out"))->size(), 100'000u);
  auto bad = write_all(-1, "x", "nowhere");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("cannot write nowhere"), std::string::npos);
}

TEST_F(FsTest, EnsureDirAcceptsAnExistingDirectoryOnly) {
  ASSERT_TRUE(ensure_dir(at("d"), 0700));
  EXPECT_EQ(mode_of(at("d")), 0700u);
  EXPECT_TRUE(ensure_dir(at("d")));
  ASSERT_TRUE(write_file(at("f"), ""));
  auto on_file = ensure_dir(at("f"));
  ASSERT_FALSE(on_file);
  EXPECT_EQ(on_file.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_FALSE(ensure_dir(at("missing/parent")));
}

TEST_F(FsTest, EnsureDirsMakesEveryMissingParent) {
  mode_t old = ::umask(022);
  ASSERT_TRUE(ensure_dirs(at("a/b//c/"), 0700));
  ::umask(old);
  EXPECT_TRUE(stdfs::is_directory(at("a/b/c")));
  EXPECT_EQ(mode_of(at("a")), 0755u);
  EXPECT_EQ(mode_of(at("a/b/c")), 0700u);
  EXPECT_TRUE(ensure_dirs(at("a/b/c")));
  ASSERT_TRUE(write_file(at("a/file"), ""));
  EXPECT_FALSE(ensure_dirs(at("a/file/sub")));
}

TEST_F(FsTest, RemoveTreeRemovesEverythingButNothingThroughSymlinks) {
  ASSERT_TRUE(ensure_dirs(at("outside")));
  ASSERT_TRUE(write_file(at("outside/precious"), "keep"));
  ASSERT_TRUE(ensure_dirs(at("tree/a/b")));
  ASSERT_TRUE(write_file(at("tree/a/b/file"), "x"));
  ASSERT_TRUE(write_file(at("tree/top"), "y"));
  ::chmod(at("tree/a/b").c_str(), 0500);  // root removes read-only directories' entries anyway
  stdfs::create_symlink(at("outside"), at("tree/a/link"));
  ASSERT_TRUE(remove_tree(at("tree")));
  EXPECT_FALSE(path_exists(at("tree")));
  EXPECT_EQ(*read_file(at("outside/precious")), "keep");
  // A missing path, a path below a file and a plain file.
  EXPECT_TRUE(remove_tree(at("tree")));
  EXPECT_TRUE(remove_tree(at("outside/precious/below")));
  ASSERT_TRUE(remove_tree(at("outside/precious")));
  EXPECT_FALSE(path_exists(at("outside/precious")));
}

TEST_F(FsTest, ListDirIsSortedAndNamesAMissingDirectory) {
  for (const char* name : {"b", "a", "c"}) ASSERT_TRUE(write_file(at(name), ""));
  auto names = list_dir(dir_.path());
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "c"}));
  auto missing = list_dir(at("missing"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
}

TEST_F(FsTest, PathExistsDoesNotFollowSymlinks) {
  stdfs::create_symlink(at("nowhere"), at("dangling"));
  EXPECT_TRUE(path_exists(at("dangling")));
  EXPECT_FALSE(path_exists(at("nowhere")));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

TEST(ExecutableDir, IsTheDirectoryOfTheRunningProgram) {
  std::string dir = executable_dir();
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(dir.front(), '/');
  // This test binary is kiln_common_test, in that directory.
  EXPECT_TRUE(path_exists(dir + "/kiln_common_test")) << dir;
}

}  // namespace
}  // namespace kiln
