#include "common/proto/farm_json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>

namespace kiln::proto {
namespace {

using nlohmann::json;

JobInfo sample_job() {
  return JobInfo{.id = "j7",
                 .state = "succeeded",
                 .pool = "linux-x86_64",
                 .client = "ci",
                 .urgent = true,
                 .spec_name = "app.spec",
                 .context = {.kind = ContextRef::Kind::kTar, .digest = "sha256:ab", .size = 2048},
                 .worker = "w1",
                 .attempt = 2,
                 .submitted_at_ms = 1000,
                 .started_at_ms = 2000,
                 .finished_at_ms = 3500,
                 .result = "3f1c",
                 .steps = {{.id = "9a0b", .description = "(from busybox)", .cached = true, .seconds = 0.1}},
                 .attempts = {{.number = 1, .worker = "w2", .assigned_at_ms = 1500, .outcome = "lost"},
                              {.number = 2,
                               .worker = "w1",
                               .assigned_at_ms = 1900,
                               .ended_at_ms = 3500,
                               .outcome = "succeeded"}},
                 .log_bytes = 97,
                 .spec = "((from busybox))\n",
                 .secret_ids = {"token"},
                 .timeout_seconds = 120,
                 .labels = {"arch=x86_64"},
                 .planned_steps = {"9a0b"},
                 .estimate_seconds = 900,
                 .pull = "always"};
}

std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& [key, value] : object.items()) out.insert(key);
  return out;
}

TEST(FarmJson, AJobListedHasEveryFieldButSpecStepsAndAttempts) {
  json j = job_to_json(sample_job(), JobJsonDetail::kList);
  EXPECT_EQ(keys(j), (std::set<std::string>{"id",
                                            "state",
                                            "pool",
                                            "client",
                                            "urgent",
                                            "spec_name",
                                            "context",
                                            "worker",
                                            "attempt",
                                            "submitted_at_ms",
                                            "started_at_ms",
                                            "finished_at_ms",
                                            "result",
                                            "push",
                                            "pushed",
                                            "error",
                                            "log_bytes",
                                            "labels",
                                            "timeout_seconds",
                                            "estimate_seconds",
                                            "pull",
                                            "cancel_requested",
                                            "secret_ids"}));
  EXPECT_EQ(j["urgent"], true);
  EXPECT_EQ(j["finished_at_ms"], 3500);
  EXPECT_EQ(j["context"], (json{{"kind", "tar"}, {"digest", "sha256:ab"}, {"size", 2048}}));
  EXPECT_EQ(j["labels"], json::array({"arch=x86_64"}));
  EXPECT_EQ(j["secret_ids"], json::array({"token"}));
  EXPECT_EQ(j["estimate_seconds"], 900.0);
  EXPECT_EQ(j["pull"], "always");
}

TEST(FarmJson, AJobInFullAddsSpecStepsAndAttempts) {
  json j = job_to_json(sample_job(), JobJsonDetail::kFull);
  EXPECT_EQ(j["spec"], "((from busybox))\n");
  ASSERT_EQ(j["steps"].size(), 1u);
  EXPECT_EQ(j["steps"][0],
            (json{{"id", "9a0b"}, {"description", "(from busybox)"}, {"cached", true}, {"seconds", 0.1}}));
  ASSERT_EQ(j["attempts"].size(), 2u);
  EXPECT_EQ(j["attempts"][0], (json{{"number", 1},
                                    {"worker", "w2"},
                                    {"assigned_at_ms", 1500},
                                    {"ended_at_ms", 0},
                                    {"outcome", "lost"}}));
  EXPECT_FALSE(j.contains("planned_steps"));
  // A (from ...) step says what its base resolved to.
  JobInfo pulled = sample_job();
  pulled.steps[0].image = "127.0.0.1:5000/team/busybox@sha256:cd";
  EXPECT_EQ(job_to_json(pulled, JobJsonDetail::kFull)["steps"][0]["image"],
            "127.0.0.1:5000/team/busybox@sha256:cd");
}

TEST(FarmJson, ContextKinds) {
  JobInfo git{.context = {.kind = ContextRef::Kind::kGit, .git_repo = "file:///r", .git_commit = "abc"}};
  EXPECT_EQ(job_to_json(git, JobJsonDetail::kList)["context"],
            (json{{"kind", "git"}, {"git_repo", "file:///r"}, {"git_commit", "abc"}}));
  EXPECT_EQ(job_to_json(JobInfo{}, JobJsonDetail::kList)["context"], (json{{"kind", "none"}}));
}

TEST(FarmJson, AWorker) {
  WorkerInfo w{.name = "w1",
               .pool = "linux-x86_64",
               .state = "active",
               .capacity = 2,
               .labels = {"arch=x86_64"},
               .running = {"j7"},
               .stats = {.disk_free_bytes = 10,
                         .disk_total_bytes = 100,
                         .store_items = 3,
                         .store_bytes = 40,
                         .cache_hits = 5,
                         .cache_misses = 1,
                         .running_jobs = 1,
                         .healthy = false,
                         .image_cache_bytes = 7},
               .last_heartbeat_ms = 1234,
               .connected = true};
  EXPECT_EQ(worker_to_json(w), (json{{"name", "w1"},
                                     {"pool", "linux-x86_64"},
                                     {"state", "active"},
                                     {"connected", true},
                                     {"capacity", 2},
                                     {"running_jobs", 1},
                                     {"running", {"j7"}},
                                     {"labels", {"arch=x86_64"}},
                                     {"disk_free_bytes", 10},
                                     {"disk_total_bytes", 100},
                                     {"store_items", 3},
                                     {"store_bytes", 40},
                                     {"image_cache_bytes", 7},
                                     {"cache_hits", 5},
                                     {"cache_misses", 1},
                                     {"healthy", false},
                                     {"last_heartbeat_ms", 1234}}));
}

TEST(FarmJson, DumpIndentsEndsWithANewlineAndReplacesInvalidUtf8) {
  EXPECT_EQ(dump_json(json{{"b", 1}, {"a", "x"}}), "{\n  \"a\": \"x\",\n  \"b\": 1\n}\n");
  EXPECT_EQ(dump_json(json{{"error", "bad \xff byte"}}), "{\n  \"error\": \"bad \xEF\xBF\xBD byte\"\n}\n");
}

}  // namespace
}  // namespace kiln::proto
