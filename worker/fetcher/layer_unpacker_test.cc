// Layer entries: what is refused because it would land outside the rootfs,
// and what is kept of each entry (owner, mode, times, xattrs, links, devices).
#include "worker/fetcher/internal/layer_unpacker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>

#include "worker/fetcher/testing/fixture.h"

namespace kiln::fetcher {
namespace {

using testing::Compression;
using ::testing::HasSubstr;
using testing::LayerBuilder;
using testing::make_layer;

using LayerUnpackerTest = testing::FetcherTest;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Each hostile layer is refused with an error that names the entry, and
// nothing appears outside the rootfs.
TEST_F(LayerUnpackerTest, RefusesEntriesThatWouldLeaveTheRootfs) {
  std::string outside = new_dir("outside");
  // From rootfs_ (tmp_/rootfs-N), "../outside" is the directory above.
  struct Case {
    const char* what;
    LayerBuilder layer;
    std::string refused_entry;
  };
  std::vector<Case> cases;
  cases.push_back({"dot-dot", LayerBuilder().file("../outside/x", "pwned"), "../outside/x"});
  cases.push_back(
      {"dot-dot inside", LayerBuilder().dir("a").file("a/../../outside/x", "pwned"), "a/../../outside/x"});
  cases.push_back({"absolute", LayerBuilder().file(outside + "/x", "pwned"), outside + "/x"});
  cases.push_back({"symlink then a file through it",
                   LayerBuilder().symlink("evil", "../outside").file("evil/x", "pwned"), "evil/x"});
  cases.push_back({"symlink chain",
                   LayerBuilder()
                       .dir("d")
                       .symlink("d/up", "..")
                       .symlink("d/up2", "up/..")
                       .file("d/up2/outside/x", "pwned"),
                   "d/up2/outside/x"});
  cases.push_back({"hardlink outside", LayerBuilder().hardlink("h", "../outside/target"), "h"});
  cases.push_back({"hardlink absolute", LayerBuilder().hardlink("h", outside + "/target"), "h"});
  cases.push_back({"hardlink through an escaping symlink",
                   LayerBuilder().symlink("evil", "../outside").hardlink("h", "evil/target"), "h"});
  cases.push_back({"whiteout through an escaping symlink",
                   LayerBuilder().symlink("evil", "../outside").whiteout("evil/target"), "evil/.wh.target"});
  testing::write_file(outside + "/target", "precious");

  int n = 0;
  for (auto& c : cases) {
    rootfs_ = new_dir("rootfs-" + std::to_string(n++));
    std::filesystem::remove_all(tmp_ + "/image");
    auto r = fetch_layers({make_layer(c.layer, Compression::kGzip)});
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument) << c.what;
    EXPECT_THAT(r.error().message(), HasSubstr("entry \"" + c.refused_entry + "\"")) << c.what;
    EXPECT_THAT(r.error().message(), HasSubstr("refusing")) << c.what;
    EXPECT_FALSE(exists(outside + "/x")) << c.what;
    EXPECT_EQ(testing::read_file(outside + "/target"), "precious") << c.what;
  }
}

TEST_F(LayerUnpackerTest, SymlinkFromALowerLayerCannotBeUsedToEscapeEither) {
  std::string outside = new_dir("outside");
  auto r = fetch_layers({make_layer(LayerBuilder().symlink("lib", "../../outside"), Compression::kGzip),
                         make_layer(LayerBuilder().file("lib/x", "pwned"), Compression::kGzip)});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("layer 2/2"));
  EXPECT_FALSE(exists(outside + "/x"));
}

