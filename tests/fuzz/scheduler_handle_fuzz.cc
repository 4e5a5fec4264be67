// libFuzzer target for the scheduler's message handler entry:
// scheduler::Scheduler::handle(port, Incoming) driven with arbitrary
// sequences of messages from clients and workers, with tick(), commit(),
// take_outbox(), revoke(), handle_bad() and restarts (kill -9: what was not
// committed is lost) in between, on the in-memory JobDb and a fake clock (as
// scheduler/scheduler_test.cc drives it).
//
// Input: a config byte (authentication, placement policy, small log cap and
// ended-job window), then operations (see Op): raw messages (port, routing
// id, type byte, peer user id, body bytes), messages the target builds from
// a few bytes over a small vocabulary of job ids, worker names, specs and
// states (so that the fuzzer reaches deep states quickly), context uploads
// with a correct digest, clock steps, loop turns and restarts.
//
// After every loop turn (tick, commit, take_outbox) it checks, and aborts
// when one fails:
//   - every message the scheduler sends decodes as its type;
//   - every committed job record decodes, has a known state and its own id;
//   - the job counts by state and by client each sum to the committed jobs;
//   - a job that ended keeps its end (state, result, error): exactly one
//     recorded result, whatever the workers send later;
//   - a worker runs only active jobs recorded on it;
//   - the policy's queue holds exactly the queued jobs;
// and at the end, after a restart on the committed data, recover() succeeds
// and the counts still sum to the committed jobs.
// Seeds: `scheduler_handle_fuzz --write-seeds=tests/fuzz/corpus/scheduler_handle`
// (real encoded message sequences: register, submit, run, fail over, cancel,
// contexts). Run with scripts/fuzz scheduler_handle.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/auth/auth_dir.h"
#include "common/sha256.h"
#include "scheduler/memory_job_db.h"
#include "scheduler/placement/policy.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_clock.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/proto_types.h"

