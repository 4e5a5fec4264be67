// The SchedulerSession alone: no socket, no thread, no real time. A
// RecordingOut stands in for the DEALER socket (and can refuse sends, as a
// socket that is not connected does), a ScriptedExecutor records what the
// session asks of the executor, and the clock is a variable the test moves.
// worker_test.cc covers the same protocol end to end over ZeroMQ.
#include "worker/daemon/scheduler_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/id_set_digest.h"
#include "common/sha256.h"
#include "worker/daemon/fake_build_executor.h"

namespace kiln::worker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

// What the session sent, in order; `connected` false makes sends fail.
class RecordingOut final : public MessageOut {
 public:
  struct Sent {
    proto::Type type;
    std::string body;
  };
  bool send(proto::Type type, std::string_view body) override {
    ++attempts;
    if (!connected) return false;
    sent.push_back({type, std::string(body)});
    return true;
  }

  // The sent messages of type T (decoded), and forgets everything sent.
  template <class T>
  std::vector<T> take() {
    std::vector<T> out;
    for (const Sent& s : sent) {
      if (s.type != T::kType) continue;
      auto m = proto::decode<T>(s.body);
      EXPECT_TRUE(m) << proto::type_name(s.type);
      if (m) out.push_back(*m);
    }
    sent.clear();
    return out;
  }
  // Job events (their type filled in), and forgets everything sent.
  std::vector<proto::JobEvent> take_events() {
    std::vector<proto::JobEvent> out;
    for (const Sent& s : sent) {
      if (s.type != proto::Type::kJobStarted && s.type != proto::Type::kJobLog &&
          s.type != proto::Type::kJobStep && s.type != proto::Type::kJobDone)
        continue;
      auto e = proto::decode<proto::JobEvent>(s.body);
      EXPECT_TRUE(e);
      if (!e) continue;
      e->type = s.type;
      out.push_back(*e);
    }
    sent.clear();
    return out;
  }
  std::vector<proto::Type> types() const {
    std::vector<proto::Type> out;
    for (const Sent& s : sent) out.push_back(s.type);
    return out;
  }

  bool connected = true;
  int attempts = 0;
  std::vector<Sent> sent;
};

// Records starts and cancels; the test plays the jobs' events itself.
class ScriptedExecutor final : public JobExecutor {
 public:
  Status open(const ExecutorHost&) override { return {}; }
  std::string_view mode() const override { return "scripted"; }
  void start(proto::Assign assign, SteadyTime) override {
    started.push_back(assign.job_id + "/" + std::to_string(assign.attempt));
    jobs.emplace(assign.job_id, assign.attempt);
  }
  bool running(const JobKey& key) const override { return jobs.contains(key); }
  std::vector<JobKey> running_jobs() const override { return {jobs.begin(), jobs.end()}; }
  std::size_t running_count() const override { return jobs.size(); }
  bool cancel(const JobKey& key) override {
    cancelled.push_back(key.first + "/" + std::to_string(key.second));
    return jobs.contains(key);
  }
  void interrupt_all(const std::string&) override {}
  bool idle() const override { return jobs.empty(); }
  void log_released(const JobKey& key, std::uint64_t offset) override { released[key] = offset; }
  void log_unwanted(const JobKey& key) override { unwanted.insert(key); }
  void poll(SteadyTime) override {}
  std::optional<std::chrono::milliseconds> poll_timeout(SteadyTime) const override { return std::nullopt; }
  void fill_stats(proto::WorkerStats& stats) override { stats.disk_free_bytes = 12345; }
  bool reports_inventory() const override { return inventory; }
  Result<std::vector<std::string>> list_results() override { return ids; }
  void close() override {}

  std::set<JobKey> jobs;
  std::vector<std::string> started;
  std::vector<std::string> cancelled;
  bool inventory = false;
  std::vector<std::string> ids;              // 64 hex each
  std::map<JobKey, std::uint64_t> released;  // the last log_released() of each job
  std::set<JobKey> unwanted;                 // log_unwanted()
};

