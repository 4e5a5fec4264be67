// The Worker in-process against a fake scheduler: a ROUTER socket on an
// ephemeral 127.0.0.1 port that the test drives message by message.
// Fake builds (FakeBuildExecutor) cover the protocol (register, retry,
// assign, events, cancel, reregister, stop, refusal); real builds
// (BuilderExecutor) use a Builder on an overlayfs store in a temp dir with
// the FakeSandbox and a fake image fetcher (root needed), with tar contexts
// served by the fake scheduler's get-context. scheduler_session_test.cc
// drives the protocol alone, without sockets or threads.
#include "worker/daemon/worker.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/id_set_digest.h"
#include "common/ids/step_id.h"
#include "common/spec/spec.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/id_set_digest.h"
#include "common/ids/temp_tree_for_test.h"
#include "common/proto/transport.h"
#include "common/sha256.h"
#include "worker/daemon/builder_executor.h"
#include "worker/daemon/fake_build_executor.h"
#include "worker/daemon/maintenance.h"
#include "worker/daemon/testing/fake_scheduler.h"
#include "worker/sandbox/fake_sandbox.h"

namespace kiln::worker {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using testing::FakeScheduler;

// A Worker running on its own thread.
class WorkerThread {
 public:
  WorkerThread(WorkerOptions options, std::unique_ptr<JobExecutor> executor)
      : worker_(std::move(options), std::move(executor)) {
    thread_ = std::thread([this] { result_ = worker_.run(); });
  }
  // Tests that care how run() ended call stop() and check it.
  ~WorkerThread() { (void)stop(); }
  Status stop() {
    worker_.stop();
    if (thread_.joinable()) thread_.join();
    return result_;
  }
  // Waits for run() to return by itself.
  Status join() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  Worker worker_;
  Status result_;
  std::thread thread_;
};

WorkerOptions fake_options(const FakeScheduler& scheduler) {
  WorkerOptions o;
  o.scheduler = scheduler.address();
  o.name = "w1";
  o.capacity = 4;
  o.labels = {"arch=test"};
  o.register_retry = 100ms;
  return o;
}

std::unique_ptr<JobExecutor> fake_builds(double seconds) {
  return std::make_unique<FakeBuildExecutor>(FakeBuildOptions{.seconds = seconds});
}

proto::Assign assign(const std::string& job_id, std::uint32_t attempt, const std::string& spec) {
  proto::Assign a;
  a.job_id = job_id;
  a.attempt = attempt;
  a.job.spec = spec;
  a.job.spec_name = "test.spec";
  return a;
}

TEST(WorkerFakeBuildTest, RegistersAndReportsAJob) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(0));
  proto::Register reg = scheduler.accept_registration();
  EXPECT_EQ(scheduler.last_sender, "w1");  // the routing id is the name
  EXPECT_EQ(reg.name, "w1");
  EXPECT_EQ(reg.pool, "linux-x86_64");
  EXPECT_EQ(reg.capacity, 4u);
  EXPECT_EQ(reg.labels, std::vector<std::string>{"arch=test"});
  EXPECT_EQ(reg.protocol_version, proto::kProtocolVersion);
  EXPECT_TRUE(reg.running.empty());
  EXPECT_GT(reg.stats.disk_total_bytes, 0u);

  const std::string spec = "((from busybox) (run (shell \"true\")))";
  scheduler.send(assign("j1", 1, spec));
  std::string log;
  auto events = scheduler.events_until_done(&log);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.front().type, proto::Type::kJobStarted);
  EXPECT_EQ(events.front().job_id, "j1");
  EXPECT_EQ(events.front().attempt, 1u);
  EXPECT_THAT(log, HasSubstr("j1"));
  const proto::JobEvent& done = events.back();
  EXPECT_EQ(done.outcome, "succeeded");
  // A fake build reports the steps a real one would: the spec's step ids.
  auto ids = ids::compute_step_ids(*spec::parse_spec(spec, "t"), nullptr, "t");
  ASSERT_TRUE(ids);
  ASSERT_EQ(done.steps.size(), 2u);
  EXPECT_EQ(done.steps[0].id, (*ids)[0].id);
  EXPECT_EQ(done.steps[1].id, (*ids)[1].id);
  EXPECT_EQ(done.result, (*ids)[1].id);
  int step_events = 0;
  for (const auto& e : events) step_events += e.type == proto::Type::kJobStep;
  EXPECT_EQ(step_events, 2);

  auto beat = scheduler.expect_message<proto::Heartbeat>();
  EXPECT_TRUE(beat.running.empty());
  EXPECT_GT(beat.stats.disk_free_bytes, 0u);
  EXPECT_TRUE(worker.stop());
}

