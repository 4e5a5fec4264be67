// Base images from a registry through the farm: kiln-scheduler and two
// kiln-worker processes (runc, overlayfs) on 127.0.0.1, a real
// `docker-registry` started by the test holding the busybox image of
// scripts/make-base-image, and jobs sent with `kiln submit --pull always`.
// Each worker pulls the image once into its own cache and builds the job on
// it; the job's status (`kiln status`, text and JSON) shows the digest the
// tag resolved to. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/farm/raw_peers.h"
#include "tests/support/local_registry.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class RegistryFarm : public ::testing::Test {
 protected:
  void SetUp() override {
    ProcessResult made =
        run_process({source_dir() + "/scripts/make-base-image", dir_.path() + "/layout/busybox"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    registry_ = std::make_unique<LocalRegistry>(dir_.path() + "/registry");
    ASSERT_EQ(registry_->push("oci:" + dir_.path() + "/layout/busybox:latest", "team/busybox:1"), "");
    image_ = registry_->host() + "/team/busybox:1";
    scheduler_ = std::make_unique<SchedulerProcess>(dir_.path() + "/scheduler");
    client_ = scheduler_->client();
    for (const std::string name : {"w1", "w2"}) {
      workers_[name] = std::make_unique<Child>(
          std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", scheduler_->worker_endpoint(), "--name",
                                   name, "--capacity", "1", "--state-dir", dir_.path() + "/" + name,
                                   "--insecure-registry", registry_->host()},
          dir_.path() + "/" + name + ".log");
    }
    for (const auto& [name, child] : workers_)
      ASSERT_TRUE(eventually([&] { return connected(name); })) << name << ":\n" << child->log();
    std::filesystem::create_directories(dir_.path() + "/context");
    std::ofstream(dir_.path() + "/job.spec")
        << "((from \"" << image_
        << "\")\n (run (shell \"echo built on busybox $(busybox | head -n 1 | cut -c1-15)\")))\n";
  }

  void TearDown() override {
    for (auto& [name, child] : workers_) {
      if (child->running()) child->stop(10s);
    }
  }

  bool connected(const std::string& name) {
    auto list = client_->call<proto::Workers>(proto::ListWorkers{}, 2s);
    if (!list) return false;
    for (const auto& w : list->workers) {
      if (w.name == name && w.connected) return true;
    }
    return false;
  }

  void act(const std::string& worker, const std::string& action) {
    auto r = client_->call<proto::Ok>(proto::WorkerAction{.worker = worker, .action = action});
    ASSERT_TRUE(r) << action << " " << worker << ": " << r.error().to_string();
  }

  // `kiln submit --pull always`; the job's id once it has ended.
  std::string submit_and_wait() {
    auto r = run_process({KILN_BINARY, "submit", "-f", dir_.path() + "/job.spec", dir_.path() + "/context",
                          "--pull", "always", "--scheduler", scheduler_->client_endpoint()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    std::string id = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = client_->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 5000});
      if (s && (s->job.state == "succeeded" || s->job.state == "failed" || s->job.state == "cancelled"))
        break;
    }
    return id;
  }

  ProcessResult status(const std::string& id, bool json) {
    std::vector<std::string> argv = {KILN_BINARY, "status", id, "--scheduler", scheduler_->client_endpoint()};
    if (json) argv.push_back("--json");
    return run_process(argv);
  }

  // What the registry says the tag names.
  std::string tag_digest() const {
    std::ifstream link(registry_->storage() +
                       "/docker/registry/v2/repositories/team/busybox/_manifests/tags/1/current/link");
    std::string digest;
    link >> digest;
    return digest;
  }

  TempDir dir_;
  std::unique_ptr<LocalRegistry> registry_;
  std::string image_;
  std::unique_ptr<SchedulerProcess> scheduler_;
  std::unique_ptr<proto::Client> client_;
  std::map<std::string, std::unique_ptr<Child>> workers_;
};

TEST_F(RegistryFarm, TwoWorkersPullTheSameImageAndTheStatusShowsItsDigest) {
  const std::string digest = tag_digest();
  ASSERT_TRUE(digest.starts_with("sha256:")) << digest;
  const std::string resolved = registry_->host() + "/team/busybox@" + digest;
  std::map<std::string, std::string> jobs;
  for (const auto& [builds, waits] : {std::pair{"w1", "w2"}, std::pair{"w2", "w1"}}) {
    act(waits, "pause");
    std::string id = submit_and_wait();
    act(waits, "unpause");
    auto job = client_->call<proto::Job>(proto::GetStatus{.job_id = id});
    ASSERT_TRUE(job) << job.error().to_string();
    ASSERT_EQ(job->job.state, "succeeded") << job->job.error << "\n" << workers_[builds]->log();
    EXPECT_EQ(job->job.worker, builds);
    EXPECT_EQ(job->job.pull, "always");
    ASSERT_EQ(job->job.steps.size(), 2u);
    EXPECT_FALSE(job->job.steps[0].cached);  // each worker pulled it
    EXPECT_EQ(job->job.steps[0].image, resolved);
    EXPECT_EQ(job->job.steps[1].image, "");
    jobs[builds] = id;
  }
  // The same step ids on both workers (the (from) id is the spec's text).
  auto w1 = client_->call<proto::Job>(proto::GetStatus{.job_id = jobs["w1"]});
  auto w2 = client_->call<proto::Job>(proto::GetStatus{.job_id = jobs["w2"]});
  ASSERT_TRUE(w1 && w2);
  EXPECT_EQ(w1->job.result, w2->job.result);
  ProcessResult text = status(jobs["w2"], false);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("pull:      always\n"));
  EXPECT_THAT(text.out, HasSubstr("is " + resolved + "\n"));
  ProcessResult json = status(jobs["w1"], true);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto parsed = nlohmann::json::parse(json.out);
  EXPECT_EQ(parsed["steps"][0]["image"], resolved);
  EXPECT_FALSE(parsed["steps"][1].contains("image"));
  EXPECT_EQ(parsed["pull"], "always");
  // Each worker has its own image cache, holding the manifest it resolved.
  for (const std::string name : {"w1", "w2"})
    EXPECT_TRUE(
        std::filesystem::exists(dir_.path() + "/" + name + "/image-cache/blobs/sha256/" + digest.substr(7)))
        << name;

  // A bad --pull is refused before anything is sent.
  auto bad = run_process({KILN_BINARY, "submit", "-f", dir_.path() + "/job.spec", dir_.path() + "/context",
                          "--pull", "sometimes", "--scheduler", scheduler_->client_endpoint()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--pull \"sometimes\": expected always, missing or never"));
}

}  // namespace
}  // namespace kiln::testing
