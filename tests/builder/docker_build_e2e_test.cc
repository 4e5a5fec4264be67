// `kiln build --store docker:PREFIX --docker-host ...` end to end against a
// private dockerd (tests/support/local_dockerd.h): a spec with a (from) of
// kiln's busybox base image (an oci: layout, fetched by kiln and imported
// into dockerd) and run steps is built into images PREFIX:<step id>, then
// served from cache; a run step's user comes from the base's /etc/passwd;
// copy steps put the context's or a build stage's files into the image
// (modes, owner, mtime 0); a (from) of a registry reference is pulled by
// dockerd from a docker-registry the test starts; `--push` has dockerd push
// a result, with the spec's final config and the docker config's login.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "tests/support/child.h"
#include "tests/support/kiln_output.h"
#include "tests/support/local_dockerd.h"
#include "tests/support/local_registry.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "worker/docker/container_files.h"
#include "worker/docker/docker_client.h"

namespace kiln {
namespace {

using ::testing::AllOf;
using testing::count_of;
using testing::got_id;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;
using testing::run_process;

constexpr const char* kPrefix = "kiln-e2e";

class DockerBuildE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(dockerd_.start_error(), "");
    ProcessResult made =
        run_process({testing::source_dir() + "/scripts/make-base-image", home_.path() + "/images/busybox"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto client = docker::DockerClient::create({.host = dockerd_.host()});
    ASSERT_TRUE(client) << client.error().to_string();
    client_ = std::move(*client);
    std::filesystem::create_directories(context_);
  }

  ProcessResult kiln(std::vector<std::string> args) {
    args.insert(args.begin() + 1,
                {"--store", std::string("docker:") + kPrefix, "--docker-host", dockerd_.host()});
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path(),
                                     "DOCKER_CONFIG=" + docker_config_, KILN_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv);
  }
  std::string spec_file(const std::string& text) {
    std::string path = home_.path() + "/test.spec";
    EXPECT_TRUE(write_file(path, text));
    return path;
  }
  // A file of image `image`, through a container made for the read.
  std::optional<std::string> file_in(const std::string& image, const std::string& path) {
    auto container = client_->create_container({.image = image}, "");
    if (!container) return std::nullopt;
    auto content = docker::read_container_file(*client_, *container, path, 1 << 20);
    (void)client_->remove_container(*container);
    if (!content) return std::nullopt;
    return *content;
  }
  std::size_t our_containers() {
    auto list = client_->list_containers({.labels = {std::string("kiln.store=") + kPrefix}});
    EXPECT_TRUE(list) << list.error().to_string();
    return list ? list->size() : 0;
  }

  testing::LocalDockerd dockerd_;
  testing::TempDir home_{"kiln-docker-e2e", "/var/tmp"};
  std::string context_ = home_.path() + "/context";
  std::string docker_config_ = home_.path() + "/no-docker";  // the login --push reads
  std::unique_ptr<docker::DockerClient> client_;
};

TEST_F(DockerBuildE2eTest, BuildsFromAndRunStepsIntoImagesThenServesThemFromCache) {
  std::string spec = spec_file(
      "((from busybox)\n"
      " (env GREETING hello-from-docker)\n"
      " (run (shell \"echo $GREETING > /greeting && id -u > /uid\"))\n"
      " (user (name nobody))\n"
      " (run (shell \"echo ran as $(id -u):$(id -g) home $HOME; cat /greeting\")))\n");
  ProcessResult first = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(count_of(first.out, "---> saved as"), 3u) << first.out;
  EXPECT_THAT(first.out, HasSubstr("hello-from-docker"));
  // (user (name nobody)): the base image's passwd (scripts/make-base-image) says 65534:65534, home
  // /nonexistent.
  EXPECT_THAT(first.out, HasSubstr("ran as 65534:65534 home /nonexistent")) << first.out;
  std::string id = got_id(first);
  ASSERT_FALSE(id.empty()) << first.out;

  // The result is an image with the step's files and the store's labels.
  std::string image = std::string(kPrefix) + ":" + id;
  auto info = client_->inspect_image(image);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->labels["kiln.store"], kPrefix);
  EXPECT_EQ(info->labels["kiln.kind"], "result");
  EXPECT_EQ(info->labels["kiln.step"], id);
  EXPECT_EQ(file_in(image, "/greeting"), "hello-from-docker\n");
  EXPECT_EQ(file_in(image, "/uid"), "0\n");
  // The run steps' commands are not the image's: it keeps the base's Cmd.
  EXPECT_TRUE(info->entrypoint.empty()) << info->entrypoint.front();
  EXPECT_EQ(info->cmd, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(our_containers(), 0u);  // every step container was committed and removed
  auto imports = client_->list_images({.references = {std::string(kPrefix) + "-import"}});
  ASSERT_TRUE(imports);
  EXPECT_TRUE(imports->empty());  // the import name of the (from) went with its container

  ProcessResult second = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), id);
  EXPECT_EQ(count_of(second.out, " from cache"), 3u) << second.out;
  EXPECT_THAT(second.out, Not(HasSubstr("saved as")));
  EXPECT_THAT(second.out, HasSubstr("ran as 65534:65534"));  // the cached log is replayed
  EXPECT_EQ(our_containers(), 0u);
}

