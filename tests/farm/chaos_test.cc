// Chaos (issue 13, item 9): a real farm under load while its parts fail.
// The real kiln-scheduler and three real kiln-workers (runc steps on
// overlayfs; w3 "on another host", in a network namespace joined by a veth
// pair) run 320 small jobs while a seeded schedule of faults plays for
// KILN_CHAOS_SECONDS (default 75), one every 0.5-2 s: kill -9 of a worker
// (restarted on the same state), SIGSTOP of a worker for 0.5-2 s or past the
// 3 s lease (4-7 s), kill -9 of the scheduler (restarted on the same state),
// and the namespace's link cut for 0.5-2 s or 4-7 s. Faults overlap. Then
// everything is put back and the test
// asserts what must hold whatever the timing:
//   - every submitted job ended, succeeded, exactly once: one attempt ended
//     "succeeded" (its last), every other attempt "lost", none left open;
//   - jobs with the same spec have the same result, and that result is in
//     the store of the worker that ran the last attempt;
//   - every log holds its job's lines ("job N start", the chatty jobs'
//     numbered lines, "job N end") once each and in order in its last
//     attempt's part, or a "[kiln: ...]" marker saying what is missing;
//   - after one more kill -9 and restart the scheduler says the same of
//     every job (state, result, attempts, log length);
//   - each worker's store, after the worker stopped cleanly, opens with
//     nothing to repair, and every result it lists is readable, with its
//     metadata and its parent.
// The timing (which faults hit which jobs) varies from run to run; the
// schedule of faults is the seed's (KILN_CHAOS_SEED, printed). Needs root
// (runc, overlayfs, ip netns, nsenter). Cleans up whatever happens: the
// children are killed by their destructors, the namespace and veth removed
// by NetnsHost's, mounts detached by TempDir's.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "tests/farm/chaos_support.h"
#include "tests/farm/raw_peers.h"
#include "tests/support/process.h"
#include "worker/store/store.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kJobs = 320;
constexpr int kWorkers = 3;

// The faults. "Past the lease" lasts 4-7 s, longer than the scheduler's 3 s
// lease (unless the scheduler restarts meanwhile), so the worker's jobs run
// again elsewhere while it still runs them; the others last 0.5-2 s.
constexpr const char* kKillWorker = "kill -9 worker";
constexpr const char* kStopWorker = "SIGSTOP worker";
constexpr const char* kStopWorkerLong = "SIGSTOP worker past the lease";
constexpr const char* kKillScheduler = "kill -9 scheduler";
constexpr const char* kCutLink = "cut w3's link";
constexpr const char* kCutLinkLong = "cut w3's link past the lease";

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// The job with tag `tag`: a step shared by a fifth of the jobs (cached after
// its first build on each worker) and one of its own that prints "job N
// start", sleeps up to 0.4 s and prints "job N end". One job in eight is
// chatty instead: 300 numbered lines between the two, in bursts 0.1 s
// apart, so that logs are streaming when the faults strike. Every tenth job
// repeats the previous job's spec whole, so it is served from cache (and its
// log replayed) wherever that job has already run.
struct JobPlan {
  int tag = 0;
  int lines = 0;  // numbered lines between start and end
  std::string spec;
};

constexpr int kChattyLines = 300;

std::vector<JobPlan> plan_jobs(std::mt19937& rng) {
  std::vector<JobPlan> plans;
  std::uniform_int_distribution<int> tenths(0, 4);
  std::map<int, std::string> specs;
  for (int i = 0; i < kJobs; ++i) {
    const int tag = i % 10 == 9 ? i - 1 : i;
    const int lines = tag % 8 == 3 ? kChattyLines : 0;
    if (!specs.contains(tag)) {
      const std::string body =
          lines == 0 ? fmt::format("sleep 0.{}", tenths(rng))
                     : fmt::format(
                           "i=0; while [ $i -lt {} ]; do echo \\\"job $x line $i\\\"; i=$((i+1)); "
                           "if [ $((i % 30)) = 0 ]; then sleep 0.1; fi; done",
                           lines);
      specs[tag] = fmt::format(
          "((from busybox)\n (run (shell \"echo group {}\"))\n"
          " (run (shell \"x={}; echo \\\"job $x start\\\"; {}; echo \\\"job $x end\\\"\")))\n",
          tag % 5, tag, body);
    }
    plans.push_back({tag, lines, specs[tag]});
  }
  return plans;
}

