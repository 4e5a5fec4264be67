// write_result_tar and unpack_result_tar (result_tar.h): a tree out of a
// "rootfs" lands byte-identical with its modes, mtimes and symlinks; SRC is
// resolved inside the rootfs; a missing SRC, an output over its cap and
// hostile tars are refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "common/context/raw_tar_for_test.h"
#include "common/context/result_tar.h"
#include "common/fs.h"
#include "common/ids/temp_tree_for_test.h"
#include "common/unique_fd.h"

namespace kiln::context {
namespace {

using ::testing::HasSubstr;

class ResultTarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.file("rootfs/app/bin/tool",
               std::string("\x7f"
                           "ELF\0binary",
                           10),
               0750);
    tree_.file("rootfs/app/share/doc.txt", "docs\n", 0640);
    tree_.symlink("rootfs/app/bin/current", "tool");
    tree_.symlink("rootfs/app/etc-link", "/etc");  // absolute: a link, never followed
    tree_.file("rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    tree_.symlink("rootfs/opt", "/app");  // leads to /app inside the rootfs
    tree_.dir("outside");
    tree_.file("outside/secret", "host secret\n");
    struct timespec times[2] = {{1234567, 0}, {1234567, 0}};
    ::utimensat(AT_FDCWD, tree_.host("rootfs/app/bin/tool").c_str(), times, 0);
  }

  // Writes SRC's tar to a file, then unpacks it into DEST.
  Result<std::uint64_t> output(const std::string& src, const std::string& dest,
                               std::uint64_t cap = std::numeric_limits<std::uint64_t>::max()) {
    std::string tar_path = tree_.host("out.tar");
    std::string bytes;
    KILN_ASSIGN_OR_RETURN(ResultTar tar, write_result_tar(
                                             tree_.host("rootfs"), src,
                                             [&](std::string_view b) -> Status {
                                               bytes.append(b);
                                               return {};
                                             },
                                             cap));
    EXPECT_EQ(tar.bytes, bytes.size());
    KILN_RETURN_IF_ERROR(write_file(tar_path, bytes));
    UniqueFd fd(::open(tar_path.c_str(), O_RDONLY | O_CLOEXEC));
    return unpack_result_tar(fd.get(), dest);
  }

  Result<std::uint64_t> unpack_raw(const std::string& dest) {
    UniqueFd fd(::open(tree_.host("raw.tar").c_str(), O_RDONLY | O_CLOEXEC));
    return unpack_result_tar(fd.get(), dest);
  }

  ids::TempTree tree_;
};

TEST_F(ResultTarTest, ADirectoryLandsWithContentModesTimesAndSymlinks) {
  std::string dest = tree_.host("dest/nested");  // created
  auto n = output("/app", dest);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 6u);  // bin, bin/current, bin/tool, etc-link, share, share/doc.txt
  EXPECT_EQ(read_file(dest + "/bin/tool").value(), std::string("\x7f"
                                                               "ELF\0binary",
                                                               10));
  EXPECT_EQ(read_file(dest + "/share/doc.txt").value(), "docs\n");
  struct stat st {};
  ASSERT_EQ(::stat((dest + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtime, 1234567);
  ASSERT_EQ(::stat((dest + "/share/doc.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(std::filesystem::read_symlink(dest + "/bin/current"), "tool");
  EXPECT_EQ(std::filesystem::read_symlink(dest + "/etc-link"), "/etc");
}

TEST_F(ResultTarTest, AFileLandsUnderItsNameAndSymlinksOnTheWayStayInside) {
  std::string dest = tree_.host("dest");
  // /opt -> /app (absolute): resolved inside the rootfs, as in the container;
  // the last component (a symlink) is followed too.
  auto n = output("opt/bin/current", dest);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(read_file(dest + "/current").value(), std::string("\x7f"
                                                              "ELF\0binary",
                                                              10));
  EXPECT_FALSE(std::filesystem::is_symlink(dest + "/current"));
  // A SRC whose symlink points at the host's /etc reads the rootfs's /etc.
  auto etc = output("/app/etc-link/passwd", dest);
  ASSERT_TRUE(etc) << etc.error().to_string();
  EXPECT_EQ(read_file(dest + "/passwd").value(), "root:x:0:0::/root:/bin/sh\n");
}

TEST_F(ResultTarTest, AMissingSourceAndAnOutputOverTheCapAreClearErrors) {
  auto missing = output("/app/nope", tree_.host("dest"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().to_string(), HasSubstr("/app/nope does not exist in the result"));
  auto escape = output("/app/../..", tree_.host("dest"));
  ASSERT_FALSE(escape);
  auto big = output("/app", tree_.host("dest2"), 1024);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(big.error().to_string(), HasSubstr("over 1.0 KiB"));
  EXPECT_THAT(parse_output_flag("/app").error().to_string(), HasSubstr("expected SRC:DESTDIR"));
  EXPECT_EQ(parse_output_flag("/a:b:c").value(), std::make_pair(std::string("/a"), std::string("b:c")));
}

TEST_F(ResultTarTest, HostileEntriesNeverWriteOutsideTheDestination) {
  std::string dest = tree_.host("dest");
  auto check_refused = [&](const std::string& needle) {
    auto n = unpack_raw(dest);
    ASSERT_FALSE(n) << "unpacked a tar with " << needle;
    EXPECT_EQ(n.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_THAT(n.error().to_string(), HasSubstr(needle));
    EXPECT_EQ(read_file(tree_.host("outside/secret")).value(), "host secret\n");
  };
  { RawTar(tree_.host("raw.tar")).file("../outside/secret", "pwned"); }
  check_refused("\"..\"");
  { RawTar(tree_.host("raw.tar")).file("/tmp/pwned", "pwned"); }
  check_refused("absolute");
  { RawTar(tree_.host("raw.tar")).symlink("link", tree_.host("outside")).file("link/secret", "pwned"); }
  check_refused("symlink or not a directory");
  { RawTar(tree_.host("raw.tar")).hardlink("hl", tree_.host("outside/secret")); }
  check_refused("hard link");
  { RawTar(tree_.host("raw.tar")).device("null"); }
  check_refused("not a file");
  // A symlink already in the destination is replaced, never written through.
  std::filesystem::remove_all(dest);
  tree_.symlink("dest/secret", tree_.host("outside/secret"));
  { RawTar(tree_.host("raw.tar")).file("secret", "new\n"); }
  ASSERT_TRUE(unpack_raw(dest));
  EXPECT_EQ(read_file(dest + "/secret").value(), "new\n");
  EXPECT_EQ(read_file(tree_.host("outside/secret")).value(), "host secret\n");
}

}  // namespace
}  // namespace kiln::context
