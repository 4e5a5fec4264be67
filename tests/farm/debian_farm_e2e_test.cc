// A real compile through the farm: kiln-scheduler and two kiln-worker
// processes (runc, overlayfs) on 127.0.0.1, without keys (loopback only),
// building examples/debian/compile.spec (make and gcc on the Debian 12 image
// of scripts/make-debian-image) submitted with `kiln submit`. Each worker
// builds it once cold, with the same step ids and result; a third submission
// is served from a worker's cache and its log replays the compile, not the
// image fetch's progress. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/farm/raw_peers.h"
#include "tests/support/debian_image.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class DebianFarm : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    debian_ = debian_image_reference(&error);
    ASSERT_FALSE(debian_.empty()) << error;
    scheduler_ = std::make_unique<SchedulerProcess>(dir_.path() + "/scheduler");
    client_ = scheduler_->client();
    for (const std::string name : {"w1", "w2"}) {
      workers_[name] = std::make_unique<Child>(
          std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", scheduler_->worker_endpoint(), "--name",
                                   name, "--capacity", "1", "--state-dir", dir_.path() + "/" + name,
                                   "--image-alias", "debian=" + debian_},
          dir_.path() + "/" + name + ".log");
    }
    for (const auto& [name, child] : workers_)
      ASSERT_TRUE(eventually([&] { return connected(name); })) << name << ":\n" << child->log();
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

  // `kiln submit` of the README's example; the job once it has ended, and its log.
  struct Finished {
    proto::JobInfo job;
    std::string log;
  };
  Finished submit_and_wait() {
    std::string examples = source_dir() + "/examples/debian";
    auto r = run_process({KILN_BINARY, "submit", "-f", examples + "/compile.spec", examples + "/context",
                          "--scheduler", scheduler_->client_endpoint()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    std::string id = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    Finished finished;
    auto deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = client_->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 5000});
      if (s && (s->job.state == "succeeded" || s->job.state == "failed" || s->job.state == "cancelled")) {
        finished.job = s->job;
        break;
      }
    }
    EXPECT_FALSE(finished.job.state.empty()) << "job " << id << " did not end";
    auto log = client_->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 0, .max_bytes = 1 << 20});
    EXPECT_TRUE(log);
    if (log) finished.log = log->data;
    return finished;
  }

  TempDir dir_;
  std::string debian_;
  std::unique_ptr<SchedulerProcess> scheduler_;
  std::unique_ptr<proto::Client> client_;
  std::map<std::string, std::unique_ptr<Child>> workers_;
};

TEST_F(DebianFarm, EachWorkerCompilesTheSameJobToTheSameIdsThenItIsServedFromCache) {
  // Cold on w1 (w2 paused), then cold on w2 (w1 paused).
  std::map<std::string, Finished> cold;
  for (const auto& [builds, waits] : {std::pair{"w1", "w2"}, std::pair{"w2", "w1"}}) {
    act(waits, "pause");
    Finished f = submit_and_wait();
    act(waits, "unpause");
    ASSERT_EQ(f.job.state, "succeeded") << f.job.error << "\n" << f.log << workers_[builds]->log();
    EXPECT_EQ(f.job.worker, builds);
    ASSERT_EQ(f.job.steps.size(), 3u);  // from, copy, run
    EXPECT_FALSE(f.job.steps.back().cached);
    EXPECT_THAT(f.log, HasSubstr("cc -O2 -Wall   -c -o hello.o hello.c\n"));
    EXPECT_THAT(f.log, HasSubstr("hello, world from Debian, built by gcc 12."));
    EXPECT_THAT(f.log, HasSubstr("  layer 1/1: 16.0 MiB of "));  // live, while it was fetched
    cold[builds] = std::move(f);
  }
  EXPECT_EQ(cold["w1"].job.result, cold["w2"].job.result);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(cold["w1"].job.steps[i].id, cold["w2"].job.steps[i].id);

  // Both warm now: whichever gets it serves every step from its cache, and
  // the replayed log is the steps' own (the compile), not the fetch's progress.
  Finished warm = submit_and_wait();
  ASSERT_EQ(warm.job.state, "succeeded") << warm.job.error << "\n" << warm.log;
  EXPECT_EQ(warm.job.result, cold["w1"].job.result);
  ASSERT_EQ(warm.job.steps.size(), 3u);
  for (const auto& step : warm.job.steps) EXPECT_TRUE(step.cached) << step.description;
  EXPECT_THAT(warm.log, HasSubstr("hello, world from Debian"));
  EXPECT_THAT(warm.log, HasSubstr("unpacking layer 1/1 sha256:"));
  EXPECT_THAT(warm.log, Not(HasSubstr(" MiB of "))) << warm.log;
}

}  // namespace
}  // namespace kiln::testing