TEST(WorkerFakeBuildTest, ResendsRegisterUntilAnswered) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(0));
  scheduler.expect_message<proto::Register>();
  // Unanswered: it comes again (register_retry is 100 ms here).
  scheduler.expect_message<proto::Register>(5s);
  scheduler.send(proto::Registered{.scheduler_id = "fake", .heartbeat_ms = 100, .lease_ms = 5000});
  // Registered: heartbeats now, no more registers.
  auto f = scheduler.expect(proto::Type::kHeartbeat);
  EXPECT_EQ(f.type, proto::Type::kHeartbeat);
}

TEST(WorkerFakeBuildTest, CancelJobEndsTheJobCancelled) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(600));
  scheduler.accept_registration(100);
  scheduler.send(assign("j7", 2, "((from busybox))"));
  auto started = scheduler.expect_event(proto::Type::kJobStarted);
  EXPECT_EQ(started.job_id, "j7");
  auto beat = scheduler.expect_message<proto::Heartbeat>();
  ASSERT_EQ(beat.running.size(), 1u);
  EXPECT_EQ(beat.running[0].job_id, "j7");
  EXPECT_EQ(beat.running[0].attempt, 2u);
  EXPECT_EQ(beat.stats.running_jobs, 1u);
  // Another attempt's cancel is not this job's.
  scheduler.send(proto::CancelAssigned{.job_id = "j7", .attempt = 1});
  scheduler.send(proto::CancelAssigned{.job_id = "j7", .attempt = 2});
  auto done = scheduler.expect_event(proto::Type::kJobDone);
  EXPECT_EQ(done.job_id, "j7");
  EXPECT_EQ(done.attempt, 2u);
  EXPECT_EQ(done.outcome, "cancelled");
}

TEST(WorkerFakeBuildTest, ReregisterListsRunningJobsAndResendsTheLastOutcome) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(600));
  scheduler.accept_registration(100);
  scheduler.send(assign("long", 1, "((from a))"));
  scheduler.expect_event(proto::Type::kJobStarted);
  scheduler.send(proto::CancelAssigned{.job_id = "long", .attempt = 1});
  auto first_done = scheduler.expect_event(proto::Type::kJobDone);
  EXPECT_EQ(first_done.outcome, "cancelled");
  scheduler.send(assign("still", 3, "((from b))"));
  scheduler.expect_event(proto::Type::kJobStarted);

  // As a restarted scheduler that does not know the worker would.
  scheduler.send(proto::Reregister{.reason = "unknown worker"});
  auto reg = scheduler.expect_message<proto::Register>();
  std::vector<std::string> running;
  for (const auto& r : reg.running) running.push_back(fmt::format("{}/{}", r.job_id, r.attempt));
  // The running job, and the one whose outcome the restart may have lost.
  EXPECT_THAT(running, ::testing::UnorderedElementsAre("still/3", "long/1"));
  scheduler.send(proto::Registered{.scheduler_id = "fake2", .heartbeat_ms = 100, .lease_ms = 5000});
  auto resent = scheduler.expect_event(proto::Type::kJobDone);
  EXPECT_EQ(resent.job_id, "long");
  EXPECT_EQ(resent.outcome, "cancelled");
  // The running job carries on under the new registration.
  scheduler.send(proto::CancelAssigned{.job_id = "still", .attempt = 3});
  auto done = scheduler.expect_event(proto::Type::kJobDone);
  EXPECT_EQ(done.job_id, "still");
}

