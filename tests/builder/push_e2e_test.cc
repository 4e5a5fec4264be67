// `kiln build --push REF` against a real registry (docker-registry, started
// on 127.0.0.1 by the test): the result goes up as an OCI image, is pulled
// back with skopeo into an OCI layout, unpacked with umoci and run with runc;
// the base's layers are mounted, not uploaded; a second push changes
// nothing; a registry that wants a login refuses a push without credentials,
// clearly, and takes it with them (basic auth over TLS with a CA the test
// makes). The real kiln binary, runc and the overlayfs store. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
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
using ::testing::Not;
using testing::ProcessResult;
using testing::run_process;

void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// "Pushed: REF@sha256:…" on stdout: the digest, or "".
std::string pushed_digest(const ProcessResult& r) {
  std::smatch m;
  static const std::regex pushed("Pushed: \\S+@(sha256:[0-9a-f]{64})");
  return std::regex_search(r.out, m, pushed) ? m[1].str() : "";
}

class PushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ProcessResult made =
        run_process({testing::source_dir() + "/scripts/make-base-image", home_.path() + "/layout/busybox"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::filesystem::create_directories(home_.path() + "/context");
    write_file(home_.path() + "/context/hello.txt", "hello from the context\n");
  }

  ProcessResult build(const std::string& spec_text, std::vector<std::string> flags,
                      const std::string& docker_config_dir = "") {
    write_file(home_.path() + "/build.spec", spec_text);
    std::vector<std::string> argv = {
        "/usr/bin/env",
        "KILN_HOME=" + home_.path(),
        "DOCKER_CONFIG=" + (docker_config_dir.empty() ? home_.path() + "/no-docker" : docker_config_dir),
        KILN_BINARY,
        "build",
        "-f",
        home_.path() + "/build.spec"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(home_.path() + "/context");
    return run_process(argv);
  }

  // The spec on `base`: a copy, a run that adds and deletes files, env and workdir.
  static std::string app_spec(const std::string& base) {
    return "((from \"" + base + "\")\n" +
           R"( (copy (src hello.txt) (dst /app/hello.txt))
 (run (shell "mkdir -p /app/bin && printf 'echo tool ran' > /app/bin/tool && chmod 0750 /app/bin/tool && ln -s tool /app/bin/current && rm /bin/vi && rm -r /root"))
 (env GREETING "hello world")
 (workdir /app))
)";
  }

  testing::TempDir home_{"kiln-push-e2e", "/var/tmp"};
};

TEST_F(PushTest, PushedImagePullsBackUnpacksAndRuns) {
  testing::LocalRegistry registry(home_.path() + "/registry");
  ASSERT_EQ(registry.push("oci:" + home_.path() + "/layout/busybox:latest", "team/busybox:1"), "");
  std::string base = registry.host() + "/team/busybox:1";
  std::string ref = registry.host() + "/team/app:1";
  ProcessResult pushed = build(app_spec(base), {"--insecure-registry", registry.host(), "--push", ref});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err;
  std::string digest = pushed_digest(pushed);
  ASSERT_NE(digest, "") << pushed.out;
  // The base layer is linked from the base's repository, never uploaded again.
  EXPECT_THAT(pushed.err,
              AllOf(HasSubstr("layer 1/3"), HasSubstr("mounted from team/busybox"), HasSubstr("layer 3/3")));
  EXPECT_EQ(count_of(pushed.err, " uploaded\n"), 2u) << pushed.err;

  std::string layout = home_.path() + "/pulled";
  ProcessResult copied = run_process(
      {"/usr/bin/skopeo", "copy", "--src-tls-verify=false", "docker://" + ref, "oci:" + layout + ":1"});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  std::string bundle = home_.path() + "/bundle";
  ProcessResult unpacked = run_process({"/usr/bin/umoci", "unpack", "--image", layout + ":1", bundle});
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.out << unpacked.err;
  std::string rootfs = bundle + "/rootfs";
  EXPECT_EQ(read_bytes(rootfs + "/app/hello.txt"), "hello from the context\n");
  EXPECT_EQ(std::filesystem::read_symlink(rootfs + "/app/bin/current"), "tool");
  EXPECT_EQ(std::filesystem::status(rootfs + "/app/bin/tool").permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0750));
  // Deletions became whiteouts, which umoci applied.
  EXPECT_TRUE(std::filesystem::exists(rootfs + "/bin/sh"));
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(rootfs + "/bin/vi")));
  EXPECT_FALSE(std::filesystem::exists(rootfs + "/root"));

  // The config carries the spec's env and workdir and the base's PATH and Cmd.
  auto config = nlohmann::json::parse(read_bytes(bundle + "/config.json"));
  std::vector<std::string> env = config["process"]["env"].get<std::vector<std::string>>();
  EXPECT_THAT(env, ::testing::Contains("GREETING=hello world"));
  EXPECT_THAT(env, ::testing::Contains(HasSubstr("PATH=")));
  EXPECT_EQ(config["process"]["cwd"], "/app");
  // Run it with runc: the image's own files, env and workdir.
  config["process"]["terminal"] = false;
  config["process"]["args"] = {"/bin/sh", "-c", "pwd; echo $GREETING; sh bin/tool; cat hello.txt"};
  write_file(bundle + "/config.json", config.dump());
  ProcessResult ran = run_process({"/usr/sbin/runc", "run", "--bundle", bundle, "kiln-push-e2e"});
  ASSERT_EQ(ran.exit_code, 0) << ran.out << ran.err;
  EXPECT_EQ(ran.out, "/app\nhello world\ntool ran\nhello from the context\n");

  // Pushing the same result again uploads nothing and gives the same digest.
  ProcessResult again = build(app_spec(base), {"--insecure-registry", registry.host(), "--push", ref});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(pushed_digest(again), digest);
  EXPECT_EQ(count_of(again.err, " uploaded\n"), 0u) << again.err;
  EXPECT_EQ(count_of(again.err, " is already there\n"), 3u) << again.err;
}