std::string hex_id(int n) {
  return sha256_hex(fmt::format("step {}", n));
}
std::string raw_id(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}
std::string digest_of(const std::vector<std::string>& hex_ids) {
  IdSetDigest set;
  for (const auto& hex : hex_ids) set.add(raw_id(hex));
  Digest d = set.value();
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

proto::Assign assign(const std::string& job_id, std::uint32_t attempt) {
  proto::Assign a;
  a.job_id = job_id;
  a.attempt = attempt;
  a.job.spec = "((from busybox))";
  return a;
}

proto::JobEvent event(proto::Type type, const std::string& job_id, std::uint32_t attempt) {
  return proto::JobEvent{.type = type, .job_id = job_id, .attempt = attempt};
}
proto::JobEvent log_event(const std::string& job_id, std::uint32_t attempt, std::string text) {
  proto::JobEvent e = event(proto::Type::kJobLog, job_id, attempt);
  e.log = std::move(text);
  return e;
}
proto::JobEvent done_event(const std::string& job_id, std::uint32_t attempt, std::string outcome) {
  proto::JobEvent e = event(proto::Type::kJobDone, job_id, attempt);
  e.outcome = std::move(outcome);
  return e;
}

std::vector<std::string> keys(const std::vector<proto::RunningJob>& running) {
  std::vector<std::string> out;
  for (const auto& r : running) out.push_back(fmt::format("{}/{}", r.job_id, r.attempt));
  return out;
}

class SchedulerSessionTest : public ::testing::Test {
 protected:
  SessionOptions options() {
    SessionOptions o;
    o.scheduler = "tcp://127.0.0.1:7801";
    o.name = "w1";
    o.capacity = 4;
    o.labels = {"arch=test"};
    o.register_retry = 2000ms;
    return o;
  }
  void make(SessionOptions o) {
    session_ = std::make_unique<SchedulerSession>(std::move(o), out_, executor_, [this] { return now_; });
  }
  void make() { make(options()); }

  template <class T>
  void receive(const T& message) {
    session_->receive(T::kType, proto::type_name(T::kType), proto::encode(message));
  }
  void advance(std::chrono::milliseconds by) {
    now_ += by;
    session_->tick();
  }
  // Starts and answers the first register.
  void register_now(std::uint32_t heartbeat_ms = 1000, std::uint32_t lease_ms = 10000) {
    session_->start();
    ASSERT_EQ(out_.take<proto::Register>().size(), 1u);
    receive(proto::Registered{
        .scheduler_id = "s1", .heartbeat_ms = heartbeat_ms, .lease_ms = lease_ms, .state = "active"});
  }

  SteadyTime now_ = SteadyTime{} + 1h;
  RecordingOut out_;
  ScriptedExecutor executor_;
  std::unique_ptr<SchedulerSession> session_;
};

TEST_F(SchedulerSessionTest, RegistersAtStartAndAgainEveryRetryUntilRegistered) {
  make();
  session_->start();
  auto regs = out_.take<proto::Register>();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(regs[0].name, "w1");
  EXPECT_EQ(regs[0].pool, "linux-x86_64");
  EXPECT_EQ(regs[0].capacity, 4u);
  EXPECT_EQ(regs[0].labels, std::vector<std::string>{"arch=test"});
  EXPECT_EQ(regs[0].protocol_version, proto::kProtocolVersion);
  EXPECT_EQ(regs[0].stats.disk_free_bytes, 12345u);  // the executor's figures
  EXPECT_THAT(regs[0].running, IsEmpty());
  EXPECT_EQ(session_->timeout(), 2001ms);

  advance(1999ms);
  EXPECT_THAT(out_.sent, IsEmpty());
  advance(1ms);
  EXPECT_EQ(out_.take<proto::Register>().size(), 1u);

  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 100, .lease_ms = 5000});
  EXPECT_TRUE(session_->registered());
  // Registered: heartbeats every heartbeat_ms, no more registers.
  advance(99ms);
  EXPECT_THAT(out_.sent, IsEmpty());
  advance(1ms);
  EXPECT_EQ(out_.types(), std::vector<proto::Type>{proto::Type::kHeartbeat});
  out_.sent.clear();
  advance(5000ms);
  auto beats = out_.take<proto::Heartbeat>();
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].stats.disk_free_bytes, 12345u);
  EXPECT_TRUE(beats[0].inventory_digest.empty());  // no inventory reported
}

TEST_F(SchedulerSessionTest, WhileItCannotSendItRetriesSoonBackingOffToTheRetryInterval) {
  SessionOptions o = options();
  o.register_retry = 200ms;
  make(o);
  out_.connected = false;
  session_->start();
  std::vector<long> gaps;
  SteadyTime last = now_;
  int attempts = out_.attempts;
  for (int i = 0; i < 2000 && gaps.size() < 7; ++i) {
    advance(1ms);
    if (out_.attempts != attempts) {
      attempts = out_.attempts;
      gaps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(now_ - last).count());
      last = now_;
    }
  }
  EXPECT_THAT(gaps, ElementsAre(20, 40, 80, 160, 200, 200, 200));
  // Connected: the next register goes out, then every register_retry again,
  // starting from 20 ms the next time sends fail.
  out_.connected = true;
  advance(200ms);
  EXPECT_EQ(out_.take<proto::Register>().size(), 1u);
  advance(199ms);
  EXPECT_THAT(out_.sent, IsEmpty());
  out_.connected = false;
  advance(1ms);
  attempts = out_.attempts;
  advance(20ms);
  EXPECT_EQ(out_.attempts, attempts + 1);
}