TEST_F(DockerBuildE2eTest, AFailingStepLeavesNoImageNorContainer) {
  std::string spec = spec_file("((from busybox)\n (run (shell \"echo partial > /partial; exit 3\")))\n");
  ProcessResult failed = kiln({"build", "-f", spec, context_});
  EXPECT_NE(failed.exit_code, 0) << failed.out;
  EXPECT_THAT(failed.out + failed.err, HasSubstr("exited with status 3"));
  EXPECT_EQ(our_containers(), 0u);
  auto images = client_->list_images({.labels = {std::string("kiln.store=") + kPrefix}});
  ASSERT_TRUE(images) << images.error().to_string();
  EXPECT_EQ(images->size(), 1u);  // the (from) step's result only
}

// A (cache) is a volume the step bind-mounts: what one build leaves, the next
// sees. A secret is bind-mounted read-only from the host: it is never in the
// committed image, and neither is the cache's content.
TEST_F(DockerBuildE2eTest, CachesPersistAndSecretsAreNotCommitted) {
  std::string secret = home_.path() + "/token";
  ASSERT_TRUE(write_file(secret, "s3cr3t-value"));
  auto spec_with = [&](const std::string& word) {
    return spec_file(
        "((from busybox)\n (run (cache (c (target /var/cache/c)))\n"
        "      (secrets (token (target /run/secrets/token)))\n"
        "      (shell \"echo " +
        word +
        " >> /var/cache/c/log; cat /var/cache/c/log; "
        "echo token=$(cat /run/secrets/token)\")))\n");
  };
  ProcessResult first = kiln({"build", "-f", spec_with("one"), "--secret", "token:" + secret, context_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, HasSubstr("one\ntoken=s3cr3t-value"));
  ProcessResult second = kiln({"build", "-f", spec_with("two"), "--secret", "token:" + secret, context_});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_THAT(second.out, HasSubstr("one\ntwo\ntoken=s3cr3t-value"));
  std::string image = std::string(kPrefix) + ":" + got_id(second);
  auto token = file_in(image, "/run/secrets/token");
  // What dockerd's runtime leaves at the mount point: an empty file
  // (docs/store.md, the secrets' mount points), never the value.
  EXPECT_EQ(token, std::optional<std::string>("")) << token.value_or("(absent)");
  auto log = file_in(image, "/var/cache/c/log");
  EXPECT_TRUE(!log || log->empty()) << *log;
  EXPECT_EQ(our_containers(), 0u);
}

// A secret whose target is below a symlink in the image, over a file the
// image has: the step reads the secret there (dockerd resolves the mount's
// destination inside the container), and the committed image keeps the
// image's own file and link, never the value.
TEST_F(DockerBuildE2eTest, ASecretBelowASymlinkOverAnImagesFileIsReadThereAndNotCommitted) {
  std::string secret = home_.path() + "/token";
  ASSERT_TRUE(write_file(secret, "s3cr3t-value"));
  std::string spec = spec_file(
      "((from busybox)\n"
      " (run (shell \"mkdir -p /srv/app && echo original > /srv/app/token && ln -s /srv/app /etc/app\"))\n"
      " (run (secrets (token (target /etc/app/token)))\n"
      "      (shell \"echo token=$(cat /etc/app/token); echo seen=$(cat /srv/app/token)\")))\n");
  ProcessResult built = kiln({"build", "-f", spec, "--secret", "token:" + secret, context_});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_THAT(built.out, HasSubstr("token=s3cr3t-value\nseen=s3cr3t-value\n")) << built.out;
  std::string image = std::string(kPrefix) + ":" + got_id(built);
  EXPECT_EQ(file_in(image, "/srv/app/token"), "original\n");
  EXPECT_EQ(file_in(image, "/etc/app/token"), "original\n");  // through the link, kept
  EXPECT_EQ(our_containers(), 0u);
}

// A (from) of a registry reference is pulled by dockerd itself (POST
// /images/create: its own registry configuration; a registry on 127.0.0.0/8
// is plain HTTP to dockerd by default), from a docker-registry on 127.0.0.1
// that the test starts. The step runs on what was pulled, and a second
// build is served from cache without the registry.
TEST_F(DockerBuildE2eTest, BuildsOnAnImageDockerdPullsFromARegistryThenServesItFromCache) {
  testing::LocalRegistry registry(home_.path() + "/registry");
  ASSERT_EQ(registry.push("oci:" + home_.path() + "/images/busybox:latest", "team/busybox:1"), "");
  const std::string image = registry.host() + "/team/busybox:1";
  std::string spec =
      spec_file("((from \"" + image +
                "\")\n"
                " (run (shell \"echo built on $(head -n 1 /etc/group) > /built; cat /built\")))\n");
  ProcessResult first = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err << registry.log();
  EXPECT_EQ(count_of(first.out, "---> saved as"), 2u) << first.out;
  EXPECT_THAT(first.out, HasSubstr("built on root:x:0:"));
  // dockerd asked the registry for the tag and fetched the blobs, and has
  // the image under its name (an import by kiln's own fetcher would be
  // PREFIX-import:<id>, and gone).
  auto by_dockerd = [&](const std::string& request) {
    std::istringstream lines(registry.log());
    int n = 0;
    for (std::string line; std::getline(lines, line);)
      if (line.find(request) != std::string::npos && line.find("\"docker/") != std::string::npos) ++n;
    return n;
  };
  EXPECT_GE(by_dockerd("\"HEAD /v2/team/busybox/manifests/1 HTTP"), 1) << registry.log();
  EXPECT_GE(by_dockerd("\"GET /v2/team/busybox/blobs/sha256:"), 1) << registry.log();
  auto pulled = client_->inspect_image(image);
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  std::string id = got_id(first);
  ASSERT_FALSE(id.empty()) << first.out;
  std::string result = std::string(kPrefix) + ":" + id;
  EXPECT_EQ(file_in(result, "/built"), "built on root:x:0:\n");
  auto info = client_->inspect_image(result);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->labels["kiln.step"], id);
  EXPECT_EQ(our_containers(), 0u);

  // Both steps from cache, with the registry down.
  registry.stop();
  ProcessResult second = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), id);
  EXPECT_EQ(count_of(second.out, " from cache"), 2u) << second.out;
  EXPECT_THAT(second.out, Not(HasSubstr("saved as")));
  EXPECT_EQ(our_containers(), 0u);
}