namespace {

namespace fs = std::filesystem;
namespace proto = kiln::proto;
namespace sched = kiln::scheduler;
using kiln::fuzz::ByteReader;
using kiln::fuzz::ByteWriter;
using kiln::fuzz::check;
using kiln::fuzz::fail;
using sched::Port;

using kiln::scheduler::testing_support::FakeClock;

enum class Op : std::uint8_t {
  kRaw,      // port, route, type byte (>= kMessageTypeCount: unknown, named by a blob), peer blob, body blob
  kBuilt,    // a message built from a few bytes (build_message)
  kUpload,   // data blob, split: the context in two put-context chunks, with its real digest
  kAdvance,  // step the clock (kSteps), then tick
  kTurn,     // tick, commit, take the outbox, check
  kRestart,  // the scheduler is killed and restarted on what was committed (flag: the host rebooted)
  kRevoke,   // port, route
  kBad,      // port, route, request id: a message that could not be taken apart
  kCount,
};

// The vocabulary of built messages.
const std::string kRoutes[] = {"c1", "c2", "a1", "w1", "w2", "w3"};
// With authentication, who each route is (a CurveZMQ key's identity).
const std::string kRouteUsers[] = {"client:ci", "client:other", "admin:root",
                                   "worker:w1", "worker:w2",    "worker:w3"};
const std::string kJobIds[] = {"j1", "j2", "j3", "j4", "j5", "j0", "", "j18446744073709551616", "x1"};
const std::string kWorkers[] = {"w1", "w2", "w3", "", "w1 "};
const std::string kPools[] = {"linux-x86_64", "", "arm64"};
const std::string kClients[] = {"ci", "other", "", "root"};
const std::string kSpecs[] = {
    "((from busybox) (run (shell \"echo hello\")))",
    "((from busybox) (workdir /src) (run (shell \"make\")) (run (shell \"make test\")))",
    "((from busybox) (copy (src \"src\") (dst \"/src\")) (run (shell \"ls /src\")))",
    "((build base ((from busybox))) (from base) (run (shell \"true\")))",
    "((from busybox) (run (shell",
    "",
};
const std::string kStates[] = {"queued", "assigned", "running", "succeeded", "failed", "cancelled", "bogus"};
const std::string kOutcomes[] = {"succeeded", "failed", "cancelled", "interrupted", "exploded", ""};
const std::string kActions[] = {"pause", "unpause", "drain", "forget", "explode"};
const std::uint32_t kWaits[] = {0, 100, 30'000, 600'000};
const std::uint32_t kTimeouts[] = {0, 1, 60, 4'000'000'000u};
const std::uint64_t kOffsets[] = {0, 5, 64, 1ull << 40};
// Job-log offsets and job-done log ends of workers that number their logs.
const std::uint64_t kLogOffsets[] = {0, 6, 60, 100, 4'096, 1ull << 40};
const std::uint32_t kMaxBytes[] = {0, 3, 1 << 20, 0xffffffffu};
const std::uint64_t kDisks[] = {0, 1 << 20, 1ull << 40};
const std::int64_t kSteps[] = {0, 10, 49, 50, 1'000, 2'600, 10'001, 60'000, 3'600'001};
const std::string kStepIds[] = {std::string(64, 'a'), std::string(64, 'b'), "", "zz"};
const std::string kRawIds[] = {std::string(32, '\x01'), std::string(32, '\x02'), std::string(31, '\x03')};

std::vector<std::string> labels_of(std::uint8_t b) {
  switch (b % 3) {
    case 0: return {};
    case 1: return {"arch=x86_64"};
    default: return {"gpu", "arch=x86_64"};
  }
}

std::vector<proto::RunningJob> running_of(ByteReader& in) {
  std::vector<proto::RunningJob> out(in.u8() % 3);
  for (auto& r : out) r = {.job_id = in.pick(kJobIds), .attempt = in.u8() % 4u};
  return out;
}

proto::WorkerStats stats_of(ByteReader& in) {
  return {.disk_free_bytes = in.pick(kDisks),
          .store_items = in.u8(),
          .running_jobs = in.u8(),
          .healthy = in.flag()};
}

class Harness {
 public:
  explicit Harness(ByteReader& in) : in_(in) {
    const std::uint8_t config = in_.u8();
    static const std::string kPolicies[] = {"kiln", "least-loaded", "ocluster-hint", "random"};
    options_.authenticate = (config & 1) != 0;
    policy_ = kPolicies[(config >> 1) & 3];
    options_.secrets_in_clear = (config & 8) == 0;
    if (config & 16) options_.log_cap_bytes = 64;
    if (config & 32) options_.recent_ended = 2;
    options_.lease_ms = 10'000;
    options_.heartbeat_ms = 1'000;
    options_.max_context_bytes = 1 << 20;
    state_dir_ = scratch() / "state";
    fs::create_directories(state_dir_);
    options_.state_dir = state_dir_.string();
    start();
  }
  ~Harness() {
    core_.reset();
    std::error_code ec;
    fs::remove_all(state_dir_, ec);
  }

  void run() {
    for (int ops = 0; !in_.empty() && ops < 256; ++ops) step();
    turn();
    restart(false);
  }

 private:
  static const fs::path& scratch() {
    static const fs::path dir = [] {
      std::string base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
      std::string pattern = base + "/kiln-fuzz-scheduler.XXXXXX";
      if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp failed", pattern);
      std::atexit([] { fs::remove_all(scratch()); });
      return fs::path(pattern);
    }();
    return dir;
  }

  void start() {
    auto policy = kiln::placement::make_policy(policy_, {.low_disk_bytes = options_.low_disk_bytes});
    if (!policy) fail("make_policy", policy.error().to_string());
    core_.reset();
    core_ = std::make_unique<sched::Scheduler>(options_, std::make_unique<sched::MemoryJobDb>(store_),
                                               std::move(*policy), clock_);
    auto recovered = core_->recover();
    if (!recovered) fail("recover() failed on committed data", recovered.error().to_string());
    check_outbox(core_->take_outbox());
    check_committed();
  }

  void restart(bool reboot) {
    if (reboot) clock_.reboot();
    start();
  }

  std::optional<kiln::auth::Identity> peer_of(std::size_t route) const {
    if (!options_.authenticate) return std::nullopt;
    return kiln::auth::Identity::from_user_id(kRouteUsers[route]);
  }

  void deliver(Port port, std::size_t route, proto::Type type, std::string body) {
    core_->handle(port, sched::Incoming{.routing_id = kRoutes[route],
                                        .type = type,
                                        .type_text = std::string(proto::type_name(type)),
                                        .body = std::move(body),
                                        .peer = peer_of(route)});
  }

  template <class T>
  void deliver(Port port, std::size_t route, const T& message) {
    deliver(port, route, T::kType, proto::encode(message));
  }

  static Port natural_port(proto::Type type) {
    using proto::Type;
    switch (type) {
      case Type::kRegister:
      case Type::kHeartbeat:
      case Type::kJobStarted:
      case Type::kJobLog:
      case Type::kJobStep:
      case Type::kJobDone:
      case Type::kInventory: return Port::kWorkers;
      default: return Port::kClients;
    }
  }

  void step() {
    switch (static_cast<Op>(in_.u8() % static_cast<std::uint8_t>(Op::kCount))) {
      case Op::kRaw: return raw_message();
      case Op::kBuilt: return built_message();
      case Op::kUpload: return upload();
      case Op::kAdvance:
        clock_.advance(in_.pick(kSteps));
        core_->tick();
        return;
      case Op::kTurn: return turn();
      case Op::kRestart: return restart(in_.flag());
      case Op::kRevoke: {
        const Port port = in_.flag() ? Port::kWorkers : Port::kClients;
        core_->revoke(port, in_.pick(kRoutes), "key revoked");
        return;
      }
      case Op::kBad: {
        const Port port = in_.flag() ? Port::kWorkers : Port::kClients;
        const std::string& route = in_.pick(kRoutes);
        core_->handle_bad(port, route, kiln::Error(kiln::ErrorKind::kInvalidArgument, "malformed message"),
                          in_.u8());
        return;
      }
      case Op::kCount: break;
    }
  }

  void raw_message() {
    const Port port = in_.flag() ? Port::kWorkers : Port::kClients;
    const std::size_t route = in_.u8() % std::size(kRoutes);
    const std::uint8_t type_byte = in_.u8();
    sched::Incoming m{.routing_id = kRoutes[route]};
    if (type_byte < kiln::fuzz::kMessageTypeCount) {
      m.type = static_cast<proto::Type>(type_byte);
      m.type_text = std::string(proto::type_name(*m.type));
    } else {
      m.type_text = std::string(in_.blob());
      m.type = proto::parse_type(m.type_text);
    }
    const std::string_view user = in_.blob();
    if (options_.authenticate) {
      m.peer = kiln::auth::Identity::from_user_id(user);
      if (m.peer)
        check(kiln::auth::Identity::from_user_id(m.peer->user_id()) == m.peer, "user ids do not round-trip");
      if (!m.peer) m.peer = peer_of(route);
    }
    m.body = std::string(in_.blob());
    core_->handle(port, m);
  }

  // A message of the kind the next byte names, with fields from the vocabulary.
  void built_message() {
    const std::uint8_t kind = in_.u8() % 17;
    const std::size_t route = in_.u8() % std::size(kRoutes);
    const bool wrong_port = in_.u8() % 8 == 0;
    auto send = [&]<class T>(const T& message) {
      Port port = natural_port(T::kType);
      if (wrong_port) port = port == Port::kClients ? Port::kWorkers : Port::kClients;
      deliver(port, route, message);
    };
    const std::uint64_t rid = in_.u8();
    switch (kind) {
      case 0:
        return send(proto::Hello{.protocol_version = in_.flag() ? proto::kProtocolVersion : 2,
                                 .request_id = rid,
                                 .client = in_.pick(kClients)});
      case 1: return send(proto::Submit{.request_id = rid, .job = job_spec()});
      case 2:
        return send(
            proto::GetStatus{.request_id = rid, .job_id = in_.pick(kJobIds), .wait_ms = in_.pick(kWaits)});
      case 3:
        return send(proto::ReadLog{.request_id = rid,
                                   .job_id = in_.pick(kJobIds),
                                   .offset = in_.pick(kOffsets),
                                   .max_bytes = in_.pick(kMaxBytes),
                                   .wait_ms = in_.pick(kWaits)});
      case 4: return send(proto::CancelJob{.request_id = rid, .job_id = in_.pick(kJobIds)});
      case 5: {
        proto::ListJobs list{.request_id = rid};
        if (in_.flag()) list.states.push_back(in_.pick(kStates));
        list.limit = in_.u8() % 3;
        return send(list);
      }
      case 6: return send(proto::ListWorkers{.request_id = rid});
      case 7:
        return send(proto::WorkerAction{
            .request_id = rid, .worker = in_.pick(kWorkers), .action = in_.pick(kActions)});
      case 8:
        return send(proto::GetContext{.request_id = rid,
                                      .digest = context_digest(),
                                      .offset = in_.pick(kOffsets),
                                      .max_bytes = in_.pick(kMaxBytes),
                                      .job_id = in_.pick(kJobIds),
                                      .attempt = in_.u8() % 4u});
      case 9: {
        proto::Register reg{.protocol_version = in_.u8() == 0xff ? 0 : proto::kProtocolVersion,
                            .name = in_.pick(kWorkers),
                            .pool = in_.pick(kPools),
                            .capacity = in_.u8() % 4u,
                            .labels = labels_of(in_.u8())};
        reg.running = running_of(in_);
        reg.stats = stats_of(in_);
        reg.log_offsets = in_.flag();
        return send(reg);
      }
      case 10: {
        proto::Heartbeat beat{.stats = stats_of(in_)};
        beat.running = running_of(in_);
        beat.inventory_digest = in_.flag() ? in_.pick(kRawIds) : "";
        return send(beat);
      }
      case 11:
      case 12:
      case 13:
      case 14: {
        const auto type = static_cast<proto::Type>(static_cast<int>(proto::Type::kJobStarted) + (kind - 11));
        proto::JobEvent event{.type = type, .job_id = in_.pick(kJobIds), .attempt = in_.u8() % 4u};
        if (type == proto::Type::kJobLog) event.log = std::string(in_.blob());
        if (type == proto::Type::kJobStep)
          event.step = {in_.pick(kStepIds), "(run ...)", in_.flag(), in_.u8() / 8.0};
        if (type == proto::Type::kJobDone) {
          event.outcome = in_.pick(kOutcomes);
          event.error = in_.flag() ? "exit status 2" : "";
          event.result = in_.pick(kStepIds);
          if (in_.flag()) event.steps = {{in_.pick(kStepIds), "(from busybox)", true, 0}};
          event.log_end = in_.pick(kLogOffsets);
        }
        if (type == proto::Type::kJobLog) event.log_offset = in_.pick(kLogOffsets);
        Port port = wrong_port ? Port::kClients : Port::kWorkers;
        return deliver(port, route, type, proto::encode(event));
      }
      case 15: {
        proto::Inventory inv{.full = in_.flag()};
        for (int n = in_.u8() % 3; n > 0; --n) inv.added.push_back(in_.pick(kRawIds));
        for (int n = in_.u8() % 2; n > 0; --n) inv.removed.push_back(in_.pick(kRawIds));
        inv.set_digest = in_.flag() ? in_.pick(kRawIds) : "";
        return send(inv);
      }
      default: return send(proto::ListWorkers{.request_id = rid});
    }
  }

  proto::JobSpec job_spec() {
    proto::JobSpec spec{.spec = in_.pick(kSpecs),
                        .spec_name = "fuzz.spec",
                        .pool = in_.pick(kPools),
                        .client = in_.pick(kClients),
                        .urgent = in_.flag()};
    switch (in_.u8() % 4) {
      case 0: break;
      case 1: spec.context = {.kind = proto::ContextRef::Kind::kTar, .digest = context_digest()}; break;
      case 2:
        spec.context = {.kind = proto::ContextRef::Kind::kGit,
                        .git_repo = "https://example.com/app.git",
                        .git_commit = in_.flag() ? std::string(40, 'a') : "main"};
        break;
      default: spec.context = {.kind = proto::ContextRef::Kind::kTar, .digest = "sha256:xyz"}; break;
    }
    if (in_.flag()) spec.secrets = {{"token", "s3cret"}};
    spec.timeout_seconds = in_.pick(kTimeouts);
    spec.labels = labels_of(in_.u8());
    spec.estimate_seconds = in_.u8();
    return spec;
  }

  // The digest of the last context uploaded (or one never uploaded).
  std::string context_digest() const {
    return last_upload_.empty() ? "sha256:" + std::string(64, '0') : last_upload_;
  }

  void upload() {
    const std::string data(in_.blob());
    const std::size_t split = data.empty() ? 0 : in_.u16() % (data.size() + 1);
    const Port port = in_.u8() % 8 == 0 ? Port::kWorkers : Port::kClients;
    const std::size_t route = in_.u8() % std::size(kRoutes);
    last_upload_ = "sha256:" + kiln::sha256_hex(data);
    deliver(port, route,
            proto::PutContext{.request_id = 1,
                              .digest = last_upload_,
                              .total_size = data.size(),
                              .offset = 0,
                              .data = data.substr(0, split)});
    deliver(port, route,
            proto::PutContext{.request_id = 2,
                              .digest = last_upload_,
                              .total_size = data.size(),
                              .offset = split,
                              .data = data.substr(split)});
  }

  void turn() {
    core_->tick();
    auto committed = core_->commit();
    if (!committed) fail("commit failed", committed.error().to_string());
    check_outbox(core_->take_outbox());
    check_committed();
    check_memory();
  }

  static void check_outbox(const std::vector<sched::Outgoing>& out) {
    for (const sched::Outgoing& o : out) kiln::fuzz::check_body(o.type, o.body, "the scheduler");
  }

  // The committed records, and that ended jobs never change their end.
  void check_committed() {
    std::lock_guard lock(store_->mu);
    for (const auto& [seq, record] : store_->jobs) {
      auto info = proto::decode_job_record(record);
      if (!info) fail("a committed job record does not decode", info.error().to_string());
      check(info->id == sched::job_id_of(seq), "a job record under another job's key", info->id);
      auto state = sched::parse_state(info->state);
      check(state.has_value(), "a job record with an unknown state", info->state);
      auto it = ended_.find(seq);
      if (sched::is_ended(*state)) {
        auto end = std::make_tuple(info->state, info->result, info->error);
        if (it == ended_.end()) {
          ended_.emplace(seq, end);
        } else if (it->second != end) {
          fail("an ended job's result changed", info->id + ": was " + std::get<0>(it->second) + " " +
                                                    std::get<1>(it->second) + ", now " + info->state + " " +
                                                    info->result);
        }
      } else {
        check(it == ended_.end(), "an ended job became active again", info->id + " is " + info->state);
      }
    }
    const std::size_t committed = store_->jobs.size();
    const sched::Snapshot s = core_->snapshot(1'000'000, 1'000'000);
    std::uint64_t by_state = 0, by_client = 0;
    for (const auto& [state, n] : s.jobs_by_state) by_state += n;
    for (const auto& [client, n] : s.jobs_by_client) by_client += n;
    check(by_state == committed, "job counts by state do not sum to the jobs",
          std::to_string(by_state) + " counted, " + std::to_string(committed) + " committed");
    check(by_client == committed, "job counts by client do not sum to the jobs",
          std::to_string(by_client) + " counted, " + std::to_string(committed) + " committed");
  }

  // What the scheduler holds in memory agrees with itself.
  void check_memory() const {
    const sched::Snapshot s = core_->snapshot(1'000'000, 1'000'000);
    std::map<std::string, const proto::JobInfo*> jobs;
    std::size_t queued = 0;
    for (const proto::JobInfo& j : s.jobs) {
      jobs[j.id] = &j;
      if (j.state == "queued") ++queued;
    }
    for (const proto::WorkerInfo& w : s.workers) {
      for (const std::string& id : w.running) {
        auto it = jobs.find(id);
        check(it != jobs.end(), "a worker runs a job the scheduler does not hold", w.name + " runs " + id);
        const proto::JobInfo& j = *it->second;
        check((j.state == "assigned" || j.state == "running") && j.worker == w.name,
              "a worker runs a job that is not active on it",
              w.name + " runs " + id + " (" + j.state + " on " + j.worker + ")");
      }
    }
    check(core_->queued_jobs() == queued, "the policy's queue differs from the queued jobs",
          std::to_string(core_->queued_jobs()) + " in the policy, " + std::to_string(queued) + " queued");
  }

  ByteReader& in_;
  FakeClock clock_;
  sched::SchedulerOptions options_;
  std::string policy_;
  fs::path state_dir_;
  std::shared_ptr<sched::MemoryJobStore> store_ = std::make_shared<sched::MemoryJobStore>();
  std::unique_ptr<sched::Scheduler> core_;
  std::string last_upload_;
  std::map<std::uint64_t, std::tuple<std::string, std::string, std::string>>
      ended_;  // seq -> state, result, error
};

// ---- seeds: real encoded message sequences ----

class Script {
 public:
  explicit Script(std::uint8_t config = 0) { w_.u8(config); }

  template <class T>
  Script& send(std::size_t route, const T& message, bool workers = false) {
    return raw(workers, route, T::kType, proto::encode(message));
  }
  Script& event(std::size_t route, proto::Type type, proto::JobEvent e) {
    e.type = type;
    return raw(true, route, type, proto::encode(e));
  }
  Script& raw(bool workers, std::size_t route, proto::Type type, std::string_view body) {
    w_.u8(static_cast<std::uint8_t>(Op::kRaw)).u8(workers).u8(static_cast<std::uint8_t>(route));
    w_.u8(static_cast<std::uint8_t>(type)).blob(kRouteUsers[route]).blob(body);
    return *this;
  }
  Script& upload(std::string_view data, std::uint16_t split) {
    w_.u8(static_cast<std::uint8_t>(Op::kUpload)).blob(data).u16(split).u8(1).u8(0);
    return *this;
  }
  Script& advance(std::uint8_t step_index) {
    w_.u8(static_cast<std::uint8_t>(Op::kAdvance)).u8(step_index);
    return *this;
  }
  Script& turn() {
    w_.u8(static_cast<std::uint8_t>(Op::kTurn));
    return *this;
  }
  Script& restart(bool reboot) {
    w_.u8(static_cast<std::uint8_t>(Op::kRestart)).u8(reboot);
    return *this;
  }
  Script& revoke(bool workers, std::size_t route) {
    w_.u8(static_cast<std::uint8_t>(Op::kRevoke)).u8(workers).u8(static_cast<std::uint8_t>(route));
    return *this;
  }
  const std::string& str() const { return w_.str(); }

 private:
  ByteWriter w_;
};

constexpr std::size_t kC1 = 0, kC2 = 1, kA1 = 2, kW1 = 3, kW2 = 4;

proto::Register worker(const std::string& name, std::uint32_t capacity = 1,
                       std::vector<proto::RunningJob> running = {}) {
  return {.name = name,
          .pool = "linux-x86_64",
          .capacity = capacity,
          .labels = {"arch=x86_64"},
          .running = std::move(running),
          .stats = {.disk_free_bytes = 50ull << 30, .disk_total_bytes = 100ull << 30}};
}

proto::Submit submit(std::uint64_t rid, const std::string& spec = kSpecs[0]) {
  return {.request_id = rid, .job = {.spec = spec, .spec_name = "hello.spec", .client = "ci"}};
}

proto::JobEvent on(const std::string& job, std::uint32_t attempt) {
  return {.job_id = job, .attempt = attempt};
}

std::string tar_with_src() {
  // A one-directory ustar, as `kiln submit` would send for (copy (src "src") ...).
  std::string block(512, '\0');
  auto put = [&](std::size_t at, std::string_view v) { block.replace(at, v.size(), v); };
  put(0, "src/");
  put(100, "0000755");
  put(108, "0000000");
  put(116, "0000000");
  put(124, "00000000000");
  put(136, "00000000000");
  put(156, "5");
  put(257, "ustar");
  put(263, "00");
  block.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : block) sum += c;
  char checksum[8];
  std::snprintf(checksum, sizeof checksum, "%06o", sum);
  block.replace(148, 7, std::string(checksum, 6) + '\0');
  return block + std::string(1024, '\0');
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  using proto::Type;
  seeds.add("01-run-to-success",
            Script()
                .send(kW1, worker("w1"), true)
                .send(kC1, proto::Hello{.request_id = 1, .client = "ci"})
                .send(kC1, submit(2))
                .turn()
                .event(kW1, Type::kJobStarted, on("j1", 1))
                .event(kW1, Type::kJobLog, {.job_id = "j1", .attempt = 1, .log = "hello\n"})
                .event(kW1, Type::kJobStep,
                       {.job_id = "j1", .attempt = 1, .step = {std::string(64, 'a'), "(run)", false, 1}})
                .event(kW1, Type::kJobDone,
                       {.job_id = "j1", .attempt = 1, .outcome = "succeeded", .result = std::string(64, 'a')})
                .turn()
                .send(kC1, proto::GetStatus{.request_id = 3, .job_id = "j1"})
                .send(kC1, proto::ReadLog{.request_id = 4, .job_id = "j1"})
                .turn()
                .str());
  seeds.add(
      "02-lease-lost",
      Script()
          .send(kW1, worker("w1"), true)
          .send(kC1, submit(1))
          .turn()
          .event(kW1, Type::kJobStarted, on("j1", 1))
          .event(kW1, Type::kJobLog, {.job_id = "j1", .attempt = 1, .log = "partial\n"})
          .send(kW2, worker("w2"), true)
          .turn()
          .advance(6)
          .send(kW2, proto::Heartbeat{}, true)
          .turn()
          .event(kW1, Type::kJobDone, {.job_id = "j1", .attempt = 1, .outcome = "succeeded"})
          .send(kW1, worker("w1", 1, {{"j1", 1}}), true)
          .event(kW2, Type::kJobDone, {.job_id = "j1", .attempt = 2, .outcome = "failed", .error = "exit 1"})
          .turn()
          .str());
  seeds.add("03-restart-reclaim", Script()
                                      .send(kW1, worker("w1", 2), true)
                                      .send(kC1, submit(1))
                                      .send(kC2, submit(2, kSpecs[1]))
                                      .turn()
                                      .event(kW1, Type::kJobStarted, on("j1", 1))
                                      .turn()
                                      .restart(false)
                                      .send(kW1, worker("w1", 2, {{"j1", 1}}), true)
                                      .send(kW1, proto::Heartbeat{.running = {{"j1", 1}, {"j2", 1}}}, true)
                                      .advance(5)
                                      .turn()
                                      .restart(true)
                                      .advance(7)
                                      .turn()
                                      .str());
  seeds.add("04-cancel-and-timeout",
            Script()
                .send(kC1, proto::Submit{.request_id = 1, .job = {.spec = kSpecs[0], .timeout_seconds = 1}})
                .send(kC1, submit(2))
                .send(kC1, proto::CancelJob{.request_id = 3, .job_id = "j2"})
                .send(kW1, worker("w1"), true)
                .turn()
                .send(kC1, proto::CancelJob{.request_id = 4, .job_id = "j1"})
                .advance(5)
                .turn()
                .send(kC1, proto::ListJobs{.request_id = 5, .states = {"cancelled"}, .limit = 10})
                .turn()
                .str());
  seeds.add("05-admin-auth",
            Script(1)
                .send(kW1, worker("w1"), true)
                .send(kC1, submit(1))
                .send(kC2, proto::GetStatus{.request_id = 2, .job_id = "j1"})
                .send(kC2, proto::CancelJob{.request_id = 3, .job_id = "j1"})
                .send(kA1, proto::ListWorkers{.request_id = 4})
                .send(kA1, proto::WorkerAction{.request_id = 5, .worker = "w1", .action = "drain"})
                .send(kC1, proto::WorkerAction{.request_id = 6, .worker = "w1", .action = "pause"})
                .turn()
                .revoke(true, kW1)
                .send(kA1, proto::WorkerAction{.request_id = 7, .worker = "w1", .action = "forget"})
                .turn()
                .str());
  const std::string tar = tar_with_src();
  const std::string digest = "sha256:" + kiln::sha256_hex(tar);
  seeds.add("06-context",
            Script()
                .upload(tar, 700)
                .send(kC1, proto::Submit{.request_id = 1,
                                         .job = {.spec = kSpecs[2],
                                                 .context = {.kind = proto::ContextRef::Kind::kTar,
                                                             .digest = digest,
                                                             .size = tar.size()}}})
                .send(kW1, worker("w1"), true)
                .turn()
                .send(kW1,
                      proto::GetContext{
                          .request_id = 2, .digest = digest, .max_bytes = 1000, .job_id = "j1", .attempt = 1},
                      true)
                .send(kA1, proto::GetContext{.request_id = 3, .digest = digest})
                .turn()
                .str());
  seeds.add(
      "07-inventory-drift",
      Script()
          .send(kW1, worker("w1"), true)
          .send(kW1,
                proto::Inventory{.full = true, .added = {kRawIds[0], kRawIds[1]}, .set_digest = kRawIds[0]},
                true)
          .send(kW1, proto::Heartbeat{.inventory_digest = kRawIds[1]}, true)
          .send(kC1, submit(1))
          .turn()
          .str());
  seeds.add("08-long-polls",
            Script()
                .send(kC1, submit(1))
                .send(kC1, proto::GetStatus{.request_id = 2, .job_id = "j1", .wait_ms = 30'000})
                .send(kC1, proto::ReadLog{.request_id = 3, .job_id = "j1", .wait_ms = 30'000})
                .send(kW1, worker("w1"), true)
                .turn()
                .event(kW1, Type::kJobLog, {.job_id = "j1", .attempt = 1, .log = std::string(100, 'x')})
                .turn()
                .advance(7)
                .turn()
                .str());
  seeds.add("09-bad-bodies", Script()
                                 .raw(false, kC1, Type::kSubmit, "not capnp")
                                 .raw(false, kC1, Type::kHello, std::string(16, '\xff'))
                                 .raw(true, kW1, Type::kRegister, std::string(8, '\0'))
                                 .raw(false, kC1, Type::kRegister, proto::encode(worker("w1")))
                                 .turn()
                                 .str());
  seeds.add("10-interrupted-secrets",
            Script(16)
                .send(kC1, proto::Submit{.request_id = 1,
                                         .job = {.spec = kSpecs[0], .secrets = {{"token", "s3cret"}}}})
                .send(kW1, worker("w1"), true)
                .turn()
                .event(kW1, Type::kJobStarted, on("j1", 1))
                .event(kW1, Type::kJobLog, {.job_id = "j1", .attempt = 1, .log = std::string(100, 'y')})
                .event(kW1, Type::kJobDone, {.job_id = "j1", .attempt = 1, .outcome = "interrupted"})
                .turn()
                .restart(false)
                .turn()
                .str());
  // A worker that numbers its log (log_offsets): chunks acknowledged by
  // job-acks after the commit, a resent chunk, a hole, the cap (config 16: 64
  // bytes), job-done's log end, and a restart that loses what was not committed.
  proto::Register numbering = worker("w1");
  numbering.log_offsets = true;
  auto chunk = [](std::uint64_t offset, std::string text) {
    proto::JobEvent e{.job_id = "j1", .attempt = 1, .log = std::move(text)};
    e.log_offset = offset;
    return e;
  };
  proto::JobEvent done{.job_id = "j1", .attempt = 1, .outcome = "succeeded", .result = std::string(64, 'a')};
  done.log_end = 200;
  proto::Register again = numbering;
  again.running = {{"j1", 1}};
  for (std::uint8_t config : {std::uint8_t{0}, std::uint8_t{16}}) {
    seeds.add(config ? "12-log-offsets-capped" : "11-log-offsets",
              Script(config)
                  .send(kW1, numbering, true)
                  .send(kC1, submit(1))
                  .turn()
                  .event(kW1, Type::kJobStarted, on("j1", 1))
                  .event(kW1, Type::kJobLog, chunk(0, std::string(40, 'a')))
                  .turn()
                  .event(kW1, Type::kJobLog, chunk(40, std::string(20, 'b')))
                  .event(kW1, Type::kJobLog, chunk(40, std::string(20, 'b')))
                  .event(kW1, Type::kJobLog, chunk(100, std::string(50, 'c')))
                  .restart(false)
                  .send(kW1, again, true)
                  .event(kW1, Type::kJobLog, chunk(40, std::string(20, 'b')))
                  .event(kW1, Type::kJobDone, done)
                  .turn()
                  .send(kC1, proto::ReadLog{.request_id = 2, .job_id = "j1"})
                  .turn()
                  .str());
  }
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