TEST_F(SchedulerSessionTest, ReregisterListsRunningJobsAndRecentOutcomesAndResendsThem) {
  make();
  register_now();
  receive(assign("still", 3));
  receive(assign("long", 1));
  EXPECT_THAT(executor_.started, ElementsAre("still/3", "long/1"));
  executor_.jobs.erase({"long", 1});
  session_->job_event(done_event("long", 1, "cancelled"));
  auto sent = out_.take_events();
  ASSERT_EQ(sent.size(), 3u);  // two job-started, one job-done
  EXPECT_EQ(sent[2].type, proto::Type::kJobDone);

  // As a restarted scheduler that does not know the worker would.
  now_ += 1s;
  receive(proto::Reregister{.reason = "unknown worker"});
  EXPECT_FALSE(session_->registered());
  auto regs = out_.take<proto::Register>();
  ASSERT_EQ(regs.size(), 1u);
  // The running job, and the one whose outcome the restart may have lost.
  EXPECT_THAT(keys(regs[0].running), UnorderedElementsAre("still/3", "long/1"));
  // More events the restarted scheduler did not recognise: one register answers them all.
  receive(proto::Reregister{.reason = "unknown worker"});
  EXPECT_THAT(out_.take<proto::Register>(), IsEmpty());

  receive(proto::Registered{.scheduler_id = "s2", .heartbeat_ms = 1000, .lease_ms = 10000});
  auto resent = out_.take_events();
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].job_id, "long");
  EXPECT_EQ(resent[0].outcome, "cancelled");
  // Heartbeats list what runs, not what ended.
  advance(1000ms);
  auto beats = out_.take<proto::Heartbeat>();
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_THAT(keys(beats[0].running), ElementsAre("still/3"));
  EXPECT_EQ(beats[0].stats.running_jobs, 1u);
}

TEST_F(SchedulerSessionTest, OutcomesOlderThanTheLeaseOrFiveSecondsAreNotResent) {
  make();
  register_now(/*heartbeat_ms=*/1000, /*lease_ms=*/3000);
  session_->job_event(done_event("old", 1, "succeeded"));
  advance(2000ms);
  session_->job_event(done_event("new", 1, "succeeded"));
  advance(1500ms);  // "old" is 3.5 s old: past the 3 s lease
  out_.sent.clear();
  receive(proto::Reregister{.reason = "restarted"});
  auto regs = out_.take<proto::Register>();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_THAT(keys(regs[0].running), ElementsAre("new/1"));
  receive(proto::Registered{.scheduler_id = "s2", .heartbeat_ms = 1000, .lease_ms = 60000});
  auto resent = out_.take_events();
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].job_id, "new");

  // A long lease still keeps outcomes 5 s at most.
  advance(5001ms);
  receive(proto::Reregister{.reason = "restarted"});
  regs = out_.take<proto::Register>();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_THAT(regs[0].running, IsEmpty());
}

TEST_F(SchedulerSessionTest, EventsWhileUnregisteredAreKeptInOrderAndSentOnceRegistered) {
  make();
  session_->start();
  out_.take<proto::Register>();
  receive(assign("j1", 1));  // assigned before the registered arrived
  session_->job_event(log_event("j1", 1, "building\n"));
  executor_.jobs.clear();
  session_->job_event(done_event("j1", 1, "succeeded"));
  EXPECT_THAT(out_.sent, IsEmpty());
  EXPECT_EQ(session_->buffered_count(), 3u);
  // A register meanwhile lists the job, so the scheduler keeps it for the outcome.
  advance(2000ms);
  auto regs = out_.take<proto::Register>();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_THAT(keys(regs[0].running), ElementsAre("j1/1"));

  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 1000, .lease_ms = 10000});
  auto events = out_.take_events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, proto::Type::kJobStarted);
  EXPECT_EQ(events[1].log, "building\n");
  EXPECT_EQ(events[2].outcome, "succeeded");
  EXPECT_EQ(session_->buffered_count(), 0u);
}

