// libFuzzer target for the worker's side of the scheduler protocol:
// worker::SchedulerSession::receive driven with arbitrary scheduler messages
// (raw bodies, or built from a few bytes: registered by an older scheduler
// or by one that acknowledges logs, job-acks, reregister, assign, cancel-job,
// worker-state, error), interleaved with tick(), clock steps, a socket that
// connects and disconnects, refuse_new_jobs(), and the events of a scripted
// executor (job logs, steps, outcomes, store changes; it drops text once told
// log_unwanted), without a socket, as worker/daemon/scheduler_session_test.cc
// drives it.
//
// It checks, and aborts when one fails:
//   - every message the session sends decodes as its type;
//   - the executor's contract: start() is never called for an attempt that
//     runs, nor after refuse_new_jobs(); log_released() offsets only grow
//     and never pass the text the job reported;
//   - no event of an attempt is sent before its job-started;
//   - every job-log chunk is the job's own text at its log_offset (the
//     worker's numbering), and its notes are gap or cap notes, sent only to
//     an older scheduler;
//   - text a scheduler acknowledged is never sent again, nor any text after
//     it said the log is full;
//   - to an older scheduler, log text is never reordered or duplicated
//     between two registrations, and where some was dropped the job's log
//     says so before the text after the gap or, when nothing followed, its
//     job-done;
//   - job-done's log_end is the log's whole length;
//   - at the end, once connected and registered, every outcome (job-done)
//     the executor reported has been sent: outcomes are never dropped;
//   - timeout() is never negative.
// A job attempt a scheduler misled (job-acks from a scheduler that does not
// acknowledge, for text never sent or for a job-done never sent; raw job-acks;
// the same attempt assigned again after it ended) is exempt from the log
// checks: the session need not keep its numbering straight then.
// Seeds: `worker_session_fuzz --write-seeds=tests/fuzz/corpus/worker_session`.
// Run with scripts/fuzz worker_session.
#include <algorithm>
#include <chrono>
#include <functional>
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
constexpr std::string_view kCapNote = "the rest is not sent]";

std::string key_text(const JobKey& key) {
  return key.first + "/" + std::to_string(key.second);
}