// A base reused from an earlier unpack of the same image (a new tag) is a
// snapshot on that unpack's result; the pushed image still starts at the base
// image's own layers, with no empty layer for the reused step.
TEST_F(PushTest, ABaseReusedUnderANewTagPushesTheSameLayers) {
  testing::LocalRegistry registry(home_.path() + "/registry");
  ASSERT_EQ(registry.push("oci:" + home_.path() + "/layout/busybox:latest", "team/busybox:1"), "");
  ASSERT_EQ(registry.push("oci:" + home_.path() + "/layout/busybox:latest", "team/busybox:2"), "");
  ProcessResult first = build("((from \"" + registry.host() + "/team/busybox:1\"))\n",
                              {"--insecure-registry", registry.host()});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  std::string ref = registry.host() + "/team/app:2";
  ProcessResult pushed = build(app_spec(registry.host() + "/team/busybox:2"),
                               {"--insecure-registry", registry.host(), "--push", ref});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err;
  ASSERT_THAT(pushed.out, HasSubstr("reused as it is"));
  // The base layer, the copy's and the run's: three, as without the reuse.
  EXPECT_THAT(pushed.err, AllOf(HasSubstr("base " + registry.host() + "/team/busybox:2: 1 layer(s)"),
                                HasSubstr("layer 3/3")));
  EXPECT_THAT(pushed.err, ::testing::Not(HasSubstr("layer 4/")));
  ProcessResult inspected = run_process(
      {"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--format", "{{len .Layers}}", "docker://" + ref});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(inspected.out, "3\n");
}

TEST_F(PushTest, ALoginIsRefusedClearlyWithoutCredentialsAndUsedWithThem) {
  std::string tls = home_.path() + "/tls";
  ASSERT_EQ(testing::make_tls_and_htpasswd(tls, "kiln", "s3cret"), "");
  testing::LocalRegistry secure(home_.path() + "/secure", {.tls_certificate = tls + "/server.pem",
                                                           .tls_key = tls + "/server.key",
                                                           .htpasswd = tls + "/htpasswd"});
  // The base comes from an OCI layout: its layer is uploaded from there.
  std::string alias = "busybox=oci:" + home_.path() + "/layout/busybox:latest";
  std::string ref = secure.host() + "/team/app:2";
  std::vector<std::string> flags = {"--image-alias", alias, "--registry-ca", tls + "/ca.pem", "--push", ref};

  ProcessResult anonymous = build(app_spec("busybox"), flags);
  EXPECT_EQ(anonymous.exit_code, 1) << anonymous.out << anonymous.err;
  EXPECT_THAT(anonymous.err, AllOf(HasSubstr("registry " + secure.host()),
                                   HasSubstr("repository:team/app:push,pull"), HasSubstr("docker login")));
  EXPECT_EQ(pushed_digest(anonymous), "");

  std::string docker_config = home_.path() + "/docker";
  write_file(docker_config + "/config.json",
             R"({"auths": {")" + secure.host() + R"(": {"auth": "a2lsbjpzM2NyZXQ="}}})" /* kiln:s3cret */);
  ProcessResult with_login = build(app_spec("busybox"), flags, docker_config);
  ASSERT_EQ(with_login.exit_code, 0) << with_login.out << with_login.err;
  EXPECT_NE(pushed_digest(with_login), "");
  EXPECT_THAT(with_login.err, Not(HasSubstr("s3cret")));
  EXPECT_EQ(count_of(with_login.err, " uploaded\n"), 3u) << with_login.err;
  std::filesystem::create_directories(tls + "/trust");
  std::filesystem::copy_file(tls + "/ca.pem", tls + "/trust/ca.crt");
  ProcessResult inspected = run_process({"/usr/bin/skopeo", "inspect", "--cert-dir", tls + "/trust",
                                         "--creds", "kiln:s3cret", "--raw", "docker://" + ref});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_THAT(inspected.out, HasSubstr("application/vnd.oci.image.manifest.v1+json"));
}

}  // namespace
}  // namespace kiln