TEST_F(SchedulerSessionTest, OverTheBoundOldestLogTextIsDroppedWithAGapNoteButStepsAndOutcomesStay) {
  SessionOptions o = options();
  o.max_buffered_bytes = 4096;
  make(o);
  session_->start();
  out_.take<proto::Register>();
  session_->job_event(event(proto::Type::kJobStarted, "j1", 1));
  for (int i = 0; i < 20; ++i) session_->job_event(log_event("j1", 1, fmt::format("{:0>500}\n", i)));
  proto::JobEvent step = event(proto::Type::kJobStep, "j1", 1);
  step.step.id = hex_id(1);
  session_->job_event(step);
  session_->job_event(log_event("j1", 1, "last words\n"));
  session_->job_event(done_event("j1", 1, "succeeded"));
  session_->job_event(log_event("j2", 1, "other job\n"));
  EXPECT_LE(session_->buffered_bytes(), 4096u);

  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 1000, .lease_ms = 10000});
  auto events = out_.take_events();
  std::vector<proto::Type> types;
  std::string j1_log;
  for (const auto& e : events) {
    types.push_back(e.type);
    if (e.job_id == "j1" && e.type == proto::Type::kJobLog) j1_log += e.log;
  }
  EXPECT_EQ(std::count(types.begin(), types.end(), proto::Type::kJobStarted), 1);
  EXPECT_EQ(std::count(types.begin(), types.end(), proto::Type::kJobStep), 1);
  EXPECT_EQ(std::count(types.begin(), types.end(), proto::Type::kJobDone), 1);
  // The oldest text went; the newest stayed, after a note where the gap is.
  EXPECT_THAT(j1_log, ::testing::Not(HasSubstr(fmt::format("{:0>500}\n", 0))));
  EXPECT_THAT(j1_log, HasSubstr(fmt::format("{:0>500}\n", 19)));
  EXPECT_THAT(j1_log, HasSubstr("last words\n"));
  // The note says how much went, before the text that follows the gap.
  const std::size_t note = j1_log.find("[kiln-worker w1: about ");
  ASSERT_NE(note, std::string::npos) << j1_log.substr(0, 300);
  EXPECT_THAT(j1_log.substr(note), ::testing::StartsWith("[kiln-worker w1: about "));
  EXPECT_THAT(j1_log, ::testing::ContainsRegex("about [0-9.]+ (B|KiB|MiB|GiB) of this job's log were dropped "
                                               "while the scheduler was unreachable"));
  EXPECT_LT(note, j1_log.find(fmt::format("{:0>500}\n", 19)));
  // It goes with the first of j1's events still kept: before the step.
  auto first_note = std::find_if(events.begin(), events.end(), [](const proto::JobEvent& e) {
    return e.log.find("were dropped") != std::string::npos;
  });
  auto step_at = std::find_if(events.begin(), events.end(),
                              [](const proto::JobEvent& e) { return e.type == proto::Type::kJobStep; });
  EXPECT_LT(first_note - events.begin(), step_at - events.begin());
  EXPECT_EQ(events.back().job_id, "j2");  // order kept across jobs
}

// Found by tests/fuzz/worker_session_fuzz: a job whose every held chunk of
// log text was dropped over the bound, and that printed nothing more before
// it ended, had no chunk left to carry its gap note: an older scheduler (one
// that sees no holes by offset) got the job's outcome and a log that just
// stopped, as if nothing had been lost.
TEST_F(SchedulerSessionTest, AGapInTheLogOfAJobThatPrintsNothingAfterItIsStillNoted) {
  SessionOptions o = options();
  o.max_buffered_bytes = 1024;
  make(o);
  session_->start();
  out_.take<proto::Register>();
  for (int i = 0; i < 4; ++i) session_->job_event(log_event("quiet", 1, fmt::format("{:0>500}\n", i)));
  // Another job's outcome, large enough that every log chunk held goes.
  proto::JobEvent done = done_event("other", 1, "failed");
  done.error = std::string(1000, 'e');
  session_->job_event(done);
  EXPECT_EQ(session_->buffered_count(), 1u);
  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 1000, .lease_ms = 10000});
  ASSERT_FALSE(session_->scheduler_acks());
  session_->job_event(done_event("quiet", 1, "succeeded"));
  std::string quiet_log;
  bool done_seen = false;
  for (const auto& e : out_.take_events()) {
    if (e.job_id != "quiet") continue;
    if (e.type == proto::Type::kJobDone) done_seen = true;
    if (e.type == proto::Type::kJobLog) {
      EXPECT_FALSE(done_seen) << "log text after the job-done";
      quiet_log += e.log;
    }
  }
  EXPECT_TRUE(done_seen);
  EXPECT_THAT(quiet_log, HasSubstr("of this job's log were dropped while the scheduler was unreachable"));
}

TEST_F(SchedulerSessionTest, CancelJobCancelsOnlyTheAttemptRunningHere) {
  make();
  register_now();
  receive(assign("j7", 2));
  // The scheduler cancels a superseded attempt it hears from: not this one.
  receive(proto::CancelAssigned{.job_id = "j7", .attempt = 1});
  receive(proto::CancelAssigned{.job_id = "nope", .attempt = 1});
  EXPECT_THAT(executor_.cancelled, IsEmpty());
  receive(proto::CancelAssigned{.job_id = "j7", .attempt = 2});
  EXPECT_THAT(executor_.cancelled, ElementsAre("j7/2"));
}

TEST_F(SchedulerSessionTest, AnAssignAlreadyRunningOrAfterStopIsNotStarted) {
  make();
  register_now();
  receive(assign("j1", 1));
  receive(assign("j1", 1));
  receive(assign("j1", 2));  // another attempt is another job
  EXPECT_THAT(executor_.started, ElementsAre("j1/1", "j1/2"));
  EXPECT_EQ(out_.take_events().size(), 2u);  // one job-started each
  session_->refuse_new_jobs();
  receive(assign("j2", 1));
  EXPECT_THAT(executor_.started, ElementsAre("j1/1", "j1/2"));
  EXPECT_THAT(out_.sent, IsEmpty());
}