TEST(WorkerFakeBuildTest, EventsWhileUnregisteredAreSentOnceRegistered) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(0.3));
  scheduler.accept_registration(100);
  scheduler.send(assign("j1", 1, "((from a))"));
  scheduler.expect_event(proto::Type::kJobStarted);
  scheduler.send(proto::Reregister{.reason = "restarted"});
  scheduler.expect_message<proto::Register>();
  // Not answered: the job finishes meanwhile; nothing but registers comes.
  std::this_thread::sleep_for(600ms);
  scheduler.send(proto::Registered{.scheduler_id = "fake2", .heartbeat_ms = 100, .lease_ms = 5000});
  std::string log;
  auto events = scheduler.events_until_done(&log);
  EXPECT_EQ(events.back().outcome, "succeeded");
  EXPECT_EQ(events.back().job_id, "j1");
  EXPECT_THAT(log, HasSubstr("fake build of job j1"));
}

TEST(WorkerFakeBuildTest, StopInterruptsRunningJobsAndReportsThem) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(600));
  scheduler.accept_registration(100);
  scheduler.send(assign("j1", 1, "((from a))"));
  scheduler.expect_event(proto::Type::kJobStarted);
  Status stopped = worker.stop();
  EXPECT_TRUE(stopped) << stopped.error().to_string();
  auto done = scheduler.expect_event(proto::Type::kJobDone);
  // Not "cancelled": the scheduler runs an interrupted job again.
  EXPECT_EQ(done.outcome, "interrupted");
  EXPECT_THAT(done.error, HasSubstr("shutting down"));
}

TEST(WorkerFakeBuildTest, RefusedRegistrationEndsRunWithFailedPrecondition) {
  FakeScheduler scheduler;
  WorkerThread worker(fake_options(scheduler), fake_builds(0));
  scheduler.expect_message<proto::Register>();
  scheduler.send(proto::ErrorReply{.kind = "failed precondition", .message = "protocol version 1 is not 2"});
  Status s = worker.join();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(s.error().to_string(), HasSubstr("protocol version"));
}

TEST(WorkerFakeBuildTest, KeepsUpWithABurstOfAssignsAndLosesNone) {
  FakeScheduler scheduler;
  WorkerOptions o = fake_options(scheduler);
  o.capacity = 64;
  WorkerThread worker(o, fake_builds(0));
  scheduler.accept_registration(1000);
  constexpr int kJobs = 5000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kJobs; ++i)
    scheduler.send(assign(fmt::format("j{}", i), 1, fmt::format("((from s{}))", i)));
  std::set<std::string> done;
  while (done.size() < kJobs) {
    auto events = scheduler.events_until_done(nullptr);
    if (events.empty() || events.back().type != proto::Type::kJobDone) break;  // the test failed already
    EXPECT_EQ(events.back().outcome, "succeeded");
    done.insert(events.back().job_id);
  }
  EXPECT_EQ(done.size(), static_cast<std::size_t>(kJobs));
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  // For information only: no timing assertions.
  std::cout << fmt::format("{} fake jobs in {:.3f} s ({:.0f} jobs/s)\n", kJobs, took.count(),
                           kJobs / took.count());
}

// ---- real builds ----

class FakeFetcher final : public fetcher::Fetcher {
 public:
  Result<fetcher::ImageConfig> fetch(const fetcher::Progress&, const std::string& rootfs,
                                     std::string_view, const fetcher::FetchOptions&) override {
    std::filesystem::create_directories(rootfs + "/bin");
    std::ofstream(rootfs + "/bin/sh") << "#!fake shell\n";
    return fetcher::ImageConfig{};
  }
};

// A tar (pax) of the given files, in memory.
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<char> buffer(1 << 20);
  std::size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, buffer.data(), buffer.size(), &used);
  for (const auto& [name, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buffer.data(), used);
}

class WorkerBuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::open_store("overlayfs:" + tree_.host("store"));
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    builder_ = std::make_unique<builder::Builder>(*store_, sandbox_, fetcher_);
  }
  void TearDown() override {
    builder_.reset();
    store_.reset();
  }
  WorkerOptions options() {
    WorkerOptions o;
    o.scheduler = scheduler_.address();
    o.name = "w1";
    o.register_retry = 100ms;
    return o;
  }
  BuilderExecutorOptions executor_options() {
    BuilderExecutorOptions o;
    o.state_dir = tree_.host("state");
    o.prune_below_bytes = 0;
    return o;
  }
  std::unique_ptr<JobExecutor> real_builds(BuilderExecutorOptions o) {
    return std::make_unique<BuilderExecutor>(std::move(o), *builder_);
  }
  std::unique_ptr<JobExecutor> real_builds() { return real_builds(executor_options()); }

  ids::TempTree tree_;
  FakeScheduler scheduler_;
  std::unique_ptr<store::Store> store_;
  sandbox::FakeSandbox sandbox_;
  FakeFetcher fetcher_;
  std::unique_ptr<builder::Builder> builder_;
};

TEST_F(WorkerBuildTest, BuildsWithATarContextAndReportsStepsAndInventory) {
  std::string tar = make_tar({{"hello.txt", "hello from the context\n"}});
  std::string digest = "sha256:" + sha256_hex(tar);
  scheduler_.serve_context(digest, tar);
  sandbox_.script({.output = "ran the step\n"});
  WorkerThread worker(options(), real_builds());
  scheduler_.accept_registration(100);

  proto::Assign a = assign(
      "j1", 1, "((from busybox) (copy (src hello.txt) (dst /hello.txt)) (run (shell \"cat /hello.txt\")))");
  a.job.context.kind = proto::ContextRef::Kind::kTar;
  a.job.context.digest = digest;
  scheduler_.send(a);
  std::string log;
  auto events = scheduler_.events_until_done(&log);
  ASSERT_FALSE(events.empty());
  const proto::JobEvent& done = events.back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error << "\n" << log;
  std::vector<proto::StepInfo> steps;
  for (const auto& e : events) {
    if (e.type == proto::Type::kJobStep) steps.push_back(e.step);
  }
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].description, "(from busybox)");
  EXPECT_EQ(steps[1].description, "/: (copy (src hello.txt) (dst /hello.txt))");
  EXPECT_EQ(steps[2].description, "/: (run (shell \"cat /hello.txt\"))");
  EXPECT_EQ(done.steps.size(), 3u);
  EXPECT_EQ(done.result, steps[2].id);
  EXPECT_THAT(log, HasSubstr("ran the step"));
  EXPECT_THAT(log, HasSubstr("---> saved as " + done.result));
  // The copy read the context's file.
  auto dir = store_->result(steps[1].id);
  ASSERT_TRUE(dir && *dir);
  std::ifstream copied(**dir + "/rootfs/hello.txt");
  std::stringstream text;
  text << copied.rdbuf();
  EXPECT_EQ(text.str(), "hello from the context\n");
  // The context is cached by digest; the job directory is gone.
  EXPECT_TRUE(std::filesystem::exists(tree_.host("state/contexts/" + digest.substr(7) + ".tar")));
  EXPECT_TRUE(std::filesystem::is_empty(tree_.host("state/jobs")));

  // The scheduler learns which ids the store holds: all of them in the end.
  scheduler_.expect(proto::Type::kHeartbeat);
  std::set<std::string> held;
  for (const auto& inv : scheduler_.inventories) {
    if (inv.full) held.clear();
    for (const auto& id : inv.added)
      held.insert(
          to_hex(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(id.data()), id.size())));
  }
  EXPECT_TRUE(held.contains(done.result));
  EXPECT_EQ(held.size(), 3u);
}

