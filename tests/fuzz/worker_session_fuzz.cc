// libFuzzer target for the worker's side of the scheduler protocol:
// worker::SchedulerSession::receive driven with arbitrary scheduler messages
// (raw bodies, or built from a few bytes: registered, reregister, assign,
// cancel-job, worker-state, error), interleaved with tick(), clock steps, a
// socket that connects and disconnects, refuse_new_jobs(), and the events of
// a scripted executor (job logs, steps, outcomes, store changes), without a
// socket, as worker/daemon/scheduler_session_test.cc drives it.
//
// It checks, and aborts when one fails:
//   - every message the session sends decodes as its type;
//   - the executor's contract: start() is never called for an attempt that
//     runs, nor after refuse_new_jobs();
//   - no event of an attempt is sent before its job-started;
//   - log text is never reordered or duplicated, and where some was dropped
//     (over max_buffered_bytes while unregistered) the job's log says so;
//   - at the end, once connected and registered, every outcome (job-done)
//     the executor reported has been sent: outcomes are never dropped;
//   - timeout() is never negative.
// Seeds: `worker_session_fuzz --write-seeds=tests/fuzz/corpus/worker_session`.
// Run with scripts/fuzz worker_session.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/sha256.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/proto_types.h"
#include "worker/daemon/scheduler_session.h"

namespace {

namespace proto = kiln::proto;
namespace worker = kiln::worker;
using kiln::fuzz::ByteReader;
using kiln::fuzz::ByteWriter;
using kiln::fuzz::check;
using kiln::fuzz::fail;
using worker::JobKey;
using namespace std::chrono_literals;

constexpr std::string_view kGapNote = "were dropped while the scheduler was unreachable";

std::string key_text(const JobKey& key) {
  return key.first + "/" + std::to_string(key.second);
}

// The socket: records what is sent, refuses while not connected.
class RecordingOut final : public worker::MessageOut {
 public:
  bool send(proto::Type type, std::string_view body) override {
    if (!connected) return false;
    kiln::fuzz::check_body(type, body, "the worker");
    if (type == proto::Type::kJobStarted || type == proto::Type::kJobLog || type == proto::Type::kJobStep ||
        type == proto::Type::kJobDone)
      on_event(type, *proto::decode<proto::JobEvent>(body));
    return true;
  }

  bool connected = false;
  std::set<JobKey> started;                                 // job-started sent
  std::set<JobKey> done;                                    // job-done sent
  std::map<JobKey, std::vector<std::uint64_t>> log_chunks;  // numbers of the chunks sent, in order
  std::set<JobKey> gap_noted;

 private:
  void on_event(proto::Type type, const proto::JobEvent& e) {
    const JobKey key(e.job_id, e.attempt);
    if (type == proto::Type::kJobStarted) {
      started.insert(key);
      return;
    }
    check(started.contains(key), "an event was sent before its job-started", key_text(key));
    if (type == proto::Type::kJobDone) done.insert(key);
    if (type != proto::Type::kJobLog) return;
    // The executor's chunks are "#N:..."; the session's own notes are not.
    if (e.log.starts_with("#")) {
      log_chunks[key].push_back(std::stoull(e.log.substr(1)));
    } else {
      check(e.log.find(kGapNote) != std::string::npos, "a log chunk nobody wrote", e.log);
      gap_noted.insert(key);
    }
  }
};

// Runs nothing: starts, cancels and the events are the input's.
class ScriptedExecutor final : public worker::JobExecutor {
 public:
  kiln::Status open(const worker::ExecutorHost&) override { return {}; }
  std::string_view mode() const override { return "scripted"; }
  void start(proto::Assign assign, worker::SteadyTime) override {
    const JobKey key(assign.job_id, assign.attempt);
    check(!refusing, "start() after refuse_new_jobs()", key_text(key));
    check(!jobs.contains(key), "start() for an attempt that runs", key_text(key));
    jobs.insert(key);
    started.insert(key);
  }
  bool running(const JobKey& key) const override { return jobs.contains(key); }
  std::vector<JobKey> running_jobs() const override { return {jobs.begin(), jobs.end()}; }
  std::size_t running_count() const override { return jobs.size(); }
  bool cancel(const JobKey& key) override {
    if (!jobs.contains(key)) return false;
    finish(key, "cancelled");
    return true;
  }
  void interrupt_all(const std::string&) override {}
  bool idle() const override { return jobs.empty(); }
  void poll(worker::SteadyTime) override {}
  std::optional<std::chrono::milliseconds> poll_timeout(worker::SteadyTime) const override {
    return std::nullopt;
  }
  void fill_stats(proto::WorkerStats& stats) override { stats.disk_free_bytes = 1ull << 30; }
  bool reports_inventory() const override { return inventory; }
  kiln::Result<std::vector<std::string>> list_results() override { return ids; }
  void close() override {}