// The admin commands go through the Store: on docker they remove images.
TEST_F(DockerBuildE2eTest, HealthcheckStatsDeletePruneAndCleanWork) {
  ProcessResult health = kiln({"healthcheck"});
  ASSERT_EQ(health.exit_code, 0) << health.out << health.err;
  EXPECT_THAT(health.out, HasSubstr("healthy"));
  std::string spec =
      spec_file("((from busybox)\n (run (shell \"echo a > /a\"))\n (run (shell \"echo b > /b\")))\n");
  ProcessResult built = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::string id = got_id(built);
  ASSERT_FALSE(id.empty());
  // --output reads the files out of the result's image; --push says it cannot.
  std::string out = home_.path() + "/out";
  ProcessResult output = kiln({"build", "-f", spec, "--output", "/a:" + out, context_});
  ASSERT_EQ(output.exit_code, 0) << output.out << output.err;
  EXPECT_THAT(output.err, HasSubstr("kiln: output /a -> " + out + ": 1 entries"));
  auto a = read_file(out + "/a");
  EXPECT_EQ(a.value_or("(unreadable)"), "a\n");
  ProcessResult missing = kiln({"build", "-f", spec, "--output", "/nope:" + out, context_});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("/nope does not exist in the result"));
  ProcessResult push = kiln({"build", "-f", spec, "--push", "127.0.0.1:9/kiln/x:1", context_});
  EXPECT_NE(push.exit_code, 0);
  // A registry that is not there: the error names it, and the push leaves nothing in dockerd.
  EXPECT_THAT(push.err, AllOf(HasSubstr("pushing 127.0.0.1:9/kiln/x:1"), HasSubstr("connection refused")));
  EXPECT_FALSE(client_->inspect_image("127.0.0.1:9/kiln/x:1"));
  EXPECT_EQ(our_containers(), 0u);
  auto ours = [&] {
    auto images = client_->list_images({.labels = {std::string("kiln.store=") + kPrefix}});
    EXPECT_TRUE(images) << images.error().to_string();
    std::size_t tags = 0;
    for (const auto& image : images ? *images : std::vector<docker::ImageSummary>{})
      tags += image.repo_tags.size();
    return tags;
  };
  EXPECT_EQ(ours(), 3u);  // the healthcheck removed its own check step; its base is the same (from)
  ProcessResult stats = kiln({"stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("results: 3"));
  ProcessResult deleted = kiln({"delete", id});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.out << deleted.err;
  EXPECT_FALSE(client_->inspect_image(std::string(kPrefix) + ":" + id));
  EXPECT_EQ(ours(), 2u);
  ProcessResult pruned = kiln({"prune"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.out << pruned.err;
  EXPECT_EQ(ours(), 0u);
  ASSERT_EQ(kiln({"build", "-f", spec, context_}).exit_code, 0);
  EXPECT_EQ(ours(), 3u);
  ProcessResult cleaned = kiln({"clean"});
  ASSERT_EQ(cleaned.exit_code, 0) << cleaned.out << cleaned.err;
  EXPECT_EQ(ours(), 0u);
  EXPECT_EQ(our_containers(), 0u);
}

// kill -9 of `kiln build` while its step runs: the sandbox's watchdog kills
// the step's processes (through the cgroup parent of the step containers),
// dockerd sees the container exit, and the next build's store open removes
// it. Without the watchdog the container keeps running under dockerd.
TEST_F(DockerBuildE2eTest, AKilledBuildsStepContainerStopsAndTheNextBuildRemovesIt) {
  std::string spec = spec_file("((from busybox)\n (run (shell \"sleep 600\")))\n");
  auto running = [&] {
    auto list = client_->list_containers({.labels = {std::string("kiln.store=") + kPrefix}});
    EXPECT_TRUE(list) << list.error().to_string();
    std::size_t n = 0;
    for (const auto& c : list ? *list : std::vector<docker::ContainerSummary>{}) n += c.state == "running";
    return n;
  };
  testing::Child build(
      {"/usr/bin/env", "KILN_HOME=" + home_.path(), KILN_BINARY, "build", "--store",
       std::string("docker:") + kPrefix, "--docker-host", dockerd_.host(), "-f", spec, context_},
      home_.path() + "/killed-build.log");
  ASSERT_TRUE(testing::eventually([&] { return running() == 1; }, std::chrono::seconds(120))) << build.log();
  build.kill_now();
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_TRUE(testing::eventually([&] { return running() == 0; }, std::chrono::seconds(15)))
      << "the step container still runs 15 s after its build was killed";
  RecordProperty(
      "ms_until_the_container_stopped",
      static_cast<int>((std::chrono::steady_clock::now() - killed) / std::chrono::milliseconds(1)));
  EXPECT_EQ(our_containers(), 1u);  // stopped, not removed: nothing ran to remove it

  ProcessResult next =
      kiln({"build", "-f", spec_file("((from busybox)\n (run (shell \"echo next\")))\n"), context_});
  ASSERT_EQ(next.exit_code, 0) << next.out << next.err;
  EXPECT_THAT(next.out, HasSubstr("next"));
  EXPECT_EQ(our_containers(), 0u);
}

// The line of `ls` output naming `name` ("" when none does).
std::string line_naming(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (line.ends_with(" " + name)) return line;
  return "";
}

// Copy steps: the files are laid out on the host by the builder's copy code
// and put into the step's container; a run step then reads them.
TEST_F(DockerBuildE2eTest, CopyStepsPutContextFilesIntoTheImageThenServeThemFromCache) {
  ASSERT_TRUE(write_file(context_ + "/hello.txt", "hello from the context\n"));
  ASSERT_TRUE(write_file(context_ + "/tool.sh", "#!/bin/sh\necho tool\n"));
  std::filesystem::permissions(context_ + "/tool.sh", std::filesystem::perms(0700));
  std::filesystem::create_directories(context_ + "/dir/sub");
  ASSERT_TRUE(write_file(context_ + "/dir/sub/inner.txt", "inner\n"));
  std::string spec = spec_file(
      "((from busybox)\n"
      " (copy (src hello.txt tool.sh) (dst /etc/kiln/))\n"
      " (copy (src dir) (dst /app/dir))\n"
      " (user (name nobody))\n"
      " (copy (src hello.txt) (dst /tmp/mine.txt))\n"
      " (run (shell \"cat /etc/kiln/hello.txt /app/dir/sub/inner.txt; /etc/kiln/tool.sh; "
      "ls -ln /etc/kiln /app/dir /tmp/mine.txt; ls -lnd /etc /app/dir/sub\")))\n");
  ProcessResult first = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(count_of(first.out, "---> saved as"), 5u) << first.out;
  EXPECT_THAT(first.out, HasSubstr("hello from the context\ninner\ntool\n")) << first.out;
  // Modes as copy_files.h normalises them, owner root (then the stage's user), mtime 0.
  EXPECT_THAT(line_naming(first.out, "hello.txt"), ::testing::StartsWith("-rw-r--r--")) << first.out;
  EXPECT_THAT(line_naming(first.out, "hello.txt"), ::testing::MatchesRegex(".* 0 +0 .* 1970 hello.txt"));
  EXPECT_THAT(line_naming(first.out, "tool.sh"), ::testing::StartsWith("-rwxr-xr-x")) << first.out;
  EXPECT_THAT(line_naming(first.out, "sub"), ::testing::StartsWith("drwxr-xr-x")) << first.out;
  EXPECT_THAT(line_naming(first.out, "/tmp/mine.txt"),
              ::testing::MatchesRegex("-rw-r--r-- .* 65534 +65534 .* 1970 /tmp/mine.txt"))
      << first.out;
  // /etc was in the image: the copy left its mode and owner alone.
  EXPECT_THAT(line_naming(first.out, "/etc"), ::testing::MatchesRegex("drwxr-xr-x .* 0 +0 .*")) << first.out;
  std::string id = got_id(first);
  ASSERT_FALSE(id.empty()) << first.out;
  std::string image = std::string(kPrefix) + ":" + id;
  EXPECT_EQ(file_in(image, "/app/dir/sub/inner.txt"), "inner\n");
  EXPECT_EQ(file_in(image, "/etc/kiln/hello.txt"), "hello from the context\n");
  auto info = client_->inspect_image(image);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->labels["kiln.kind"], "result");
  EXPECT_EQ(info->cmd, std::vector<std::string>{"/bin/sh"});  // the copy's container's command is not kept
  EXPECT_EQ(our_containers(), 0u);
  EXPECT_FALSE(path_exists(home_.path() + "/docker-" + kPrefix + "/result/" + id + "/copy"));

  ProcessResult second = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), id);
  EXPECT_EQ(count_of(second.out, " from cache"), 5u) << second.out;
  EXPECT_THAT(second.out, Not(HasSubstr("saved as")));

  // A changed file is a new copy step, and the image has the new content.
  ASSERT_TRUE(write_file(context_ + "/hello.txt", "changed\n"));
  ProcessResult third = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_THAT(third.out, HasSubstr("changed\ninner\ntool\n")) << third.out;
  EXPECT_EQ(our_containers(), 0u);
}