TEST_F(WorkerBuildTest, BadContextsAndSpecsFailTheJobWithAClearError) {
  std::string evil = make_tar({{"../escape.txt", "x"}});
  std::string evil_digest = "sha256:" + sha256_hex(evil);
  scheduler_.serve_context(evil_digest, evil);
  WorkerThread worker(options(), real_builds());
  scheduler_.accept_registration(100);

  proto::Assign a = assign("bad-tar", 1, "((from busybox))");
  a.job.context.kind = proto::ContextRef::Kind::kTar;
  a.job.context.digest = evil_digest;
  scheduler_.send(a);
  std::string log;
  auto done = scheduler_.events_until_done(&log).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("refuses to unpack"));
  EXPECT_THAT(log, HasSubstr("refuses to unpack"));
  EXPECT_FALSE(std::filesystem::exists(tree_.host("state/escape.txt")));

  a = assign("missing", 1, "((from busybox))");
  a.job.context.kind = proto::ContextRef::Kind::kTar;
  a.job.context.digest = "sha256:" + std::string(64, '0');
  scheduler_.send(a);
  done = scheduler_.events_until_done(nullptr).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("does not have build context"));

  scheduler_.send(assign("bad-spec", 1, "((from busybox) (frobnicate))"));
  done = scheduler_.events_until_done(nullptr).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("test.spec"));

  sandbox_.script({.output = "boom\n",
                   .status = make_error(ErrorKind::kFailedPrecondition, "command exited with status 2")});
  scheduler_.send(assign("failing", 1, "((from busybox) (run (shell \"false\")))"));
  done = scheduler_.events_until_done(nullptr).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("status 2"));
  ASSERT_EQ(done.steps.size(), 1u);  // the from step was reached
}

TEST_F(WorkerBuildTest, PrunesTheStoreWhenDiskIsLowAndReportsRemovals) {
  BuilderExecutorOptions e = executor_options();
  e.prune_below_bytes = std::numeric_limits<std::uint64_t>::max();  // always "low"
  e.prune_min_age = std::chrono::seconds(0);  // results may go as soon as no job uses them
  WorkerThread worker(options(), real_builds(e));
  scheduler_.accept_registration(100);
  scheduler_.send(assign("j1", 1, "((from busybox) (run (shell \"make\")))"));
  auto done = scheduler_.events_until_done(nullptr).back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error;
  ASSERT_EQ(done.steps.size(), 2u);

  // After the job the store is pruned of everything no build uses, and the
  // scheduler is told both steps came and went.
  std::set<std::string> held;
  std::set<std::string> removed;
  for (int beats = 0; beats < 100 && removed.size() < 2; ++beats) {
    scheduler_.expect(proto::Type::kHeartbeat);
    held.clear();
    removed.clear();
    for (const auto& inv : scheduler_.inventories) {
      if (inv.full) held.clear();
      for (const auto& id : inv.added) held.insert(id);
      for (const auto& id : inv.removed) {
        held.erase(id);
        removed.insert(id);
      }
    }
  }
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_TRUE(held.empty());
  auto left = store_->list_results();
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->empty());
}

TEST_F(WorkerBuildTest, AJobsResultOutlivesThePruneThatFollowsIt) {
  // Issue 13: right after a job succeeded, a worker short of disk pruned
  // everything, the result it had just reported included. With the default
  // --prune-min-age (10 minutes) the prune after the job keeps it.
  BuilderExecutorOptions e = executor_options();
  e.prune_below_bytes = std::numeric_limits<std::uint64_t>::max();  // always "low"
  WorkerThread worker(options(), real_builds(e));
  scheduler_.accept_registration(100);
  scheduler_.send(assign("j1", 1, "((from busybox) (run (shell \"make\")))"));
  auto done = scheduler_.events_until_done(nullptr).back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error;
  // Prunes run at once after a job; give them ten heartbeats (a prune of
  // these results took one or two in PrunesTheStoreWhenDiskIsLowAndReportsRemovals).
  for (int beats = 0; beats < 10; ++beats) scheduler_.expect(proto::Type::kHeartbeat);
  for (const auto& inv : scheduler_.inventories) EXPECT_TRUE(inv.removed.empty());
  auto held = store_->list_results();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->size(), 2u);
  EXPECT_TRUE(std::find(held->begin(), held->end(), done.result) != held->end());
}