// What the test knows of one attempt's log.
struct LogTruth {
  std::string written;           // every byte the executor reported, in order
  std::uint64_t unwanted = 0;    // bytes the executor dropped after log_unwanted()
  std::uint64_t released = 0;    // the last log_released() offset
  std::uint64_t high = 0;        // the end of the furthest chunk sent
  std::uint64_t acked = 0;       // the furthest log_offset acknowledged
  std::vector<bool> delivered;   // bytes of `written` sent in some chunk
  std::uint64_t epoch_end = 0;   // older scheduler: the end of the last chunk since the registration
  bool noted = false;            // a note was sent since `high` last grew
  bool ever_noted = false;       // a note was sent
  bool capped = false;           // the session said log_unwanted(): the rest may go unsent
  bool misled = false;           // exempt (see the header)
  bool acking = false;           // some of it went to (or was acked by) a scheduler that acknowledges
  bool full = false;             // a scheduler said it stores no more
};

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
  std::function<bool()> acks;  // whether the session's scheduler acknowledges
  std::map<JobKey, LogTruth>* logs = nullptr;
  std::set<JobKey> started;  // job-started sent
  std::set<JobKey> done;     // job-done sent

 private:
  void on_event(proto::Type type, const proto::JobEvent& e) {
    const JobKey key(e.job_id, e.attempt);
    if (type == proto::Type::kJobStarted) {
      started.insert(key);
      return;
    }
    check(started.contains(key), "an event was sent before its job-started", key_text(key));
    LogTruth& log = (*logs)[key];
    const bool acking = acks();
    if (type == proto::Type::kJobDone) {
      done.insert(key);
      if (log.misled) return;
      const std::uint64_t length = log.written.size() + log.unwanted;
      check(e.log_end == length, "job-done's log_end is not the log's length",
            key_text(key) + ": " + std::to_string(e.log_end) + " != " + std::to_string(length));
      if (acking) log.acking = true;
      // Everything before it went first: an older scheduler must learn of a gap now.
      if (!acking && !log.acking && !log.capped && log.high < log.written.size())
        check(log.noted, "log text was dropped without a note before the job-done",
              key_text(key) + ": " + std::to_string(log.written.size() - log.high) + " bytes after the last chunk");
      return;
    }
    if (type != proto::Type::kJobLog) return;
    if (e.log_offset == 0 && !e.log.starts_with("#")) {  // the executor's text starts with '#'
      check(e.log.find(kGapNote) != std::string::npos || e.log.find(kCapNote) != std::string::npos,
            "a log chunk nobody wrote", e.log);
      check(!acking, "a note in the text sent to a scheduler that acknowledges", e.log);
      log.noted = true;
      log.ever_noted = true;
      return;
    }
    if (log.misled) return;
    const std::uint64_t end = e.log_offset + e.log.size();
    check(end <= log.written.size() && log.written.compare(e.log_offset, e.log.size(), e.log) == 0,
          "a log chunk is not the job's text at its offset",
          key_text(key) + " at " + std::to_string(e.log_offset) + ": " + e.log.substr(0, 80));
    check(!log.full, "log text sent after the scheduler said the log is full", key_text(key));
    check(e.log_offset >= log.acked, "acknowledged log text was sent again",
          key_text(key) + ": " + std::to_string(e.log_offset) + " < " + std::to_string(log.acked));
    if (acking) {
      log.acking = true;
    } else {
      check(e.log_offset >= log.epoch_end, "log text reordered or sent twice to an older scheduler",
            key_text(key) + ": " + std::to_string(e.log_offset) + " < " + std::to_string(log.epoch_end));
      if (e.log_offset > log.high && !log.acking)
        check(log.noted, "log text was dropped without a note where the gap is",
              key_text(key) + ": " + std::to_string(e.log_offset - log.high) + " bytes");
      log.epoch_end = end;
    }
    if (end > log.high) {
      log.high = end;
      log.noted = false;
    }
    for (std::uint64_t i = e.log_offset; i < end; ++i) log.delivered[i] = true;
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
    // The same attempt again (a scheduler never reassigns one): its numbering may restart.
    if (!started.insert(key).second) (*logs)[key].misled = true;
    jobs.insert(key);
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
  void log_released(const JobKey& key, std::uint64_t offset) override {
    LogTruth& log = (*logs)[key];
    if (log.misled) return;
    check(offset > log.released, "log_released() went back", key_text(key));
    check(offset <= log.written.size(), "log_released() past the text reported", key_text(key));
    log.released = offset;
  }
  void log_unwanted(const JobKey& key) override {
    unwanted.insert(key);
    (*logs)[key].capped = true;
  }
  void poll(worker::SteadyTime) override {}
  std::optional<std::chrono::milliseconds> poll_timeout(worker::SteadyTime) const override {
    return std::nullopt;
  }
  void fill_stats(proto::WorkerStats& stats) override { stats.disk_free_bytes = 1ull << 30; }
  bool reports_inventory() const override { return inventory; }
  kiln::Result<std::vector<std::string>> list_results() override { return ids; }
  void close() override {}

  void log(const JobKey& key, std::string_view text) {
    LogTruth& log = (*logs)[key];
    const std::string chunk = "#" + std::string(text);
    if (unwanted.contains(key)) {  // dropped where it is printed
      log.unwanted += chunk.size();
      return;
    }
    log.written += chunk;
    log.delivered.resize(log.written.size());
    sink->job_event({.type = proto::Type::kJobLog, .job_id = key.first, .attempt = key.second, .log = chunk});
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
    proto::JobEvent event{.type = proto::Type::kJobDone,
                          .job_id = key.first,
                          .attempt = key.second,
                          .outcome = outcome,
                          .result = outcome == "succeeded" ? std::string(64, 'b') : ""};
    const LogTruth& log = (*logs)[key];
    if (log.unwanted > 0) event.log_end = log.written.size() + log.unwanted;
    sink->job_event(event);
  }

  worker::JobEventSink* sink = nullptr;
  std::map<JobKey, LogTruth>* logs = nullptr;
  std::set<JobKey> jobs;
  std::set<JobKey> started, done, unwanted;
  bool refusing = false;
  bool inventory = false;
  std::vector<std::string> ids;
};

