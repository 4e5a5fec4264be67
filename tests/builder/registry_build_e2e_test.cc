// `kiln build` on a base image pulled from a registry: the real kiln binary,
// runc and the overlayfs store, with `docker-registry` started on 127.0.0.1
// by the test and the busybox image of scripts/make-base-image pushed into
// it with skopeo. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/kiln_output.h"
#include "tests/support/local_registry.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kiln {
namespace {

using ::testing::AllOf;
using testing::count_of;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::run_process;

void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

class RegistryBuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ProcessResult made =
        run_process({testing::source_dir() + "/scripts/make-base-image", home_.path() + "/layout/busybox"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    registry_.emplace(home_.path() + "/registry");
    ASSERT_EQ(registry_->push("oci:" + home_.path() + "/layout/busybox:latest", "team/busybox:1"), "");
    std::filesystem::create_directories(home_.path() + "/context");
  }

  // `kiln build` in this test's KILN_HOME (which has no default busybox image).
  ProcessResult build(const std::string& spec_text, std::vector<std::string> flags) {
    write_file(home_.path() + "/build.spec", spec_text);
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path(), KILN_BINARY, "build",
                                     "-f",           home_.path() + "/build.spec"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(home_.path() + "/context");
    return run_process(argv);
  }

  testing::TempDir home_{"kiln-registry-e2e", "/var/tmp"};
  std::optional<testing::LocalRegistry> registry_;
};

TEST_F(RegistryBuildTest, BuildsOnAnImagePulledFromARegistry) {
  std::string image = registry_->host() + "/team/busybox:1";
  std::string spec =
      "((from \"" + image + "\")\n (run (shell \"echo built on $(cat /etc/group | head -n 1)\")))\n";
  ProcessResult first = build(spec, {"--insecure-registry", registry_->host(), "--pull", "always"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, AllOf(HasSubstr("fetching " + image), HasSubstr("pulled layer 1/1 sha256:"),
                               HasSubstr("built on root:x:0:")));
  // The tag was asked for once (--pull always), although the (from) step
  // resolves it before it fetches.
  EXPECT_EQ(registry_->manifest_gets("team/busybox", "1"), 1) << registry_->log();
  // The resolved digest is kept with the base image's result.
  ProcessResult grep = run_process(
      {"/bin/grep", "-rl",
       "\"resolved\": \"" + registry_->host() + "/team/busybox@sha256:", home_.path() + "/store"});
  EXPECT_EQ(grep.exit_code, 0) << grep.out << grep.err;

  // The (from) step's id is the spec's text: a second build uses the result
  // (its log is replayed) and never asks the registry, which is down.
  registry_->stop();
  ProcessResult second = build(spec, {"--insecure-registry", registry_->host()});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(count_of(second.out, " from cache\n"), 2) << second.out;
}

TEST_F(RegistryBuildTest, FlagsAreCheckedAndRegistryErrorsReachTheUser) {
  std::string spec = "((from \"" + registry_->host() + "/team/busybox:nope\"))\n";
  ProcessResult bad_pull = build(spec, {"--pull", "sometimes"});
  EXPECT_NE(bad_pull.exit_code, 0);
  EXPECT_THAT(bad_pull.err, HasSubstr("expected always, missing or never"));
  ProcessResult bad_ca = build(spec, {"--registry-ca", home_.path() + "/no-such-ca.pem"});
  EXPECT_NE(bad_ca.exit_code, 0);
  EXPECT_THAT(bad_ca.err, HasSubstr("--registry-ca"));
  ProcessResult unknown = build(spec, {"--insecure-registry", registry_->host()});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, AllOf(HasSubstr("no manifest \"nope\""), HasSubstr("team/busybox")));
  ProcessResult never = build("((from \"" + registry_->host() + "/team/busybox:1\"))\n",
                              {"--insecure-registry", registry_->host(), "--pull", "never"});
  EXPECT_EQ(never.exit_code, 1);
  EXPECT_THAT(never.err, HasSubstr("--pull never"));
  ProcessResult bad_mirror = build(spec, {"--registry-mirror", "ftp://" + registry_->host()});
  EXPECT_NE(bad_mirror.exit_code, 0);
  EXPECT_THAT(bad_mirror.err, HasSubstr("--registry-mirror"));
}

// A bare name is a docker.io image; with --registry-mirror the mirror (here
// the local registry, holding it as docker.io would: library/busybox) serves
// it and docker.io is never asked (these machines cannot reach it).
TEST_F(RegistryBuildTest, ADockerHubNameIsPulledFromTheRegistryMirror) {
  ASSERT_EQ(registry_->push("oci:" + home_.path() + "/layout/busybox:latest", "library/busybox:1.36"), "");
  std::string spec = "((from \"busybox:1.36\")\n (run (shell \"echo mirrored\")))\n";
  ProcessResult built = build(spec, {"--registry-mirror", "http://" + registry_->host()});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_THAT(built.out, AllOf(HasSubstr("resolving docker.io/library/busybox:1.36 at http://" +
                                         registry_->host() + " (mirror), then https://registry-1.docker.io"),
                               HasSubstr("pulled layer 1/1 sha256:"), HasSubstr("mirrored")));
  EXPECT_THAT(built.out, ::testing::Not(HasSubstr("failed")));
  ProcessResult grep = run_process(
      {"/bin/grep", "-rl", "\"resolved\": \"docker.io/library/busybox@sha256:", home_.path() + "/store"});
  EXPECT_EQ(grep.exit_code, 0) << grep.out << grep.err;
}

// A new tag naming an image unpacked before (the warm pull): the registry is
// asked what the tag names, and the (from …) step is a snapshot of the
// result that unpacked it, with its own reference and resolution; nothing is
// unpacked again, and the step on it runs with the image's files.
TEST_F(RegistryBuildTest, ANewTagForAnImageUnpackedBeforeReusesItsResult) {
  const std::string first_ref = registry_->host() + "/team/busybox:1";
  ProcessResult first = build("((from \"" + first_ref + "\")\n (run (shell \"echo one\")))\n",
                              {"--insecure-registry", registry_->host()});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  ASSERT_THAT(first.out, HasSubstr("unpacking layer 1/1"));
  ASSERT_EQ(registry_->push("oci:" + home_.path() + "/layout/busybox:latest", "team/busybox:2"), "");
  const std::string second_ref = registry_->host() + "/team/busybox:2";
  ProcessResult second = build("((from \"" + second_ref +
                                   "\")\n (run (shell \"echo two on $(cat /etc/hostname "
                                   "2>/dev/null; ls /bin/busybox)\")))\n",
                               {"--insecure-registry", registry_->host()});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_THAT(second.out,
              AllOf(HasSubstr("resolving " + second_ref), HasSubstr("unpacked before as"),
                    HasSubstr("reused as it is"), HasSubstr("two on"), HasSubstr("/bin/busybox")));
  EXPECT_THAT(second.out, ::testing::Not(HasSubstr("unpacking layer")));
  // The new step's image.json names its own reference, with the same manifest.
  ProcessResult grep =
      run_process({"/bin/grep", "-rl", "\"reference\": \"" + second_ref + "\"", home_.path() + "/store"});
  EXPECT_EQ(grep.exit_code, 0) << grep.out << grep.err;
  // A third build of the same spec is a plain cache hit.
  registry_->stop();
  ProcessResult third =
      build("((from \"" + second_ref + "\"))\n", {"--insecure-registry", registry_->host()});
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_EQ(count_of(third.out, " from cache\n"), 1) << third.out;
}

}  // namespace
}  // namespace kiln