TEST_F(WorkerBuildTest, PruneUnderPressureKeepsTheFreshResultAndRemovesAnOlderOne) {
  WorkerThread worker(options(), real_builds());  // never prunes by itself (prune_below_bytes 0)
  scheduler_.accept_registration(100);
  scheduler_.send(assign("old", 1, "((from busybox) (run (shell \"old\")))"));
  auto old_job = scheduler_.events_until_done(nullptr).back();
  ASSERT_EQ(old_job.outcome, "succeeded") << old_job.error;
  std::this_thread::sleep_for(5ms);  // last-used times are in µs: keep `between` strictly between
  const auto between = std::chrono::system_clock::now();
  std::this_thread::sleep_for(5ms);
  scheduler_.send(assign("fresh", 1, "((from busybox) (run (shell \"fresh\")))"));
  auto fresh_job = scheduler_.events_until_done(nullptr).back();
  ASSERT_EQ(fresh_job.outcome, "succeeded") << fresh_job.error;
  ASSERT_EQ(old_job.steps.size(), 2u);
  const std::string base = old_job.steps[0].id;  // (from busybox), used by both jobs

  // A prune under pressure ten minutes after `between`: the old job's step
  // is older than the minimum age, the fresh one's and the shared base not.
  std::vector<std::string> removed;
  MaintenanceOptions m{.worker_name = "w1",
                       .contexts_dir = tree_.host("state/contexts"),
                       .prune_below_bytes = std::numeric_limits<std::uint64_t>::max(),
                       .prune_min_age = std::chrono::minutes(10)};
  m.now = [&] { return between + std::chrono::minutes(10); };
  Maintenance maintenance(m, *builder_, [&](std::vector<std::string> ids) {
    removed.insert(removed.end(), ids.begin(), ids.end());
  });
  builder::PruneReport report = maintenance.prune_if_low();
  EXPECT_EQ(removed, std::vector<std::string>{old_job.result});
  EXPECT_EQ(report.removed, 1u);
  ASSERT_TRUE(report.oldest_last_used && report.newest_last_used);
  EXPECT_LT(*report.newest_last_used, between);
  EXPECT_FALSE(store_->info(old_job.result));
  EXPECT_TRUE(store_->info(fresh_job.result));
  EXPECT_TRUE(store_->info(base));

  // At the real time everything left is younger than ten minutes: kept.
  m.now = [] { return std::chrono::system_clock::now(); };
  Maintenance now(m, *builder_, [&](std::vector<std::string> ids) {
    removed.insert(removed.end(), ids.begin(), ids.end());
  });
  EXPECT_EQ(now.prune_if_low().removed, 0u);
  EXPECT_TRUE(store_->info(fresh_job.result));
}

TEST_F(WorkerBuildTest, LogTextOverTheBufferBoundIsDroppedWithANoteButTheOutcomeIsNot) {
  WorkerOptions o = options();
  o.max_buffered_bytes = 4096;
  sandbox_.script({.output = std::string(100000, 'x') + "\n"});
  WorkerThread worker(o, real_builds());
  scheduler_.accept_registration(100);
  scheduler_.send(proto::Reregister{.reason = "test"});
  scheduler_.expect_message<proto::Register>();
  // Assigned while not registered, so that every event is buffered.
  scheduler_.send(assign("j1", 1, "((from busybox) (run (shell \"yes\")))"));
  // Registers keep coming; one with no running job means the job's outcome is buffered.
  bool ended = false;
  for (int i = 0; i < 200 && !ended; ++i) {
    auto reg = scheduler_.expect_message<proto::Register>();
    ended = reg.stats.running_jobs == 0 && !reg.running.empty();
  }
  ASSERT_TRUE(ended);
  scheduler_.send(proto::Registered{.scheduler_id = "fake2", .heartbeat_ms = 100, .lease_ms = 5000});
  std::string log;
  auto events = scheduler_.events_until_done(&log);
  EXPECT_EQ(events.back().outcome, "succeeded");
  EXPECT_THAT(log, HasSubstr("of this job's log were dropped while the scheduler was unreachable"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(std::string(1000, 'x'))));
}

