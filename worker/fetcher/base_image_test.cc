// scripts/make-base-image end to end: build the image, fetch it with the
// fetcher, run its shell under chroot; rerun (nothing to do) and rebuild
// elsewhere (the same digests).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/testing/fixture.h"

namespace kiln::fetcher {
namespace {

using ::testing::HasSubstr;

std::string source_dir() {
  const char* env = std::getenv("KILN_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? env : KILN_SOURCE_DIR_DEFAULT;
}

struct Output {
  int status = -1;
  std::string out;
};

// Runs a shell command, returning its exit status and stdout.
Output run(const std::string& command) {
  Output result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, n);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

using BaseImageTest = testing::FetcherTest;

TEST_F(BaseImageTest, BuildsAnImageWhoseShellRunsAndRebuildsNothingTheSecondTime) {
  std::string script = source_dir() + "/scripts/make-base-image";
  std::string image = tmp_ + "/base";
  auto built = run(script + " " + image + " 2>" + tmp_ + "/stderr");
  ASSERT_EQ(built.status, 0) << testing::read_file(tmp_ + "/stderr");
  EXPECT_EQ(built.out, "oci:" + image + ":latest\n");

  auto config = fetch("oci:" + image + ":latest");
  ASSERT_TRUE(config) << config.error().to_string();
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(config->env, (Env{{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}));
  EXPECT_EQ(std::filesystem::read_symlink(rootfs_ + "/bin/sh"), "busybox");
  EXPECT_EQ(testing::read_file(rootfs_ + "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  struct stat st {};
  ASSERT_EQ(::stat((rootfs_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(::stat((rootfs_ + "/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mtime, 0);  // SOURCE_DATE_EPOCH's default

  auto echoed = run("chroot " + rootfs_ + " /bin/sh -c 'echo ok; ls /bin | grep -cx ls'");
  EXPECT_EQ(echoed.status, 0);
  EXPECT_EQ(echoed.out, "ok\n1\n");

  // Again: nothing is written (index.json keeps its inode) and it says so.
  struct stat before {};
  ASSERT_EQ(::stat((image + "/index.json").c_str(), &before), 0);
  auto again = run(script + " " + image + " 2>" + tmp_ + "/stderr");
  ASSERT_EQ(again.status, 0);
  EXPECT_EQ(again.out, built.out);
  EXPECT_THAT(testing::read_file(tmp_ + "/stderr"), HasSubstr("nothing to do"));
  struct stat after {};
  ASSERT_EQ(::stat((image + "/index.json").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);

  // Elsewhere, the same bytes: reproducible digests.
  auto elsewhere = run(script + " " + tmp_ + "/base2 2>/dev/null");
  ASSERT_EQ(elsewhere.status, 0);
  EXPECT_EQ(testing::read_file(tmp_ + "/base2/index.json"), testing::read_file(image + "/index.json"));
}

TEST_F(BaseImageTest, ADamagedImageIsRebuilt) {
  std::string script = source_dir() + "/scripts/make-base-image";
  std::string image = tmp_ + "/base";
  ASSERT_EQ(run(script + " " + image + " 2>/dev/null").status, 0);
  for (const auto& blob : std::filesystem::directory_iterator(image + "/blobs/sha256"))
    if (std::filesystem::file_size(blob.path()) > 100000)
      testing::write_file(blob.path().string(), "truncated");
  auto rebuilt = run(script + " " + image + " 2>" + tmp_ + "/stderr");
  ASSERT_EQ(rebuilt.status, 0);
  EXPECT_THAT(testing::read_file(tmp_ + "/stderr"), HasSubstr("built"));
  auto config = fetch("oci:" + image);
  ASSERT_TRUE(config) << config.error().to_string();
}

TEST_F(BaseImageTest, RefusesANonEmptyDirectoryThatIsNotAnImage) {
  std::string dir = new_dir("precious");
  testing::write_file(dir + "/notes.txt", "keep me");
  auto r = run(source_dir() + "/scripts/make-base-image " + dir + " 2>" + tmp_ + "/stderr");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(testing::read_file(tmp_ + "/stderr"), HasSubstr("is not empty and is not an OCI image layout"));
  EXPECT_EQ(testing::read_file(dir + "/notes.txt"), "keep me");
}

}  // namespace
}  // namespace kiln::fetcher