TEST_F(SchedulerSessionTest, ARefusedRegistrationIsFatalButLaterErrorsAreNot) {
  make();
  register_now();
  receive(proto::ErrorReply{.kind = "failed precondition", .message = "something else"});
  EXPECT_FALSE(session_->fatal());

  make();
  session_->start();
  receive(proto::ErrorReply{.kind = "invalid argument", .message = "not this"});
  EXPECT_FALSE(session_->fatal());
  receive(proto::ErrorReply{.kind = "failed precondition", .message = "protocol version 1 is not 2"});
  ASSERT_TRUE(session_->fatal());
  EXPECT_EQ(session_->fatal()->kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(session_->fatal()->to_string(),
              AllOf(HasSubstr("tcp://127.0.0.1:7801 refused to register"), HasSubstr("protocol version")));
}

TEST_F(SchedulerSessionTest, BadMessagesAreIgnored) {
  make();
  register_now();
  out_.sent.clear();
  session_->receive(std::nullopt, "frobnicate", "x");
  session_->receive(proto::Type::kAssign, "assign", "not capnp");
  session_->receive(proto::Type::kSubmit, "submit", proto::encode(proto::Submit{}));
  EXPECT_THAT(out_.sent, IsEmpty());
  EXPECT_THAT(executor_.started, IsEmpty());
  EXPECT_TRUE(session_->registered());
}

TEST_F(SchedulerSessionTest, WorkerStateIsRemembered) {
  make();
  register_now();
  EXPECT_EQ(session_->scheduler_state(), "active");
  receive(proto::WorkerState{.state = "draining"});
  EXPECT_EQ(session_->scheduler_state(), "draining");
  receive(
      proto::Registered{.scheduler_id = "s2", .heartbeat_ms = 1000, .lease_ms = 10000, .state = "paused"});
  EXPECT_EQ(session_->scheduler_state(), "paused");
}

TEST_F(SchedulerSessionTest, TheFullInventoryFollowsEachRegistrationThenDeltasAndHeartbeatsCarryTheDigest) {
  SessionOptions o = options();
  o.inventory_chunk_ids = 2;
  make(o);
  executor_.inventory = true;
  executor_.ids = {hex_id(1), hex_id(2), hex_id(3), "not-an-id"};
  session_->start();
  out_.take<proto::Register>();
  // Not registered: changes wait for the full set.
  session_->store_changed({hex_id(9)}, {});
  EXPECT_THAT(out_.sent, IsEmpty());

  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 1000, .lease_ms = 10000});
  auto full = out_.take<proto::Inventory>();
  ASSERT_EQ(full.size(), 2u);
  EXPECT_TRUE(full[0].full);
  EXPECT_FALSE(full[1].full);
  EXPECT_EQ(full[0].added.size(), 2u);
  EXPECT_EQ(full[1].added.size(), 1u);
  EXPECT_EQ(full[1].set_digest, digest_of({hex_id(1), hex_id(2), hex_id(3)}));
  advance(1000ms);
  auto beats = out_.take<proto::Heartbeat>();
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].inventory_digest, digest_of({hex_id(1), hex_id(2), hex_id(3)}));

  session_->store_changed({hex_id(4), hex_id(1)}, {hex_id(2)});  // 1 is known already
  auto delta = out_.take<proto::Inventory>();
  ASSERT_EQ(delta.size(), 1u);
  EXPECT_FALSE(delta[0].full);
  EXPECT_THAT(delta[0].added, ElementsAre(raw_id(hex_id(4))));
  EXPECT_THAT(delta[0].removed, ElementsAre(raw_id(hex_id(2))));
  EXPECT_EQ(delta[0].set_digest, digest_of({hex_id(1), hex_id(3), hex_id(4)}));

  // A change that cannot be sent still counts: the next heartbeat disagrees.
  out_.connected = false;
  session_->store_changed({hex_id(5)}, {});
  out_.connected = true;
  advance(1000ms);
  beats = out_.take<proto::Heartbeat>();
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].inventory_digest, digest_of({hex_id(1), hex_id(3), hex_id(4), hex_id(5)}));
}

TEST_F(SchedulerSessionTest, AFullInventoryThatCannotBeSentRegistersAgain) {
  make();
  executor_.inventory = true;
  executor_.ids = {hex_id(1)};
  session_->start();
  out_.take<proto::Register>();
  out_.connected = false;
  receive(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 1000, .lease_ms = 10000});
  EXPECT_FALSE(session_->registered());
  out_.connected = true;
  // At the next retry after the last register.
  advance(1999ms);
  EXPECT_THAT(out_.take<proto::Register>(), IsEmpty());
  advance(1ms);
  EXPECT_EQ(out_.take<proto::Register>().size(), 1u);
}

// ---- a scheduler that acknowledges (registered.log_cap_bytes > 0) ----