// A copy whose destination goes through symlinks in the image (/lib ->
// usr/lib on merged-/usr distributions) lands where they point, as on the
// other stores: relative and absolute links, a chain of two, and `..` that
// would climb above the image's root stopping there; the links stay links.
TEST_F(DockerBuildE2eTest, CopyThroughSymlinksInTheImageLandsWhereTheyPoint) {
  ASSERT_TRUE(write_file(context_ + "/a.txt", "a\n"));
  std::string spec = spec_file(
      "((from busybox)\n"
      " (run (shell \"mkdir -p /usr/lib/app /srv/real && ln -s usr/lib /lib2 && ln -s /lib2/app /app2 && "
      "ln -s ../../.. /srv/real/up\"))\n"
      " (copy (src a.txt) (dst /lib2/app/rel.txt))\n"
      " (copy (src a.txt) (dst /app2/))\n"
      " (copy (src a.txt) (dst /srv/real/up/etc/up.txt))\n"
      " (run (shell \"ls /usr/lib/app; cat /etc/up.txt; test -L /lib2 && test -L /app2 && echo "
      "links-kept\")))\n");
  ProcessResult built = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_THAT(built.out, HasSubstr("a.txt\nrel.txt\na\nlinks-kept\n")) << built.out;
  std::string image = std::string(kPrefix) + ":" + got_id(built);
  EXPECT_EQ(file_in(image, "/usr/lib/app/rel.txt"), "a\n");
  EXPECT_EQ(file_in(image, "/usr/lib/app/a.txt"), "a\n");
  EXPECT_EQ(file_in(image, "/etc/up.txt"), "a\n");

  // A link to nothing is an error that names it; nothing is left behind.
  std::string dangling = spec_file(
      "((from busybox)\n (run (shell \"ln -s /nowhere/x /dangling\"))\n (copy (src a.txt) (dst "
      "/dangling/a.txt)))\n");
  ProcessResult failed = kiln({"build", "-f", dangling, context_});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_THAT(failed.err + failed.out, HasSubstr("/nowhere does not exist in the image")) << failed.err;
  EXPECT_EQ(our_containers(), 0u);
}