// What the log of a succeeded job must show: its lines, once each and in
// order, in its last attempt's part, or a marker saying what is missing
// there.
enum class LogVerdict { kComplete, kMarked, kIncomplete };

LogVerdict judge_log(const std::string& log, const JobPlan& plan) {
  std::string_view last = log;
  if (auto at = last.rfind("[kiln: attempt "); at != std::string_view::npos) {
    if (last.find(" lost: ", at) != std::string_view::npos) last.remove_prefix(at);
  }
  std::vector<std::string> expected = {fmt::format("job {} start\n", plan.tag)};
  for (int i = 0; i < plan.lines; ++i) expected.push_back(fmt::format("job {} line {}\n", plan.tag, i));
  expected.push_back(fmt::format("job {} end\n", plan.tag));
  // Once each: a superseded attempt's late output, or a chunk resent after
  // a restart, must not be placed again.
  bool complete = true;
  std::size_t from = 0;
  for (const std::string& line : expected) {
    const auto at = last.find(line, from);
    if (at == std::string_view::npos || last.find(line, at + 1) != std::string_view::npos ||
        last.substr(0, at).find(line) != std::string_view::npos) {
      complete = false;
      break;
    }
    from = at + line.size();
  }
  if (complete) return LogVerdict::kComplete;
  if (last.find("are missing") != std::string_view::npos ||
      last.find("could not be read back") != std::string_view::npos)
    return LogVerdict::kMarked;
  return LogVerdict::kIncomplete;
}

class FarmChaos : public ::testing::Test {
 protected:
  void SetUp() override {
    remove_stale_chaos_dirs(std::filesystem::path(dir_.path()).parent_path().string(), dir_.path());
    auto r = run_process({source_dir() + "/scripts/make-base-image", dir_.path() + "/busybox"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    netns_ = std::make_unique<NetnsHost>(static_cast<int>(getpid()));
    ASSERT_TRUE(netns_->ok()) << netns_->error();
    scheduler_ = std::make_unique<SchedulerProcess>(
        dir_.path() + "/scheduler",
        std::vector<std::string>{"--lease-ms", "3000", "--heartbeat-ms", "200", "--insecure"}, "0.0.0.0");
    if (HasFatalFailure()) return;  // the scheduler did not come up (its log is in the failure)
    client_ = scheduler_->client();
    ASSERT_TRUE(client_);
    for (int i = 0; i < kWorkers; ++i) {
      const std::string name = fmt::format("w{}", i + 1);
      // The last worker is on the other side of the veth link.
      const std::string endpoint =
          i == kWorkers - 1 ? fmt::format("tcp://{}:{}", netns_->host_address(), scheduler_->worker_port())
                            : scheduler_->worker_endpoint();
      std::vector<std::string> argv = i == kWorkers - 1 ? netns_->enter_prefix() : std::vector<std::string>{};
      argv.insert(argv.end(), {KILN_WORKER_BINARY, "--scheduler", endpoint, "--name", name, "--capacity", "2",
                               "--state-dir", dir_.path() + "/" + name, "--store",
                               "overlayfs:" + dir_.path() + "/" + name + "/store", "--image-alias",
                               "busybox=oci:" + dir_.path() + "/busybox:latest"});
      workers_.push_back(std::make_unique<ChaosWorker>(name, argv, dir_.path()));
      workers_.back()->start();
    }
    for (auto& w : workers_) {
      ASSERT_TRUE(eventually([&] { return connected(w->name()); }, 30s))
          << w->name() << " did not register:\n"
          << w->child().log();
    }
  }

  void TearDown() override {
    // Stopped workers cannot die of SIGKILL until they run again.
    for (auto& w : workers_) w->resume();
    workers_.clear();
    scheduler_.reset();
    netns_.reset();
  }

  bool connected(const std::string& name) {
    auto list = client_->call<proto::Workers>(proto::ListWorkers{}, 2s);
    if (!list) return false;
    return std::any_of(list->workers.begin(), list->workers.end(),
                       [&](const proto::WorkerInfo& w) { return w.name == name && w.connected; });
  }

  std::string stored_log(const std::string& id) {
    std::string log;
    for (;;) {
      auto r = client_->call<proto::Log>(
          proto::ReadLog{.job_id = id, .offset = log.size(), .max_bytes = 1 << 20}, 10s);
      EXPECT_TRUE(r) << id << ": " << r.error().to_string();
      if (!r || r->data.empty()) return log;
      log += r->data;
    }
  }

  // Lines holding `text` in every log the scheduler wrote (one per start).
  int scheduler_lines(const std::string& text) {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      if (!entry.path().filename().string().starts_with("scheduler.log")) continue;
      std::ifstream in(entry.path());
      for (std::string line; std::getline(in, line);) n += line.find(text) != std::string::npos;
    }
    return n;
  }

  std::string farm_logs() {
    std::string out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      if (entry.path().string().find(".log") == std::string::npos) continue;
      auto r = run_process({"/usr/bin/tail", "-n", "30", entry.path().string()});
      out += "--- " + entry.path().string() + "\n" + r.out;
    }
    return out;
  }