class AckingSchedulerTest : public SchedulerSessionTest {
 protected:
  void registered(std::uint64_t log_cap = 1u << 20) {
    receive(proto::Registered{
        .scheduler_id = "s1", .heartbeat_ms = 60000, .lease_ms = 60000, .log_cap_bytes = log_cap});
  }
  void start_registered(std::uint64_t log_cap = 1u << 20) {
    session_->start();
    auto regs = out_.take<proto::Register>();
    ASSERT_EQ(regs.size(), 1u);
    EXPECT_TRUE(regs[0].log_offsets);  // it numbers its chunks
    registered(log_cap);
    EXPECT_TRUE(session_->scheduler_acks());
  }
  void ack(const std::string& job, std::uint64_t offset, bool full = false, bool done = false) {
    receive(proto::JobAcks{
        .acks = {{.job_id = job, .attempt = 1, .log_offset = offset, .log_full = full, .done = done}}});
  }
  // "offset:text" of each job-log sent, and forgets everything sent.
  std::vector<std::string> take_chunks() {
    std::vector<std::string> out;
    for (const auto& e : out_.take_events()) {
      if (e.type == proto::Type::kJobLog) out.push_back(fmt::format("{}:{}", e.log_offset, e.log));
    }
    return out;
  }
  std::uint64_t released(const std::string& job) {
    auto it = executor_.released.find({job, 1});
    return it == executor_.released.end() ? 0 : it->second;
  }
};

TEST_F(AckingSchedulerTest, LogTextIsKeptUntilAcknowledgedAndSentAgainAfterARegistration) {
  make();
  start_registered();
  receive(assign("j1", 1));
  session_->job_event(log_event("j1", 1, "aaa"));
  session_->job_event(log_event("j1", 1, "bbbb"));
  EXPECT_THAT(take_chunks(), ElementsAre("0:aaa", "3:bbbb"));
  // Sent is not enough: held until the scheduler says it stored it.
  EXPECT_EQ(session_->buffered_count(), 2u);
  EXPECT_EQ(released("j1"), 0u);
  ack("j1", 3);
  EXPECT_EQ(session_->buffered_count(), 1u);
  EXPECT_EQ(released("j1"), 3u);  // the executor may hand on 3 more bytes

  // The scheduler restarts (killed before committing "bbbb"): after the new
  // registration what it did not acknowledge goes again, nothing else.
  now_ += 1s;
  receive(proto::Reregister{.reason = "unknown worker"});
  EXPECT_THAT(keys(out_.take<proto::Register>()[0].running), ElementsAre("j1/1"));
  registered();
  EXPECT_THAT(take_chunks(), ElementsAre("3:bbbb"));
  session_->job_event(log_event("j1", 1, "cc"));
  executor_.jobs.clear();
  session_->job_event(done_event("j1", 1, "succeeded"));
  auto sent = out_.take_events();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].log_offset, 7u);
  EXPECT_EQ(sent[1].type, proto::Type::kJobDone);
  EXPECT_EQ(sent[1].log_end, 9u);  // the log's length, for the scheduler to check

  // The outcome too is kept until acknowledged: listed and sent again, after the log.
  ack("j1", 7);
  now_ += 1min;  // far past the 5 s an older scheduler's outcomes are kept
  receive(proto::Reregister{.reason = "unknown worker"});
  EXPECT_THAT(keys(out_.take<proto::Register>()[0].running), ElementsAre("j1/1"));
  registered();
  sent = out_.take_events();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(fmt::format("{}:{}", sent[0].log_offset, sent[0].log), "7:cc");
  EXPECT_EQ(sent[1].outcome, "succeeded");
  ack("j1", 9, /*full=*/true, /*done=*/true);
  EXPECT_EQ(session_->buffered_count(), 0u);
  EXPECT_EQ(released("j1"), 9u);
  receive(proto::Reregister{.reason = "unknown worker"});
  EXPECT_THAT(out_.take<proto::Register>()[0].running, IsEmpty());
}

TEST_F(AckingSchedulerTest, WhileUnregisteredTheLogWaitsAndGoesBeforeTheJobDone) {
  make();
  session_->start();
  out_.take<proto::Register>();
  receive(assign("j1", 1));
  session_->job_event(log_event("j1", 1, "one\n"));
  session_->job_event(log_event("j1", 1, "two\n"));
  session_->job_event(done_event("j1", 1, "failed"));
  EXPECT_THAT(out_.sent, IsEmpty());
  registered();
  auto sent = out_.take_events();
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0].type, proto::Type::kJobStarted);
  EXPECT_EQ(sent[1].log_offset, 0u);
  EXPECT_EQ(sent[2].log_offset, 4u);
  EXPECT_EQ(sent[3].type, proto::Type::kJobDone);
  EXPECT_EQ(sent[3].log_end, 8u);
}

TEST_F(AckingSchedulerTest, WhatStaysUnacknowledgedForFiveSecondsIsSentAgain) {
  make();
  start_registered();
  receive(assign("j1", 1));
  session_->job_event(log_event("j1", 1, "lost ack\n"));
  EXPECT_THAT(take_chunks(), ElementsAre("0:lost ack\n"));
  advance(4s);
  EXPECT_THAT(take_chunks(), IsEmpty());
  advance(1s);
  EXPECT_THAT(take_chunks(), ElementsAre("0:lost ack\n"));
  ack("j1", 9);
  advance(10s);
  EXPECT_THAT(take_chunks(), IsEmpty());
}

