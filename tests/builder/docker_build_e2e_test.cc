// `kiln build --store docker:PREFIX --docker-host ...` end to end against a
// private dockerd (tests/support/local_dockerd.h): a spec with a (from) of
// kiln's busybox base image (an oci: layout, fetched by kiln and imported
// into dockerd) and run steps is built into images PREFIX:<step id>, then
// served from cache; a run step's user comes from the base's /etc/passwd.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fs.h"
#include "tests/support/kiln_output.h"
#include "tests/support/local_dockerd.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "worker/docker/container_files.h"
#include "worker/docker/docker_client.h"

namespace kiln {
namespace {

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
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path(), KILN_BINARY};
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
  EXPECT_NE(token, "s3cr3t-value");
  // What dockerd leaves at the mount point (docs/store.md: an empty entry).
  EXPECT_TRUE(!token || token->empty()) << *token;
  auto log = file_in(image, "/var/cache/c/log");
  EXPECT_TRUE(!log || log->empty()) << *log;
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

}  // namespace
}  // namespace kiln