// A copy from a build stage reads the stage's image (GET /archive) into a
// host directory and copies from there, modes and content kept.
TEST_F(DockerBuildE2eTest, CopyFromABuildStageReadsTheStagesImage) {
  std::string spec = spec_file(
      "((build dev ((from busybox)\n"
      "             (run (shell \"mkdir -p /out/bin && echo built > /out/note && "
      "printf '#!/bin/sh\\necho tool-ran\\n' > /out/bin/tool && chmod 700 /out/bin/tool\"))))\n"
      " (from busybox)\n"
      " (copy (from (build dev)) (src /out/note /out/bin) (dst /opt/))\n"
      " (run (shell \"cat /opt/note; /opt/bin/tool; ls -ln /opt/bin\")))\n");
  ProcessResult first = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, HasSubstr("built\ntool-ran\n")) << first.out;
  EXPECT_THAT(line_naming(first.out, "tool"), ::testing::MatchesRegex("-rwxr-xr-x .* 0 +0 .* 1970 tool"))
      << first.out;
  std::string id = got_id(first);
  ASSERT_FALSE(id.empty()) << first.out;
  EXPECT_EQ(file_in(std::string(kPrefix) + ":" + id, "/opt/note"), "built\n");
  EXPECT_EQ(our_containers(), 0u);  // the container the stage was read through went too

  ProcessResult second = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), id);
  EXPECT_THAT(second.out, Not(HasSubstr("saved as")));
}