TEST_F(WorkerBuildTest, ALargeInventoryIsSentInChunksEachWithTheDigestSoFar) {
  WorkerOptions o = options();
  o.inventory_chunk_ids = 2;
  WorkerThread worker(o, real_builds());
  scheduler_.accept_registration(100);
  scheduler_.send(assign("j1", 1, "((from busybox) (run (shell \"a\")) (run (shell \"b\")))"));
  auto done = scheduler_.events_until_done(nullptr).back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error;
  // Registering again sends the 3 ids held as a full message of 2 and an addition of 1.
  scheduler_.send(proto::Reregister{.reason = "test"});
  scheduler_.accept_registration(100);
  EXPECT_EQ(scheduler_.expect_event(proto::Type::kJobDone).job_id,
            "j1");  // resent first, in case it was lost
  scheduler_.inventories.clear();
  for (int i = 0; i < 50 && scheduler_.inventories.size() < 2; ++i)
    scheduler_.expect(proto::Type::kHeartbeat);
  ASSERT_EQ(scheduler_.inventories.size(), 2u);
  const proto::Inventory& first = scheduler_.inventories[0];
  const proto::Inventory& second = scheduler_.inventories[1];
  EXPECT_TRUE(first.full);
  EXPECT_FALSE(second.full);
  ASSERT_EQ(first.added.size(), 2u);
  ASSERT_EQ(second.added.size(), 1u);
  std::vector<std::string> all = {first.added[0], first.added[1], second.added[0]};
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  auto digest_of = [](const std::vector<std::string>& ids) {
    IdSetDigest set;
    for (const auto& id : ids) set.add(id);
    Digest d = set.value();
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  };
  EXPECT_EQ(first.set_digest, digest_of({all[0], all[1]}));
  EXPECT_EQ(second.set_digest, digest_of(all));
  // Heartbeats from now on carry the same digest: the periodic drift check.
  auto beat = scheduler_.expect_message<proto::Heartbeat>();
  EXPECT_EQ(beat.inventory_digest, digest_of(all));
  std::set<std::string> hex;
  for (const auto& id : all)
    hex.insert(
        to_hex(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(id.data()), id.size())));
  std::set<std::string> steps;
  for (const auto& step : done.steps) steps.insert(step.id);
  EXPECT_EQ(hex, steps);
}

TEST_F(WorkerBuildTest, CancelJobStopsARunningBuild) {
  sandbox::FakeSandbox::Answer blocked;
  blocked.wait_for_cancel = true;
  sandbox_.script(blocked);
  WorkerThread worker(options(), real_builds());
  scheduler_.accept_registration(100);
  scheduler_.send(assign("j1", 1, "((from busybox) (run (shell \"sleep 1000\")))"));
  scheduler_.expect_event(proto::Type::kJobStarted);
  sandbox_.wait_for_calls(1);
  scheduler_.send(proto::CancelAssigned{.job_id = "j1", .attempt = 1});
  auto done = scheduler_.events_until_done(nullptr).back();
  EXPECT_EQ(done.outcome, "cancelled");
}

TEST_F(WorkerBuildTest, AJobPastItsTimeoutFailsSayingSo) {
  sandbox::FakeSandbox::Answer blocked;
  blocked.wait_for_cancel = true;
  sandbox_.script(blocked);
  WorkerThread worker(options(), real_builds());
  scheduler_.accept_registration(100);
  proto::Assign a = assign("slow", 1, "((from busybox) (run (shell \"sleep 1000\")))");
  a.job.timeout_seconds = 1;
  scheduler_.send(a);
  auto done = scheduler_.events_until_done(nullptr).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("timeout of 1 s"));
}

}  // namespace
}  // namespace kiln::worker