  void log(const JobKey& key, std::string_view text) {
    const std::uint64_t n = next_chunk_++;
    logs[key].push_back(n);
    sink->job_event({.type = proto::Type::kJobLog,
                     .job_id = key.first,
                     .attempt = key.second,
                     .log = "#" + std::to_string(n) + ":" + std::string(text)});
  }
  void step(const JobKey& key, bool cached) {
    sink->job_event({.type = proto::Type::kJobStep,
                     .job_id = key.first,
                     .attempt = key.second,
                     .step = {std::string(64, 'a'), "(run (shell \"make\"))", cached, 1.5}});
  }
  void finish(const JobKey& key, const std::string& outcome) {
    jobs.erase(key);
    done.insert(key);
    sink->job_event({.type = proto::Type::kJobDone,
                     .job_id = key.first,
                     .attempt = key.second,
                     .outcome = outcome,
                     .result = outcome == "succeeded" ? std::string(64, 'b') : ""});
  }

  worker::JobEventSink* sink = nullptr;
  std::set<JobKey> jobs;
  std::set<JobKey> started, done;
  std::map<JobKey, std::vector<std::uint64_t>> logs;  // chunk numbers written
  bool refusing = false;
  bool inventory = false;
  std::vector<std::string> ids;

 private:
  std::uint64_t next_chunk_ = 0;
};

enum class Op : std::uint8_t {
  kReceiveRaw,  // type byte (>= 32: unknown), body blob
  kReceive,     // a message built from a few bytes
  kTick,        // clock step, then tick()
  kConnect,     // the socket connects (flag) or drops
  kLog,         // job index, text blob
  kStep,        // job index, cached flag
  kDone,        // job index, outcome
  kStoreChanged,
  kRefuse,  // refuse_new_jobs()
  kFlush,
  kCount,
};

const std::string kJobIds[] = {"j1", "j2", "j3", ""};
const std::string kStates[] = {"active", "paused", "draining", ""};
const std::string kOutcomes[] = {"succeeded", "failed", "interrupted"};
const std::string kErrorKinds[] = {"failed precondition", "permission denied", "busy", "invalid argument",
                                   "?"};
const std::uint32_t kPeriods[] = {0, 1, 1'000, 10'000, 0xffffffffu};
const std::int64_t kSteps[] = {0, 1, 20, 499, 500, 1'000, 2'000, 5'001, 60'000};
const std::string kHexIds[] = {std::string(64, 'a'), std::string(64, 'b'), std::string(64, 'c'), "not-hex"};

class Harness {
 public:
  explicit Harness(ByteReader& in) : in_(in) {
    const std::uint8_t config = in_.u8();
    executor_.inventory = (config & 1) != 0;
    executor_.ids = {kHexIds[0], kHexIds[1]};
    options_.name = "w1";
    options_.capacity = 2;
    options_.register_retry = 2'000ms;
    // Small bounds, so that the fuzzer reaches the drops.
    options_.max_buffered_bytes = (config & 2) ? 256 : 4096;
    options_.inventory_chunk_ids = (config & 4) ? 1 : 100;
    session_ = std::make_unique<worker::SchedulerSession>(options_, out_, executor_, [this] { return now_; });
    executor_.sink = session_.get();
    out_.connected = (config & 8) != 0;
    session_->start();
  }

  void run() {
    for (int ops = 0; !in_.empty() && ops < 256; ++ops) {
      step();
      check(session_->timeout() >= 0ms, "a negative timeout");
    }
    // The end: every job ends, the socket connects, the scheduler answers.
    for (const JobKey& key : std::set<JobKey>(executor_.jobs)) executor_.finish(key, "succeeded");
    out_.connected = true;
    receive(proto::Registered{.scheduler_id = "end", .heartbeat_ms = 1'000, .lease_ms = 10'000});
    session_->tick();
    for (const JobKey& key : executor_.done)
      check(out_.done.contains(key), "an outcome was never sent", key_text(key));
    check_logs();
  }