// `--push` on a docker store: dockerd pushes the result image under the
// reference, with the config the spec leaves (an env and workdir set after
// the last step included) and kiln's labels emptied; no layer is added, and
// the pushed name and the container that carried the config are gone after.
TEST_F(DockerBuildE2eTest, PushesAResultThroughDockerdWithTheSpecsFinalConfig) {
  testing::LocalRegistry registry(home_.path() + "/registry");
  const std::string ref = registry.host() + "/team/app:1";
  std::string spec = spec_file(
      "((from busybox)\n"
      " (run (shell \"echo pushed-from-docker > /greeting\"))\n"
      " (env GREETING hi)\n"
      " (workdir /srv))\n");
  ProcessResult pushed = kiln({"build", "--push", ref, "-f", spec, context_});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err << registry.log();
  std::smatch m;
  std::string out = pushed.out;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("Pushed: (\\S+)@(sha256:[0-9a-f]{64})"))) << pushed.out;
  EXPECT_EQ(m[1].str(), ref);
  const std::string digest = m[2].str();
  EXPECT_THAT(pushed.err, HasSubstr("uploaded")) << pushed.err;
  std::string id = got_id(pushed);
  ASSERT_FALSE(id.empty()) << pushed.out;
  // dockerd made the requests (its user agent), and kept nothing of the push.
  EXPECT_NE(registry.log().find("\"PUT /v2/team/app/manifests/1 HTTP"), std::string::npos) << registry.log();
  EXPECT_FALSE(client_->inspect_image(ref));
  EXPECT_EQ(our_containers(), 0u);
  EXPECT_TRUE(client_->inspect_image(std::string(kPrefix) + ":" + id));  // the store's own stays

  // The registry holds the base's layer and the step's, nothing more.
  ProcessResult layers = run_process(
      {"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--format", "{{len .Layers}}", "docker://" + ref});
  ASSERT_EQ(layers.exit_code, 0) << layers.err;
  EXPECT_EQ(layers.out, "2\n");
  // Pulled back (by digest), it has the step's file and the final config.
  const std::string by_digest = registry.host() + "/team/app@" + digest;
  ASSERT_TRUE(client_->pull_image(by_digest, nullptr, nullptr));
  EXPECT_EQ(file_in(by_digest, "/greeting"), "pushed-from-docker\n");
  auto info = client_->inspect_image(by_digest);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_THAT(info->env, ::testing::Contains("GREETING=hi"));
  EXPECT_EQ(info->working_dir, "/srv");
  EXPECT_EQ(info->cmd, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(info->labels["kiln.store"], "");
  EXPECT_EQ(info->labels["kiln.step"], id);
  ASSERT_TRUE(client_->remove_image(by_digest));

  // Pushed again from cache under a second tag: the same layers (docker's
  // commit dates the config, so the digest is a new one).
  ProcessResult again = kiln({"build", "--push", registry.host() + "/team/app:2", "-f", spec, context_});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, HasSubstr("Pushed: " + registry.host() + "/team/app:2@sha256:"));
  EXPECT_EQ(count_of(again.err, ": Layer already exists\n"), 2u) << again.err;
  EXPECT_THAT(again.err, Not(HasSubstr("uploaded")));
}