TEST_F(AckingSchedulerTest, PastTheCapOrAFullLogTextIsDroppedAtOnceAndReleased) {
  make();
  start_registered(/*log_cap=*/100);
  receive(assign("j1", 1));
  out_.sent.clear();
  session_->job_event(log_event("j1", 1, std::string(60, 'a')));
  session_->job_event(log_event("j1", 1, std::string(60, 'b')));  // crosses the cap: sent, so it is marked
  session_->job_event(log_event("j1", 1, std::string(60, 'c')));  // past it: not even kept
  auto chunks = take_chunks();
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_THAT(chunks[1], ::testing::StartsWith("60:b"));
  EXPECT_EQ(session_->buffered_bytes(), 120u);
  // The executor may drop the rest where it is printed.
  EXPECT_TRUE(executor_.unwanted.contains(JobKey("j1", 1)));
  ack("j1", 120, /*full=*/true);
  EXPECT_EQ(session_->buffered_bytes(), 0u);
  EXPECT_EQ(released("j1"), 180u);
  session_->job_event(log_event("j1", 1, std::string(1000, 'd')));
  EXPECT_EQ(released("j1"), 1180u);  // dropped as it comes: the executor never waits for it
  EXPECT_THAT(take_chunks(), IsEmpty());
  executor_.jobs.clear();
  // The executor counted what it dropped itself: its length wins.
  proto::JobEvent ended = done_event("j1", 1, "succeeded");
  ended.log_end = 5000;
  session_->job_event(ended);
  auto done = out_.take_events();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].log_end, 5000u);

  // A scheduler that says the log is full (its cap counts earlier attempts
  // too) makes the worker drop what it holds past that.
  receive(assign("j2", 1));
  session_->job_event(log_event("j2", 1, "kept "));
  session_->job_event(log_event("j2", 1, "in flight"));
  EXPECT_FALSE(executor_.unwanted.contains(JobKey("j2", 1)));
  receive(proto::JobAcks{.acks = {{.job_id = "j2", .attempt = 1, .log_offset = 5, .log_full = true}}});
  EXPECT_TRUE(executor_.unwanted.contains(JobKey("j2", 1)));
  EXPECT_EQ(session_->buffered_bytes(), 0u);
  EXPECT_EQ(executor_.released[JobKey("j2", 1)], 14u);
}

// Found by tests/fuzz/worker_session_fuzz: a job-acks with done for a job
// whose text past the acknowledged offset was still held forgot the job's
// log but not its bytes: the held count stayed up, and the next time the
// bound was passed enforce_bound took the front chunk of a job holding none
// (undefined behaviour; with no job left, an end iterator).
TEST_F(AckingSchedulerTest, AJobDoneAcknowledgedWithTextStillHeldReleasesAllOfIt) {
  SessionOptions o = options();
  o.max_buffered_bytes = 4096;
  make(o);
  start_registered();
  receive(assign("j1", 1));
  session_->job_event(log_event("j1", 1, std::string(100, 'a')));
  session_->job_event(log_event("j1", 1, std::string(100, 'b')));
  executor_.jobs.clear();
  session_->job_event(done_event("j1", 1, "succeeded"));
  EXPECT_EQ(session_->buffered_bytes(), 200u);
  ack("j1", 100, /*full=*/false, /*done=*/true);
  EXPECT_EQ(session_->buffered_bytes(), 0u);
  EXPECT_EQ(released("j1"), 200u);
  // Over the bound again, with another job's text to drop: it is that job's.
  receive(assign("j2", 1));
  for (int i = 0; i < 20; ++i) session_->job_event(log_event("j2", 1, fmt::format("{:0>499}\n", i)));
  EXPECT_LE(session_->buffered_bytes(), 4096u);
  EXPECT_GT(released("j2"), 0u);
}

// Found by the worker_session fuzzer (410,472 executions): text held when a
// job-done went to a scheduler that acknowledges nothing stayed in the count
// of held bytes after the job was forgotten; the next pass over the bound
// then looped for ever looking for text to drop.
TEST_F(AckingSchedulerTest, TextStillHeldWhenAJobDoneGoesToAnOlderSchedulerLeavesTheCount) {
  SessionOptions o = options();
  o.max_buffered_bytes = 4096;
  make(o);
  session_->start();
  out_.take<proto::Register>();
  registered(/*log_cap=*/0);  // an older scheduler: it acknowledges nothing
  ASSERT_FALSE(session_->scheduler_acks());
  receive(assign("j1", 1));
  out_.connected = false;
  session_->job_event(log_event("j1", 1, std::string(100, 'a')));
  session_->job_event(done_event("j1", 1, "succeeded"));
  session_->job_event(log_event("j1", 1, std::string(100, 'b')));  // after its job-done
  out_.connected = true;
  advance(1ms);
  EXPECT_EQ(session_->buffered_bytes(), 0u);
  // Over the bound with another job's text: dropping it ends.
  receive(assign("j2", 1));
  out_.connected = false;
  for (int i = 0; i < 20; ++i) session_->job_event(log_event("j2", 1, fmt::format("{:0>499}\n", i)));
  EXPECT_LE(session_->buffered_bytes(), 4096u);
}