// An absolute symlink means what it will mean inside the container: a path
// below the rootfs, never the host's.
TEST_F(LayerUnpackerTest, AbsoluteSymlinksAreFollowedInsideTheRootfs) {
  std::string outside = new_dir("outside");
  auto r = fetch_layers(
      {make_layer(LayerBuilder().symlink("abs", outside).file("abs/x", "inside"), Compression::kGzip),
       make_layer(LayerBuilder().symlink("usrlib", "/usr/lib").file("usrlib/libc.so", "c"),
                  Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(exists(outside + "/x"));
  EXPECT_EQ(testing::read_file(rootfs_ + outside + "/x"), "inside");
  EXPECT_EQ(testing::read_file(rootfs_ + "/usr/lib/libc.so"), "c");
}

TEST_F(LayerUnpackerTest, SymlinksInsideTheRootfsAreFollowedForLaterEntries) {
  auto r = fetch_layers(
      {make_layer(LayerBuilder().dir("usr").dir("usr/lib").symlink("lib", "usr/lib"), Compression::kGzip),
       make_layer(LayerBuilder().file("lib/libz.so", "z"), Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "d usr 755\nd usr/lib 755\nf usr/lib/libz.so z\nl lib -> usr/lib\n");
}

TEST_F(LayerUnpackerTest, KeepsOwnersModesTimesXattrsLinksAndDevices) {
  ASSERT_EQ(::geteuid(), 0u) << "the fetcher tests run as root, as the worker does";
  LayerBuilder layer;
  layer.dir("d", 0711, 1234, 5678)
      .mtime(1500000000)
      .file("d/suid", "#!/bin/sh\n", 04755, 1234, 5678)
      .mtime(1400000000)
      .xattr("trusted.kiln", "value")
      .hardlink("d/same", "d/suid")
      .symlink("d/link", "suid")
      .char_device("null", 1, 3)
      .dir("tmp", 01777);
  auto r = fetch_layers({make_layer(layer, Compression::kZstd)});
  ASSERT_TRUE(r) << r.error().to_string();

  struct stat st {};
  ASSERT_EQ(::lstat((rootfs_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mtime, 1500000000);  // set after its children were created

  struct stat file {};
  ASSERT_EQ(::lstat((rootfs_ + "/d/suid").c_str(), &file), 0);
  EXPECT_EQ(file.st_mode & 07777, 04755u);  // set-uid survives the chown
  EXPECT_EQ(file.st_uid, 1234u);
  EXPECT_EQ(file.st_mtime, 1400000000);
  EXPECT_EQ(file.st_nlink, 2u);
  char value[16] = {};
  EXPECT_EQ(::lgetxattr((rootfs_ + "/d/suid").c_str(), "trusted.kiln", value, sizeof value), 5);
  EXPECT_STREQ(value, "value");

  struct stat same {};
  ASSERT_EQ(::lstat((rootfs_ + "/d/same").c_str(), &same), 0);
  EXPECT_EQ(same.st_ino, file.st_ino);
  EXPECT_EQ(std::filesystem::read_symlink(rootfs_ + "/d/link"), "suid");

  struct stat dev {};
  ASSERT_EQ(::lstat((rootfs_ + "/null").c_str(), &dev), 0);
  EXPECT_TRUE(S_ISCHR(dev.st_mode));
  EXPECT_EQ(major(dev.st_rdev), 1u);
  EXPECT_EQ(minor(dev.st_rdev), 3u);

  ASSERT_EQ(::lstat((rootfs_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
}

TEST_F(LayerUnpackerTest, DirectoriesChangedWithoutAnEntryKeepTheirTimes) {
  auto r = fetch_layers(
      {make_layer(
           LayerBuilder().dir("d").mtime(1000).file("d/old", "o").dir("e").mtime(2000).file("e/x", "x"),
           Compression::kGzip),
       // d and e are changed (a file added, a whiteout) but not listed: their times stay.
       make_layer(LayerBuilder().file("d/new", "n").whiteout("e/x").file("f/g", "g"), Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  struct stat st {};
  ASSERT_EQ(::lstat((rootfs_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1000);
  ASSERT_EQ(::lstat((rootfs_ + "/e").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 2000);
  EXPECT_EQ(tree(rootfs_), "d d 755\nd e 755\nd f 755\nf d/new n\nf d/old o\nf f/g g\n");
}

TEST_F(LayerUnpackerTest, LaterLayersReplaceFilesByDirectoriesAndBack) {
  auto r = fetch_layers(
      {make_layer(LayerBuilder().file("a", "file").dir("b").file("b/inner", "i"), Compression::kGzip),
       make_layer(LayerBuilder().dir("a").file("a/now-a-dir", "x").file("b", "now a file"),
                  Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "d a 755\nf a/now-a-dir x\nf b now a file\n");
}

TEST_F(LayerUnpackerTest, WhiteoutsBelowAFileRemoveNothingButWritesBelowOneAreRefused) {
  auto r = fetch_layers(
      {make_layer(LayerBuilder().file("f", "file"), Compression::kGzip),
       make_layer(LayerBuilder().whiteout("f/x").whiteout("f/x/y").opaque("f/z"), Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "f f file\n");

  for (std::string entry : {"f/x", "f/x/y"}) {
    rootfs_ = new_dir("rootfs-" + std::to_string(entry.size()));
    std::filesystem::remove_all(tmp_ + "/image");
    r = fetch_layers({make_layer(LayerBuilder().file("f", "file"), Compression::kGzip),
                      make_layer(LayerBuilder().file(entry, "x"), Compression::kGzip)});
    ASSERT_FALSE(r) << entry;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument) << entry;
    EXPECT_THAT(r.error().message(), HasSubstr("entry \"" + entry + "\"")) << entry;
    EXPECT_THAT(r.error().message(), HasSubstr("not a directory")) << entry;
  }
}

TEST_F(LayerUnpackerTest, MissingParentDirectoriesAreCreated) {
  auto r = fetch_layers({make_layer(LayerBuilder().file("x/y/z", "deep"), Compression::kNone)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "d x 755\nd x/y 755\nf x/y/z deep\n");
}

TEST_F(LayerUnpackerTest, AnEmptyLayerIsFine) {
  auto r = fetch_layers({make_layer(LayerBuilder().file("a", "1"), Compression::kGzip),
                         make_layer(LayerBuilder(), Compression::kGzip),
                         make_layer(LayerBuilder(), Compression::kNone)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "f a 1\n");

  // Zero bytes at all (some tools write such layers), plain and gzip.
  testing::Layer nothing{"", "application/vnd.oci.image.layer.v1.tar", testing::sha256_digest("")};
  testing::Layer gzip_nothing{testing::compress("", Compression::kGzip),
                              "application/vnd.oci.image.layer.v1.tar+gzip", testing::sha256_digest("")};
  rootfs_ = new_dir("rootfs-nothing");
  std::filesystem::remove_all(tmp_ + "/image");
  r = fetch_layers({make_layer(LayerBuilder().file("b", "2"), Compression::kGzip), nothing, gzip_nothing});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "f b 2\n");
}

TEST_F(LayerUnpackerTest, NonAsciiNamesKeepTheirBytes) {
  // PAX stores such names as UTF-8; the worker runs in the C locale.
  auto r = fetch_layers({make_layer(LayerBuilder().dir("caf\xc3\xa9").file("caf\xc3\xa9/\xe6\x97\xa5", "x"),
                                    Compression::kGzip)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(tree(rootfs_), "d caf\xc3\xa9 755\nf caf\xc3\xa9/\xe6\x97\xa5 x\n");
}

}  // namespace
}  // namespace kiln::fetcher