  TempDir dir_{"kiln-chaos"};
  std::unique_ptr<NetnsHost> netns_;
  std::unique_ptr<SchedulerProcess> scheduler_;
  std::unique_ptr<proto::Client> client_;
  std::vector<std::unique_ptr<ChaosWorker>> workers_;
};

TEST_F(FarmChaos, EveryJobEndsExactlyOnceWithItsLogThroughKillsStopsRestartsAndACutLink) {
  const unsigned seed = static_cast<unsigned>(env_int("KILN_CHAOS_SEED", 1313));
  const auto chaos_for = std::chrono::seconds(env_int("KILN_CHAOS_SECONDS", 75));
  std::mt19937 rng(seed);
  const std::vector<JobPlan> plans = plan_jobs(rng);
  std::cout << "chaos seed " << seed << " (KILN_CHAOS_SEED), " << chaos_for.count() << " s of faults\n";

  // --- the faults, on a schedule drawn from the seed
  std::map<std::string, int> actions;
  struct Undo {
    Clock::time_point at;
    std::function<void()> fn;
  };
  std::vector<Undo> undos;
  bool scheduler_up = true;
  bool link_cut = false;
  auto millis = [&](int lo, int hi) {
    return std::chrono::milliseconds(std::uniform_int_distribution(lo, hi)(rng));
  };
  auto pick_worker = [&]() -> ChaosWorker* {
    std::vector<ChaosWorker*> up;
    for (auto& w : workers_)
      if (w->state() == ChaosWorker::State::kRunning) up.push_back(w.get());
    if (up.empty()) return nullptr;
    return up[std::uniform_int_distribution<std::size_t>(0, up.size() - 1)(rng)];
  };
  // One fault of each kind per round, in an order drawn each round.
  std::vector<std::string> round;
  auto act = [&](Clock::time_point now) {
    if (round.empty()) {
      round = {kKillWorker, kStopWorker, kStopWorkerLong, kKillScheduler, kCutLink, kCutLinkLong};
      std::shuffle(round.begin(), round.end(), rng);
    }
    const std::string kind = round.back();
    round.pop_back();
    if (kind == kKillWorker || kind == kStopWorker || kind == kStopWorkerLong) {
      ChaosWorker* w = pick_worker();
      if (w == nullptr) return;
      if (kind == kKillWorker) {
        w->kill9();
        undos.push_back({now + millis(300, 2500), [w] { w->start(); }});
      } else {
        w->pause();
        const auto pause = kind == kStopWorker ? millis(500, 2000) : millis(4000, 7000);
        undos.push_back({now + pause, [w] { w->resume(); }});
      }
    } else if (kind == kKillScheduler) {
      if (!scheduler_up) return;
      scheduler_->child().kill_now();
      scheduler_up = false;
      undos.push_back({now + millis(300, 2500), [&] {
                         scheduler_->restart();
                         if (HasFatalFailure()) return;
                         client_ = scheduler_->client();
                         ASSERT_TRUE(client_);
                         scheduler_up = true;
                       }});
    } else {
      if (link_cut) return;
      ASSERT_TRUE(netns_->set_link(false)) << netns_->error();
      link_cut = true;
      const auto cut = kind == kCutLink ? millis(500, 2000) : millis(4000, 7000);
      undos.push_back({now + cut, [&] {
                         ASSERT_TRUE(netns_->set_link(true)) << netns_->error();
                         link_cut = false;
                       }});
    }
    ++actions[kind];
  };

  // --- load and faults together; submissions only while the scheduler is up
  std::vector<std::string> ids;
  const auto started = Clock::now();
  auto next_fault = started + 2s;
  auto next_batch = started;
  while (true) {
    const auto now = Clock::now();
    std::sort(undos.begin(), undos.end(), [](const Undo& a, const Undo& b) { return a.at < b.at; });
    while (!undos.empty() && undos.front().at <= Clock::now()) {
      auto fn = std::move(undos.front().fn);
      undos.erase(undos.begin());
      fn();
      if (HasFatalFailure()) return;
    }
    const bool chaos_on = now - started < chaos_for;
    if (chaos_on && now >= next_fault) {
      act(now);
      if (HasFatalFailure()) return;
      next_fault = now + millis(500, 2000);
    }
    if (scheduler_up && ids.size() < plans.size() && now >= next_batch) {
      // A queue at once, then the rest in batches of 16 spread over most of
      // the faults' time, so that the farm is busy while they happen.
      const std::size_t batch = ids.empty() ? plans.size() * 3 / 10 : 16;
      for (std::size_t i = 0; i < batch && ids.size() < plans.size(); ++i) {
        const JobPlan& plan = plans[ids.size()];
        auto r = client_->call<proto::Submitted>(
            proto::Submit{.job = {.spec = plan.spec,
                                  .spec_name = fmt::format("chaos-{}.spec", ids.size()),
                                  .timeout_seconds = 600}});
        ASSERT_TRUE(r) << "submitting job " << ids.size() << ": " << r.error().to_string();
        ids.push_back(r->job_id);
      }
      next_batch = now + chaos_for * 8 / 10 / ((plans.size() * 7 / 10 + 15) / 16);
    }
    if (!chaos_on && undos.empty() && ids.size() == plans.size()) break;
    std::this_thread::sleep_for(50ms);
  }
  const auto chaos_ended = Clock::now();

  // --- settle: every job ends (a bound for a hang, not a speed assertion)
  std::vector<proto::JobInfo> jobs(ids.size());
  const auto settle_deadline = Clock::now() + std::chrono::seconds(env_int("KILN_CHAOS_SETTLE_SECONDS", 150));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    for (;;) {
      auto r = client_->call<proto::Job>(proto::GetStatus{.job_id = ids[i], .wait_ms = 5000}, 10s);
      ASSERT_TRUE(r) << ids[i] << ": " << r.error().to_string();
      const std::string& state = r->job.state;
      if (state == "succeeded" || state == "failed" || state == "cancelled") {
        jobs[i] = r->job;
        break;
      }
      ASSERT_LT(Clock::now(), settle_deadline)
          << "job " << i << " (" << ids[i] << ") is still " << state << " after the faults stopped\n"
          << farm_logs();
    }
  }
  const auto settled = Clock::now();

  // --- exactly one result per job, none lost
  std::size_t attempts = 0, retried = 0, complete = 0, marked = 0;
  std::map<int, std::string> result_of_tag;
  std::map<std::string, std::vector<std::string>> results_by_worker;
  std::map<std::string, int> jobs_by_worker;  // by the worker of the last attempt
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const proto::JobInfo& job = jobs[i];
    const int tag = plans[i].tag;
    SCOPED_TRACE(fmt::format("job {} ({}, tag {})", i, job.id, tag));
    EXPECT_EQ(job.state, "succeeded") << job.error;
    attempts += job.attempts.size();
    if (job.attempts.size() > 1) ++retried;
    ASSERT_FALSE(job.attempts.empty());
    int ended_with_result = 0;
    for (const proto::Attempt& a : job.attempts) {
      if (a.outcome == "succeeded" || a.outcome == "failed") ++ended_with_result;
      EXPECT_TRUE(a.outcome == "succeeded" || a.outcome == "lost")
          << "attempt " << a.number << " on " << a.worker << " ended \"" << a.outcome << "\"";
    }
    EXPECT_EQ(ended_with_result, 1) << "the job ran to a result more than once, or never";
    EXPECT_EQ(job.attempts.back().outcome, "succeeded");
    EXPECT_EQ(job.attempts.back().worker, job.worker);
    EXPECT_EQ(job.attempts.back().number, job.attempt);
    for (std::size_t a = 0; a < job.attempts.size(); ++a) EXPECT_EQ(job.attempts[a].number, a + 1);
    ++jobs_by_worker[job.worker];
    EXPECT_FALSE(job.result.empty());
    auto [it, first] = result_of_tag.try_emplace(tag, job.result);
    EXPECT_EQ(it->second, job.result) << "the same spec built to two results";
    results_by_worker[job.worker].push_back(job.result);

    const std::string log = stored_log(job.id);
    switch (judge_log(log, plans[i])) {
      case LogVerdict::kComplete: ++complete; break;
      case LogVerdict::kMarked: ++marked; break;
      case LogVerdict::kIncomplete:
        ADD_FAILURE() << "the log lacks some of job " << tag
                      << "'s lines, or has one twice, and says nothing "
                      << "is missing:\n"
                      << log;
        break;
    }
  }
  // Nothing else is queued or running: no job appeared that was not submitted.
  auto active = client_->call<proto::Jobs>(
      proto::ListJobs{.states = {"queued", "assigned", "running"}, .limit = 1000}, 10s);
  ASSERT_TRUE(active) << active.error().to_string();
  EXPECT_EQ(active->total, 0u);

  // --- durable: one more kill -9 of the scheduler changes nothing it said
  scheduler_->child().kill_now();
  scheduler_->restart();
  if (HasFatalFailure()) return;
  client_ = scheduler_->client();
  ASSERT_TRUE(client_);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto r = client_->call<proto::Job>(proto::GetStatus{.job_id = jobs[i].id}, 10s);
    ASSERT_TRUE(r) << jobs[i].id << ": " << r.error().to_string();
    EXPECT_EQ(r->job.state, jobs[i].state) << jobs[i].id << " after a restart";
    EXPECT_EQ(r->job.result, jobs[i].result) << jobs[i].id << " after a restart";
    EXPECT_EQ(r->job.attempts.size(), jobs[i].attempts.size()) << jobs[i].id << " after a restart";
    EXPECT_EQ(r->job.log_bytes, jobs[i].log_bytes) << jobs[i].id << " after a restart";
  }

  // --- stores: stop each worker as an operator would, then check its store
  std::size_t store_results = 0;
  for (auto& w : workers_) {
    w->resume();
    EXPECT_EQ(w->stop(), 0) << w->name() << " did not stop cleanly:\n" << w->child().log();
    auto store = store::open_store("overlayfs:" + dir_.path() + "/" + w->name() + "/store");
    ASSERT_TRUE(store) << w->name() << ": " << store.error().to_string();
    EXPECT_FALSE((*store)->recovery_report().repaired_anything())
        << w->name()
        << "'s store needed repair after a clean stop: " << (*store)->recovery_report().to_string();
    auto listed = (*store)->list_results();
    ASSERT_TRUE(listed) << listed.error().to_string();
    store_results += listed->size();
    for (const std::string& id : *listed) {
      auto path = (*store)->result(id);
      EXPECT_TRUE(path && *path && std::filesystem::is_directory(**path + "/rootfs"))
          << w->name() << ": result " << id << " is listed but not readable";
      auto info = (*store)->info(id);
      EXPECT_TRUE(info) << w->name() << ": result " << id << " has no metadata";
      if (info && info->parent) {
        EXPECT_TRUE(std::binary_search(listed->begin(), listed->end(), *info->parent))
            << w->name() << ": result " << id << "'s parent " << *info->parent << " is not in the store";
      }
    }
    for (const std::string& result : results_by_worker[w->name()]) {
      EXPECT_TRUE(std::binary_search(listed->begin(), listed->end(), result))
          << w->name() << " reported result " << result << " but its store does not have it";
    }
  }

  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  std::cout << fmt::format("chaos summary: seed {}; faults over {:.0f} s:", seed,
                           seconds(chaos_ended - started));
  for (const auto& [kind, n] : actions) std::cout << fmt::format(" {} x{};", kind, n);
  std::cout << fmt::format(
      "\n  {} jobs, {} attempts, {} jobs retried; settled {:.1f} s after the faults; logs: {} complete, {} "
      "marked; {} results in the 3 stores\n",
      jobs.size(), attempts, retried, seconds(settled - chaos_ended), complete, marked, store_results);
  std::cout << fmt::format(
      "  the scheduler saw: {} workers lost, {} attempts put back in the queue, {} jobs reclaimed after a "
      "restart\n",
      scheduler_lines("lost: "), scheduler_lines("back in the queue"), scheduler_lines("reclaimed job"));
  std::cout << "  jobs by the worker that finished them:";
  for (const auto& [name, n] : jobs_by_worker) std::cout << fmt::format(" {} {};", name, n);
  std::cout << "\n";
  RecordProperty("attempts", std::to_string(attempts));
  RecordProperty("retried", std::to_string(retried));
  // Each kind of fault happened (a schedule with none would test nothing).
  for (const char* kind : {kKillWorker, kStopWorker, kStopWorkerLong, kKillScheduler, kCutLink, kCutLinkLong})
    EXPECT_GE(actions[kind], 2) << kind;
}

}  // namespace
}  // namespace kiln::testing