 private:
  template <class T>
  void receive(const T& message) {
    session_->receive(T::kType, proto::type_name(T::kType), proto::encode(message));
  }

  // The executor's running job the next byte names, if any.
  std::optional<JobKey> running_job() {
    const std::uint8_t i = in_.u8();
    if (executor_.jobs.empty()) return std::nullopt;
    auto it = executor_.jobs.begin();
    std::advance(it, i % executor_.jobs.size());
    return *it;
  }

  void step() {
    switch (static_cast<Op>(in_.u8() % static_cast<std::uint8_t>(Op::kCount))) {
      case Op::kReceiveRaw: {
        const std::uint8_t type = in_.u8();
        std::optional<proto::Type> known;
        if (type < kiln::fuzz::kMessageTypeCount) known = static_cast<proto::Type>(type);
        const std::string_view body = in_.blob();
        session_->receive(known, known ? proto::type_name(*known) : "mystery", body);
        return;
      }
      case Op::kReceive: return receive_built();
      case Op::kTick:
        now_ += std::chrono::milliseconds(in_.pick(kSteps));
        session_->tick();
        return;
      case Op::kConnect: out_.connected = in_.flag(); return;
      case Op::kLog:
        if (auto key = running_job()) executor_.log(*key, in_.blob());
        return;
      case Op::kStep:
        if (auto key = running_job()) executor_.step(*key, in_.flag());
        return;
      case Op::kDone:
        if (auto key = running_job()) executor_.finish(*key, in_.pick(kOutcomes));
        return;
      case Op::kStoreChanged: {
        std::vector<std::string> added, removed;
        for (int n = in_.u8() % 3; n > 0; --n) added.push_back(in_.pick(kHexIds));
        for (int n = in_.u8() % 2; n > 0; --n) removed.push_back(in_.pick(kHexIds));
        for (const std::string& id : added) executor_.ids.push_back(id);
        session_->store_changed(added, removed);
        return;
      }
      case Op::kRefuse:
        session_->refuse_new_jobs();
        executor_.refusing = true;
        return;
      case Op::kFlush: session_->flush(); return;
      case Op::kCount: break;
    }
  }

  void receive_built() {
    switch (in_.u8() % 6) {
      case 0:
        return receive(proto::Registered{.scheduler_id = "s1",
                                         .heartbeat_ms = in_.pick(kPeriods),
                                         .lease_ms = in_.pick(kPeriods),
                                         .state = in_.pick(kStates)});
      case 1: return receive(proto::Reregister{.reason = "scheduler restarted"});
      case 2:
        return receive(
            proto::Assign{.job_id = in_.pick(kJobIds),
                          .attempt = in_.u8() % 3u,
                          .job = {.spec = "((from busybox) (run (shell \"make\")))", .pool = "linux"}});
      case 3: return receive(proto::CancelAssigned{.job_id = in_.pick(kJobIds), .attempt = in_.u8() % 3u});
      case 4: return receive(proto::WorkerState{.state = in_.pick(kStates)});
      default:
        return receive(
            proto::ErrorReply{.request_id = 0, .kind = in_.pick(kErrorKinds), .message = "refused"});
    }
  }

  // Chunks arrive in order, once each; a job missing some says so.
  void check_logs() const {
    for (const auto& [key, sent] : out_.log_chunks) {
      auto written = executor_.logs.find(key);
      check(written != executor_.logs.end(), "log chunks of a job that wrote none", key_text(key));
      std::size_t at = 0;
      for (std::uint64_t n : sent) {
        while (at < written->second.size() && written->second[at] != n) ++at;
        check(at < written->second.size(), "log chunks reordered or sent twice", key_text(key));
        ++at;
      }
    }
    for (const auto& [key, written] : executor_.logs) {
      auto sent = out_.log_chunks.find(key);
      const std::size_t count = sent == out_.log_chunks.end() ? 0 : sent->second.size();
      if (count < written.size())
        check(out_.gap_noted.contains(key), "log text was dropped without a note in the job's log",
              key_text(key) + ": " + std::to_string(written.size() - count) + " of " +
                  std::to_string(written.size()) + " chunks dropped");
    }
  }

