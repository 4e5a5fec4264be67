#include "worker/builder/copy_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/ids/temp_tree_for_test.h"

namespace kiln::builder {
namespace {

using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CopyFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.file("ctx/a.txt", "A");
    tree_.file("ctx/dir/b.sh", "B", 0700);
    tree_.symlink("ctx/dir/l", "b.sh");
    tree_.dir("rootfs/etc");
    ASSERT_TRUE(ids::DirectoryContext::open(tree_.host("ctx")).has_value());
  }

  CopySourceTree source(std::string_view src) {
    auto ctx = ids::DirectoryContext::open(tree_.host("ctx"));
    auto m = ctx->manifest(src, {});
    EXPECT_TRUE(m) << m.error().to_string();
    return {tree_.host("ctx"), m.value_or(ids::Manifest{})};
  }

  Status copy(std::vector<CopySourceTree> sources, const std::string& dst) {
    return copy_into_rootfs(tree_.host("rootfs"), sources, dst, {1234, 5678}, cancel_);
  }

  std::string rootfs(std::string_view rel) { return tree_.host("rootfs/" + std::string(rel)); }

  ids::TempTree tree_;
  CancelToken cancel_;
};

TEST_F(CopyFilesTest, CopyIntoPutsEachSourceUnderItsName) {
  ASSERT_TRUE(copy({source("a.txt"), source("dir")}, "/srv/app/"));
  EXPECT_EQ(read_text(rootfs("srv/app/a.txt")), "A");
  EXPECT_EQ(read_text(rootfs("srv/app/dir/b.sh")), "B");
  EXPECT_EQ(std::filesystem::read_symlink(rootfs("srv/app/dir/l")), "b.sh");
  struct stat st {};
  ASSERT_EQ(::lstat(rootfs("srv/app/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  ASSERT_EQ(::lstat(rootfs("srv/app/dir/l").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_mtime, kCopiedMtime);
  ASSERT_EQ(::lstat(rootfs("srv/app/dir/b.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // The directory the copy created entries in has the fixed time too.
  ASSERT_EQ(::lstat(rootfs("srv/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, kCopiedMtime);
}

TEST_F(CopyFilesTest, CopyAsRenamesTheSource) {
  ASSERT_TRUE(copy({source("dir")}, "/opt/tools"));
  EXPECT_EQ(read_text(rootfs("opt/tools/b.sh")), "B");
  ASSERT_TRUE(copy({source("a.txt")}, "/etc/renamed"));
  EXPECT_EQ(read_text(rootfs("etc/renamed")), "A");
  // The root of the context copied into a directory: its content lands there.
  ASSERT_TRUE(copy({source(".")}, "/all/"));
  EXPECT_EQ(read_text(rootfs("all/dir/b.sh")), "B");
}

TEST_F(CopyFilesTest, SymlinksInTheImageCannotRedirectWritesOutsideTheRootfs) {
  std::string outside = tree_.host("outside");
  std::filesystem::create_directories(outside);
  // An absolute link means the container's path: inside the rootfs.
  std::filesystem::create_symlink(outside, rootfs("evil"));
  ASSERT_TRUE(copy({source("a.txt")}, "/evil/"));
  EXPECT_FALSE(std::filesystem::exists(outside + "/a.txt"));
  EXPECT_EQ(read_text(rootfs(outside.substr(1) + "/a.txt")), "A");
  // A link at the destination itself is replaced, not written through.
  std::filesystem::create_symlink(outside + "/target", rootfs("etc/passwd"));
  ASSERT_TRUE(copy({source("a.txt")}, "/etc/passwd"));
  EXPECT_FALSE(std::filesystem::is_symlink(rootfs("etc/passwd")));
  EXPECT_FALSE(std::filesystem::exists(outside + "/target"));
  // A relative link climbing above the root stays inside too.
  std::filesystem::create_symlink("../../../../../../..", rootfs("up"));
  // (refused: resolve_beneath treats ".." above the root as an escape).
  auto up = copy({source("a.txt")}, "/up/x/");
  EXPECT_FALSE(up);
  EXPECT_FALSE(std::filesystem::exists("/x/a.txt"));
}

TEST_F(CopyFilesTest, ConflictsAndChangedFilesAreErrors) {
  auto onto_dir = copy({source("a.txt")}, "/etc");
  ASSERT_FALSE(onto_dir);
  EXPECT_THAT(onto_dir.error().to_string(), HasSubstr("a directory is already there"));
  CopySourceTree changed = source("a.txt");
  tree_.file("ctx/a.txt", "changed");
  auto stale = copy({changed}, "/x/");
  ASSERT_FALSE(stale);
  EXPECT_THAT(stale.error().to_string(), HasSubstr("changed while it was copied"));
}

}  // namespace
}  // namespace kiln::builder