TEST_F(AckingSchedulerTest, OverTheByteBoundTheOldestTextIsDroppedAndTheHoleIsTheSchedulers) {
  SessionOptions o = options();
  o.max_buffered_bytes = 4096;
  make(o);
  start_registered();
  receive(assign("j1", 1));
  out_.sent.clear();
  out_.connected = false;  // the socket's queue is full: nothing leaves
  for (int i = 0; i < 20; ++i) session_->job_event(log_event("j1", 1, fmt::format("{:0>499}\n", i)));
  EXPECT_LE(session_->buffered_bytes(), 4096u);
  EXPECT_GT(released("j1"), 0u);  // what was dropped is no longer the executor's to wait for
  out_.connected = true;
  advance(1ms);
  auto chunks = take_chunks();
  ASSERT_FALSE(chunks.empty());
  // Numbered as produced: the first offset says where the hole ends; no note in the text.
  EXPECT_THAT(chunks.front(), ::testing::StartsWith(fmt::format("{}:", 500 * (20 - chunks.size()))));
  EXPECT_THAT(chunks.back(), ::testing::StartsWith("9500:"));
  for (const auto& c : chunks) EXPECT_THAT(c, ::testing::Not(HasSubstr("dropped")));
}

// The session with the --fake-build executor and the fake clock: timers of
// the loop, cancel and stop.
TEST_F(SchedulerSessionTest, FakeBuildsEndWhenDueAndCanBeCancelledOrInterrupted) {
  FakeBuildExecutor fake(FakeBuildOptions{.seconds = 2});
  SchedulerSession session(options(), out_, fake, [this] { return now_; });
  ASSERT_TRUE(fake.open({.worker_name = "w1", .events = &session, .wake = [] {}}));
  session.start();
  session.receive(proto::Type::kRegistered, "registered",
                  proto::encode(proto::Registered{.scheduler_id = "s1", .heartbeat_ms = 60000}));
  out_.sent.clear();
  auto send_assign = [&](const std::string& id) {
    session.receive(proto::Type::kAssign, "assign", proto::encode(assign(id, 1)));
  };
  send_assign("a");
  send_assign("b");
  EXPECT_EQ(fake.poll_timeout(now_), 2001ms);
  now_ += 1000ms;
  send_assign("c");
  EXPECT_EQ(fake.running_count(), 3u);
  EXPECT_EQ(fake.poll_timeout(now_), 1001ms);
  auto started = out_.take_events();
  ASSERT_EQ(started.size(), 6u);  // job-started and a "running for 2 s" line each
  EXPECT_THAT(started[1].log, HasSubstr("fake build of job a on w1: running for 2 s"));

  session.receive(proto::Type::kCancelAssigned, "cancel-job",
                  proto::encode(proto::CancelAssigned{.job_id = "b", .attempt = 1}));
  auto cancelled = out_.take_events();
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0].outcome, "cancelled");

  now_ += 999ms;
  fake.poll(now_);
  EXPECT_THAT(out_.sent, IsEmpty());
  now_ += 1ms;
  fake.poll(now_);
  auto ended = out_.take_events();
  ASSERT_EQ(ended.size(), 3u);  // a "done" line, the (from) step, the outcome
  EXPECT_EQ(ended[0].log, "fake build of job a on w1: done\n");
  EXPECT_EQ(ended[1].type, proto::Type::kJobStep);
  EXPECT_EQ(ended[2].job_id, "a");
  EXPECT_EQ(ended[2].outcome, "succeeded");
  EXPECT_EQ(ended[2].result, ended[1].step.id);
  EXPECT_EQ(fake.running_count(), 1u);

  fake.interrupt_all("kiln-worker w1 is shutting down");
  auto interrupted = out_.take_events();
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].outcome, "interrupted");
  EXPECT_EQ(interrupted[0].error, "kiln-worker w1 is shutting down");
  EXPECT_TRUE(fake.idle());

  // A job that wants files back fails at once, saying why.
  proto::Assign with_output = assign("d", 1);
  with_output.job.outputs = {"/out"};
  session.receive(proto::Type::kAssign, "assign", proto::encode(with_output));
  auto refused = out_.take_events();
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(refused.back().outcome, "failed");
  EXPECT_THAT(refused.back().error, HasSubstr("--fake-build"));
  EXPECT_THAT(refused.back().error, HasSubstr("--output /out"));
  EXPECT_TRUE(fake.idle());
}

}  // namespace
}  // namespace kiln::worker