  ByteReader& in_;
  worker::SessionOptions options_;
  RecordingOut out_;
  ScriptedExecutor executor_;
  worker::SteadyTime now_{std::chrono::hours(1)};
  std::unique_ptr<worker::SchedulerSession> session_;
};

// ---- seeds ----

class Script {
 public:
  explicit Script(std::uint8_t config) { w_.u8(config); }
  template <class T>
  Script& receive(const T& message) {
    w_.u8(static_cast<std::uint8_t>(Op::kReceiveRaw))
        .u8(static_cast<std::uint8_t>(T::kType))
        .blob(proto::encode(message));
    return *this;
  }
  Script& op(Op op, std::initializer_list<std::uint8_t> args = {}) {
    w_.u8(static_cast<std::uint8_t>(op));
    for (std::uint8_t a : args) w_.u8(a);
    return *this;
  }
  Script& log(std::uint8_t job, std::string_view text) {
    op(Op::kLog, {job});
    w_.blob(text);
    return *this;
  }
  const std::string& str() const { return w_.str(); }

 private:
  ByteWriter w_;
};

proto::Registered registered() {
  return {.scheduler_id = "s1", .heartbeat_ms = 1'000, .lease_ms = 10'000, .state = "active"};
}

proto::Assign assign(const std::string& job, std::uint32_t attempt) {
  return {.job_id = job, .attempt = attempt, .job = {.spec = "((from busybox) (run (shell \"make\")))"}};
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  seeds.add("01-one-job", Script(8)
                              .receive(registered())
                              .receive(assign("j1", 1))
                              .log(0, "building\n")
                              .op(Op::kStep, {0, 0})
                              .op(Op::kDone, {0, 0})
                              .op(Op::kTick, {5})
                              .str());
  seeds.add("02-disconnected-drops", Script(2 | 8)
                                         .receive(registered())
                                         .receive(assign("j1", 1))
                                         .receive(assign("j2", 1))
                                         .op(Op::kConnect, {0})
                                         .receive(proto::Reregister{.reason = "lost"})
                                         .log(0, std::string(200, 'x'))
                                         .log(1, std::string(200, 'y'))
                                         .log(0, std::string(200, 'z'))
                                         .op(Op::kDone, {1, 1})
                                         .op(Op::kConnect, {1})
                                         .op(Op::kTick, {6})
                                         .receive(registered())
                                         .str());
  seeds.add("03-cancel-reassign", Script(8)
                                      .receive(registered())
                                      .receive(assign("j1", 1))
                                      .receive(assign("j1", 1))
                                      .receive(proto::CancelAssigned{.job_id = "j1", .attempt = 1})
                                      .receive(proto::CancelAssigned{.job_id = "j1", .attempt = 0})
                                      .receive(assign("j1", 2))
                                      .op(Op::kRefuse)
                                      .receive(assign("j2", 1))
                                      .str());
  seeds.add("04-inventory", Script(1 | 4 | 8)
                                .receive(registered())
                                .op(Op::kStoreChanged, {2, 0, 1, 1, 3})
                                .op(Op::kTick, {5})
                                .receive(proto::WorkerState{.state = "draining"})
                                .op(Op::kTick, {6})
                                .str());
  seeds.add("05-refused", Script(0)
                              .op(Op::kTick, {3})
                              .op(Op::kConnect, {1})
                              .op(Op::kTick, {4})
                              .receive(proto::ErrorReply{.kind = "busy", .message = "w1 is connected"})
                              .receive(proto::ErrorReply{.kind = "failed precondition", .message = "version"})
                              .str());
  seeds.add("06-restart-resend", Script(8)
                                     .receive(registered())
                                     .receive(assign("j1", 1))
                                     .op(Op::kDone, {0, 0})
                                     .receive(proto::Reregister{.reason = "scheduler restarted"})
                                     .op(Op::kTick, {4})
                                     .receive(registered())
                                     .op(Op::kTick, {8})
                                     .str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  kiln::fuzz::quiet_logs();
  kiln::fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteReader in(data, size);
  Harness harness(in);
  harness.run();
  return 0;
}