enum class Op : std::uint8_t {
  kReceiveRaw,  // type byte (>= kMessageTypeCount: unknown), body blob
  kReceive,     // a message built from a few bytes
  kTick,        // clock step, then tick()
  kConnect,     // the socket connects (flag) or drops
  kLog,         // job index, text blob
  kStep,        // job index, cached flag
  kDone,        // job index, outcome
  kStoreChanged,
  kRefuse,  // refuse_new_jobs()
  kFlush,
  kAck,  // job-acks: job index, offset choice, full flag, done flag
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
// Registered's log_cap_bytes: an older scheduler (0), or one that acknowledges.
const std::uint64_t kLogCaps[] = {0, 0, 64, 4'096};

class Harness {
 public:
  explicit Harness(ByteReader& in) : in_(in) {
    const std::uint8_t config = in_.u8();
    executor_.inventory = (config & 1) != 0;
    executor_.ids = {kHexIds[0], kHexIds[1]};
    executor_.logs = &logs_;
    options_.name = "w1";
    options_.capacity = 2;
    options_.register_retry = 2'000ms;
    // Small bounds, so that the fuzzer reaches the drops.
    options_.max_buffered_bytes = (config & 2) ? 256 : 4096;
    options_.inventory_chunk_ids = (config & 4) ? 1 : 100;
    session_ = std::make_unique<worker::SchedulerSession>(options_, out_, executor_, [this] { return now_; });
    executor_.sink = session_.get();
    out_.connected = (config & 8) != 0;
    out_.acks = [this] { return session_->scheduler_acks(); };
    out_.logs = &logs_;
    session_->start();
  }

  void run() {
    for (int ops = 0; !in_.empty() && ops < 256; ++ops) {
      step();
      check(session_->timeout() >= 0ms, "a negative timeout");
    }
    // The end: every job ends, the socket connects, an older scheduler answers.
    for (const JobKey& key : std::set<JobKey>(executor_.jobs)) executor_.finish(key, "succeeded");
    out_.connected = true;
    receive(proto::Registered{.scheduler_id = "end", .heartbeat_ms = 1'000, .lease_ms = 10'000});
    session_->tick();
    for (const JobKey& key : executor_.done)
      check(out_.done.contains(key), "an outcome was never sent", key_text(key));
    // What only ever went to older schedulers is complete or says where it is not.
    for (const auto& [key, log] : logs_) {
      if (log.misled || log.acking || log.capped) continue;
      const auto missing = std::count(log.delivered.begin(), log.delivered.end(), false);
      if (missing > 0)
        check(log.ever_noted,
              "log text was dropped without a note in the job's log",
              key_text(key) + ": " + std::to_string(missing) + " of " + std::to_string(log.written.size()) +
                  " bytes never sent");
    }
  }

 private:
  template <class T>
  void receive(const T& message) {
    deliver(T::kType, proto::encode(message));
  }

  void deliver(std::optional<proto::Type> type, std::string_view body) {
    if (type == proto::Type::kRegistered) {
      for (auto& [key, log] : logs_) log.epoch_end = 0;  // everything not acknowledged goes again
    }
    if (type == proto::Type::kJobAcks) {
      if (auto acks = proto::decode<proto::JobAcks>(body)) {
        for (const proto::JobAck& ack : acks->acks) logs_[JobKey(ack.job_id, ack.attempt)].misled = true;
      }
    }
    session_->receive(type, type ? proto::type_name(*type) : "mystery", body);
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
        deliver(known, in_.blob());
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
      case Op::kAck: return ack();
      case Op::kCount: break;
    }
  }

  // A job-acks as a scheduler that acknowledges sends it, for an attempt
  // started here; one a scheduler could not honestly send exempts the attempt.
  void ack() {
    const std::uint8_t i = in_.u8(), choice = in_.u8();
    const bool full = in_.flag(), done = in_.flag();
    if (executor_.started.empty()) return;
    auto it = executor_.started.begin();
    std::advance(it, i % executor_.started.size());
    const JobKey key = *it;
    LogTruth& log = logs_[key];
    const std::uint64_t offsets[] = {0, log.high / 2, log.high, log.written.size(), log.high + 1, 1ull << 40};
    const std::uint64_t offset = offsets[choice % std::size(offsets)];
    // An honest scheduler acknowledges what it received: text up to what was
    // sent, a job-done that was sent, nothing for an attempt it heard nothing of.
    const bool heard = log.high > 0 || out_.done.contains(key);
    if (!session_->scheduler_acks() || !heard || offset > log.high || (done && !out_.done.contains(key)))
      log.misled = true;
    if (!log.misled) {
      log.acked = std::max(log.acked, offset);
      log.acking = true;
      if (full) log.full = true;
    }
    session_->receive(proto::Type::kJobAcks, "job-acks",
                      proto::encode(proto::JobAcks{.acks = {{.job_id = key.first,
                                                             .attempt = key.second,
                                                             .log_offset = offset,
                                                             .log_full = full,
                                                             .done = done}}}));
  }

  void receive_built() {
    switch (in_.u8() % 6) {
      case 0: {
        proto::Registered registered{.scheduler_id = "s1",
                                     .heartbeat_ms = in_.pick(kPeriods),
                                     .lease_ms = in_.pick(kPeriods),
                                     .state = in_.pick(kStates)};
        registered.log_cap_bytes = in_.pick(kLogCaps);
        return receive(registered);
      }
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

  ByteReader& in_;
  worker::SessionOptions options_;
  std::map<JobKey, LogTruth> logs_;
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

// A scheduler that acknowledges logs and stores at most `cap` bytes of each.
proto::Registered acking(std::uint64_t cap) {
  proto::Registered r = registered();
  r.log_cap_bytes = cap;
  return r;
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
  // Found by this target: j1's only text is dropped over the bound (j2's
  // pushes it out) and j1 ends before printing more: its job-done must carry
  // the gap note to an older scheduler.
  seeds.add("07-all-text-dropped-then-done", Script(2 | 8)
                                                 .receive(registered())
                                                 .receive(assign("j1", 1))
                                                 .receive(assign("j2", 1))
                                                 .op(Op::kConnect, {0})
                                                 .receive(proto::Reregister{.reason = "lost"})
                                                 .log(0, std::string(200, 'x'))
                                                 .log(1, std::string(200, 'y'))
                                                 .op(Op::kDone, {0, 0})
                                                 .op(Op::kConnect, {1})
                                                 .op(Op::kTick, {6})
                                                 .receive(registered())
                                                 .str());
  // Job-acks: offset choice 2 is everything sent, then the job-done.
  seeds.add("08-acking-scheduler", Script(8)
                                       .receive(acking(4'096))
                                       .receive(assign("j1", 1))
                                       .log(0, "building\n")
                                       .log(0, "linking\n")
                                       .op(Op::kAck, {0, 2, 0, 0})
                                       .log(0, "done\n")
                                       .op(Op::kDone, {0, 0})
                                       .op(Op::kAck, {0, 2, 0, 1})
                                       .op(Op::kTick, {5})
                                       .str());
  seeds.add("09-acking-cap", Script(8)
                                 .receive(acking(64))
                                 .receive(assign("j1", 1))
                                 .log(0, std::string(50, 'a'))
                                 .log(0, std::string(50, 'b'))
                                 .log(0, std::string(50, 'c'))
                                 .op(Op::kAck, {0, 2, 1, 0})
                                 .log(0, std::string(50, 'd'))
                                 .op(Op::kDone, {0, 1})
                                 .op(Op::kAck, {0, 2, 1, 1})
                                 .str());
  seeds.add("10-acking-restart", Script(2 | 8)
                                     .receive(acking(4'096))
                                     .receive(assign("j1", 1))
                                     .log(0, std::string(100, 'a'))
                                     .op(Op::kAck, {0, 1, 0, 0})
                                     .log(0, std::string(100, 'b'))
                                     .op(Op::kTick, {7})
                                     .op(Op::kTick, {7})
                                     .op(Op::kConnect, {0})
                                     .log(0, std::string(100, 'c'))
                                     .log(0, std::string(100, 'd'))
                                     .op(Op::kConnect, {1})
                                     .receive(acking(4'096))
                                     .op(Op::kAck, {0, 2, 0, 0})
                                     .op(Op::kDone, {0, 0})
                                     .receive(registered())
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
