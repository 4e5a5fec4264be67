#include "common/path.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace kiln::path {
namespace {

namespace fs = std::filesystem;

TEST(NormalizeRelative, DropsDotAndEmptyComponents) {
  EXPECT_EQ(normalize_relative("./src//main.c").value(), "src/main.c");
  EXPECT_EQ(normalize_relative("a/./b/").value(), "a/b");
  EXPECT_EQ(normalize_relative(".").value(), "");
  EXPECT_EQ(normalize_relative("").value(), "");
}

TEST(NormalizeRelative, RejectsDotDotAbsoluteAndNul) {
  auto up = normalize_relative("a/../../etc");
  ASSERT_FALSE(up.has_value());
  EXPECT_EQ(up.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(up.error().message().find("\"..\""), std::string::npos);

  auto abs = normalize_relative("/etc/passwd");
  ASSERT_FALSE(abs.has_value());
  EXPECT_NE(abs.error().message().find("absolute"), std::string::npos);

  EXPECT_FALSE(normalize_relative(std::string_view("a\0b", 3)).has_value());
}

TEST(NormalizeAbsolute, NormalisesAndRejects) {
  EXPECT_EQ(normalize_absolute("/a/./b/").value(), "/a/b");
  EXPECT_EQ(normalize_absolute("/").value(), "/");
  EXPECT_FALSE(normalize_absolute("relative").has_value());
  EXPECT_FALSE(normalize_absolute("/a/../b").has_value());
}

TEST(Join, OneSlashBetween) {
  EXPECT_EQ(join("/a", "b"), "/a/b");
  EXPECT_EQ(join("/a/", "/b"), "/a/b");
  EXPECT_EQ(join("/a", ""), "/a");
}

class ResolveBeneath : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("resolve_beneath_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "dir" / "sub");
    std::ofstream(root_ / "dir" / "sub" / "file") << "x";
    fs::create_directory_symlink("sub", root_ / "dir" / "inside");        // stays inside
    fs::create_directory_symlink("../..", root_ / "dir" / "up_and_out");  // leaves via ..
    fs::create_directory_symlink("/etc", root_ / "dir" / "absolute");     // absolute target
    fs::create_directory_symlink("/dir/sub", root_ / "dir" / "rooted");   // absolute, inside root
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root() const { return root_.string(); }

  fs::path root_;
};

TEST_F(ResolveBeneath, FollowsSymlinksThatStayInside) {
  auto r = resolve_beneath(root(), "dir/inside/file");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, root() + "/dir/sub/file");
}

TEST_F(ResolveBeneath, RejectsSymlinkClimbingOut) {
  auto r = resolve_beneath(root(), "dir/up_and_out/etc/passwd");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("leaves its root"), std::string::npos);
}

TEST_F(ResolveBeneath, RejectsDotDotAboveRoot) {
  EXPECT_FALSE(resolve_beneath(root(), "../x").has_value());
  EXPECT_TRUE(resolve_beneath(root(), "dir/../dir/sub").has_value());
}

TEST_F(ResolveBeneath, AbsoluteTargetsDependOnMode) {
  auto context = resolve_beneath(root(), "dir/absolute/passwd", AbsoluteSymlinks::kReject);
  ASSERT_FALSE(context.has_value());
  EXPECT_NE(context.error().message().find("/etc"), std::string::npos);

  auto rootfs = resolve_beneath(root(), "dir/rooted/file", AbsoluteSymlinks::kRelativeToRoot);
  ASSERT_TRUE(rootfs.has_value()) << rootfs.error().to_string();
  EXPECT_EQ(*rootfs, root() + "/dir/sub/file");

  // In rootfs mode "/etc" means root/etc, never the host's /etc.
  auto host = resolve_beneath(root(), "dir/absolute/passwd", AbsoluteSymlinks::kRelativeToRoot);
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(*host, root() + "/etc/passwd");
}

TEST_F(ResolveBeneath, MissingTailIsAppended) {
  auto r = resolve_beneath(root(), "dir/inside/new/file");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, root() + "/dir/sub/new/file");
  EXPECT_FALSE(resolve_beneath(root(), "dir/missing/../../..").has_value());
}

TEST_F(ResolveBeneath, SymlinkLoopIsAnError) {
  fs::create_symlink("loop_b", root_ / "loop_a");
  fs::create_symlink("loop_a", root_ / "loop_b");
  auto r = resolve_beneath(root(), "loop_a");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("too many levels"), std::string::npos);
}

}  // namespace
}  // namespace kiln::path