// A registry that wants a login: refused clearly without one, pushed with
// the docker config's (as `docker push` after `docker login`).
TEST_F(DockerBuildE2eTest, PushUsesTheDockerConfigsLoginAndSaysWhenItIsRefused) {
  std::string tls = home_.path() + "/tls";
  ASSERT_EQ(testing::make_tls_and_htpasswd(tls, "kiln", "s3cret"), "");
  testing::LocalRegistry secure(home_.path() + "/secure", {.tls_certificate = tls + "/server.pem",
                                                           .tls_key = tls + "/server.key",
                                                           .htpasswd = tls + "/htpasswd"});
  const std::string ref = secure.host() + "/team/app:1";
  std::string spec = spec_file("((from busybox)\n (run (shell \"echo secret-app > /app\")))\n");
  ProcessResult anonymous = kiln({"build", "--push", ref, "-f", spec, context_});
  EXPECT_EQ(anonymous.exit_code, 1) << anonymous.out << anonymous.err;
  EXPECT_THAT(anonymous.err,
              AllOf(HasSubstr(ref), HasSubstr("no basic auth credentials"), HasSubstr("docker login")))
      << anonymous.err;
  EXPECT_THAT(anonymous.out, Not(HasSubstr("Pushed:")));
  EXPECT_EQ(our_containers(), 0u);

  std::filesystem::create_directories(docker_config_);
  ASSERT_TRUE(write_file(
      docker_config_ + "/config.json",
      R"({"auths": {")" + secure.host() + R"(": {"auth": "a2lsbjpzM2NyZXQ="}}})" /* kiln:s3cret */));
  ProcessResult with_login = kiln({"build", "--push", ref, "-f", spec, context_});
  ASSERT_EQ(with_login.exit_code, 0) << with_login.out << with_login.err << secure.log();
  EXPECT_THAT(with_login.out, HasSubstr("Pushed: " + ref + "@sha256:"));
  EXPECT_THAT(with_login.err + with_login.out, Not(HasSubstr("s3cret")));
  ProcessResult inspected = run_process({"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--creds",
                                         "kiln:s3cret", "--format", "{{len .Layers}}", "docker://" + ref});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(inspected.out, "2\n");
}

}  // namespace
}  // namespace kiln
