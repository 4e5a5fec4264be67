// Cap'n Proto encoding of the structs in messages.h. The only file that sees
// the generated schema code, so its heavy headers stay out of everything else.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/debug.h>
#include <kj/exception.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "common/proto/messages.h"
#include "schema/kiln.capnp.h"

namespace kiln::proto {
namespace {

constexpr std::array<std::pair<Type, std::string_view>, 35> kTypeNames{{
    {Type::kError, "error"},
    {Type::kHello, "hello"},
    {Type::kWelcome, "welcome"},
    {Type::kOk, "ok"},
    {Type::kSubmit, "submit"},
    {Type::kSubmitted, "submitted"},
    {Type::kPutContext, "put-context"},
    {Type::kContextAck, "context-ack"},
    {Type::kGetStatus, "status"},
    {Type::kJob, "job"},
    {Type::kListJobs, "list-jobs"},
    {Type::kJobs, "jobs"},
    {Type::kReadLog, "read-log"},
    {Type::kLog, "log"},
    {Type::kCancelJob, "cancel"},
    {Type::kListWorkers, "list-workers"},
    {Type::kWorkers, "workers"},
    {Type::kWorkerAction, "worker-action"},
    {Type::kRegister, "register"},
    {Type::kRegistered, "registered"},
    {Type::kHeartbeat, "heartbeat"},
    {Type::kReregister, "reregister"},
    {Type::kAssign, "assign"},
    {Type::kJobStarted, "job-started"},
    {Type::kJobLog, "job-log"},
    {Type::kJobStep, "job-step"},
    {Type::kJobDone, "job-done"},
    {Type::kCancelAssigned, "cancel-job"},
    {Type::kWorkerState, "worker-state"},
    {Type::kGetContext, "get-context"},
    {Type::kContextChunk, "context-chunk"},
    {Type::kInventory, "inventory"},
    {Type::kJobAcks, "job-acks"},
    {Type::kPutOutput, "put-output"},
    {Type::kGetOutput, "get-output"},
}};

// Readers refuse messages that would make them walk more than this many
// words (a hostile peer's pointer loops or huge lists), and more than
// kTraversalPerWord times the words the message holds: a well-formed
// message is read once, but a list of zero-sized structs costs a word per
// element however many it claims, so without the second bound a body of a
// few hundred bytes decoded into millions of elements (a gigabyte).
constexpr std::uint64_t kTraversalLimitWords = 64ull * 1024 * 1024 / 8;
constexpr std::uint64_t kTraversalPerWord = 2;

std::string text(capnp::Text::Reader t) {
  // Text is NUL-terminated on the wire. One with a NUL inside would not
  // survive kiln's own encoder (setX(std::string) stops at the first NUL): a
  // worker assigned job "\0x" reported job-done for job "" (found by
  // tests/fuzz/worker_session_fuzz). Refused as malformed instead.
  KJ_REQUIRE(std::memchr(t.cStr(), '\0', t.size()) == nullptr, "text with a NUL byte inside");
  return std::string(t.cStr(), t.size());
}
std::string data(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
capnp::Data::Reader as_data(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

template <class ListBuilder>
void set_texts(ListBuilder list, const std::vector<std::string>& values) {
  for (unsigned i = 0; i < values.size(); ++i) list.set(i, values[i]);
}
template <class ListReader>
std::vector<std::string> get_texts(ListReader list) {
  std::vector<std::string> out;
  out.reserve(list.size());
  for (auto t : list) out.push_back(text(t));
  return out;
}

// ---- shared pieces ----

void put(wire::ContextRef::Builder b, const ContextRef& v) {
  b.setKind(static_cast<wire::ContextRef::Kind>(v.kind));
  b.setDigest(v.digest);
  b.setGitRepo(v.git_repo);
  b.setGitCommit(v.git_commit);
  b.setSize(v.size);
}
ContextRef get(wire::ContextRef::Reader r) {
  ContextRef v;
  auto kind = static_cast<unsigned>(r.getKind());
  v.kind = kind <= 2 ? static_cast<ContextRef::Kind>(kind) : ContextRef::Kind::kNone;
  v.digest = text(r.getDigest());
  v.git_repo = text(r.getGitRepo());
  v.git_commit = text(r.getGitCommit());
  v.size = r.getSize();
  return v;
}

void put(wire::JobSpec::Builder b, const JobSpec& v) {
  b.setSpec(v.spec);
  b.setSpecName(v.spec_name);
  b.setPool(v.pool);
  b.setClient(v.client);
  b.setUrgent(v.urgent);
  put(b.initContext(), v.context);
  auto secrets = b.initSecrets(v.secrets.size());
  for (unsigned i = 0; i < v.secrets.size(); ++i) {
    secrets[i].setId(v.secrets[i].id);
    secrets[i].setValue(as_data(v.secrets[i].value));
  }
  b.setTimeoutSeconds(v.timeout_seconds);
  set_texts(b.initLabels(v.labels.size()), v.labels);
  b.setEstimateSeconds(v.estimate_seconds);
  b.setPush(v.push);
  b.setPull(v.pull);
  set_texts(b.initOutputs(v.outputs.size()), v.outputs);
}
JobSpec get(wire::JobSpec::Reader r) {
  JobSpec v;
  v.spec = text(r.getSpec());
  v.spec_name = text(r.getSpecName());
  v.pool = text(r.getPool());
  v.client = text(r.getClient());
  v.urgent = r.getUrgent();
  v.context = get(r.getContext());
  for (auto s : r.getSecrets()) v.secrets.push_back({text(s.getId()), data(s.getValue())});
  v.timeout_seconds = r.getTimeoutSeconds();
  v.labels = get_texts(r.getLabels());
  v.estimate_seconds = r.getEstimateSeconds();
  v.push = text(r.getPush());
  v.pull = text(r.getPull());
  v.outputs = get_texts(r.getOutputs());
  return v;
}

void put_outputs(capnp::List<wire::Output>::Builder b, const std::vector<Output>& outputs) {
  for (unsigned i = 0; i < outputs.size(); ++i) {
    b[i].setSrc(outputs[i].src);
    b[i].setDigest(outputs[i].digest);
    b[i].setSize(outputs[i].size);
    b[i].setEntries(outputs[i].entries);
  }
}
std::vector<Output> get_outputs(capnp::List<wire::Output>::Reader r) {
  std::vector<Output> out;
  out.reserve(r.size());
  for (auto o : r) out.push_back({text(o.getSrc()), text(o.getDigest()), o.getSize(), o.getEntries()});
  return out;
}

void put(wire::StepInfo::Builder b, const StepInfo& v) {
  b.setId(v.id);
  b.setDescription(v.description);
  b.setCached(v.cached);
  b.setSeconds(v.seconds);
  b.setImage(v.image);
}
StepInfo get(wire::StepInfo::Reader r) {
  return {text(r.getId()), text(r.getDescription()), r.getCached(), r.getSeconds(), text(r.getImage())};
}
void put_steps(capnp::List<wire::StepInfo>::Builder b, const std::vector<StepInfo>& steps) {
  for (unsigned i = 0; i < steps.size(); ++i) put(b[i], steps[i]);
}
std::vector<StepInfo> get_steps(capnp::List<wire::StepInfo>::Reader r) {
  std::vector<StepInfo> out;
  out.reserve(r.size());
  for (auto s : r) out.push_back(get(s));
  return out;
}

void put(wire::JobInfo::Builder b, const JobInfo& v) {
  b.setId(v.id);
  b.setState(v.state);
  b.setPool(v.pool);
  b.setClient(v.client);
  b.setUrgent(v.urgent);
  b.setSpecName(v.spec_name);
  put(b.initContext(), v.context);
  b.setWorker(v.worker);
  b.setAttempt(v.attempt);
  b.setSubmittedAtMs(v.submitted_at_ms);
  b.setStartedAtMs(v.started_at_ms);
  b.setFinishedAtMs(v.finished_at_ms);
  b.setResult(v.result);
  b.setError(v.error);
  put_steps(b.initSteps(v.steps.size()), v.steps);
  auto attempts = b.initAttempts(v.attempts.size());
  for (unsigned i = 0; i < v.attempts.size(); ++i) {
    const Attempt& a = v.attempts[i];
    attempts[i].setNumber(a.number);
    attempts[i].setWorker(a.worker);
    attempts[i].setAssignedAtMs(a.assigned_at_ms);
    attempts[i].setEndedAtMs(a.ended_at_ms);
    attempts[i].setOutcome(a.outcome);
  }
  b.setLogBytes(v.log_bytes);
  b.setSpec(v.spec);
  set_texts(b.initSecretIds(v.secret_ids.size()), v.secret_ids);
  b.setCancelRequested(v.cancel_requested);
  b.setTimeoutSeconds(v.timeout_seconds);
  set_texts(b.initLabels(v.labels.size()), v.labels);
  set_texts(b.initPlannedSteps(v.planned_steps.size()), v.planned_steps);
  b.setEstimateSeconds(v.estimate_seconds);
  b.setAttemptLogBytes(v.attempt_log_bytes);
  b.setPush(v.push);
  b.setPushed(v.pushed);
  b.setPull(v.pull);
  set_texts(b.initOutputs(v.outputs.size()), v.outputs);
  put_outputs(b.initOutputFiles(v.output_files.size()), v.output_files);
}
JobInfo get(wire::JobInfo::Reader r) {
  JobInfo v;
  v.id = text(r.getId());
  v.state = text(r.getState());
  v.pool = text(r.getPool());
  v.client = text(r.getClient());
  v.urgent = r.getUrgent();
  v.spec_name = text(r.getSpecName());
  v.context = get(r.getContext());
  v.worker = text(r.getWorker());
  v.attempt = r.getAttempt();
  v.submitted_at_ms = r.getSubmittedAtMs();
  v.started_at_ms = r.getStartedAtMs();
  v.finished_at_ms = r.getFinishedAtMs();
  v.result = text(r.getResult());
  v.error = text(r.getError());
  v.steps = get_steps(r.getSteps());
  for (auto a : r.getAttempts()) {
    v.attempts.push_back(
        {a.getNumber(), text(a.getWorker()), a.getAssignedAtMs(), a.getEndedAtMs(), text(a.getOutcome())});
  }
  v.log_bytes = r.getLogBytes();
  v.spec = text(r.getSpec());
  v.secret_ids = get_texts(r.getSecretIds());
  v.cancel_requested = r.getCancelRequested();
  v.timeout_seconds = r.getTimeoutSeconds();
  v.labels = get_texts(r.getLabels());
  v.planned_steps = get_texts(r.getPlannedSteps());
  v.estimate_seconds = r.getEstimateSeconds();
  v.attempt_log_bytes = r.getAttemptLogBytes();
  v.push = text(r.getPush());
  v.pushed = text(r.getPushed());
  v.pull = text(r.getPull());
  v.outputs = get_texts(r.getOutputs());
  v.output_files = get_outputs(r.getOutputFiles());
  return v;
}

void put(wire::WorkerStats::Builder b, const WorkerStats& v) {
  b.setDiskFreeBytes(v.disk_free_bytes);
  b.setDiskTotalBytes(v.disk_total_bytes);
  b.setStoreItems(v.store_items);
  b.setStoreBytes(v.store_bytes);
  b.setCacheHits(v.cache_hits);
  b.setCacheMisses(v.cache_misses);
  b.setRunningJobs(v.running_jobs);
  b.setHealthy(v.healthy);
  b.setImageCacheBytes(v.image_cache_bytes);
}
WorkerStats get(wire::WorkerStats::Reader r) {
  return {r.getDiskFreeBytes(), r.getDiskTotalBytes(), r.getStoreItems(),
          r.getStoreBytes(),    r.getCacheHits(),      r.getCacheMisses(),
          r.getRunningJobs(),   r.getHealthy(),        r.getImageCacheBytes()};
}

void put(wire::WorkerInfo::Builder b, const WorkerInfo& v) {
  b.setName(v.name);
  b.setPool(v.pool);
  b.setState(v.state);
  b.setCapacity(v.capacity);
  set_texts(b.initLabels(v.labels.size()), v.labels);
  set_texts(b.initRunning(v.running.size()), v.running);
  put(b.initStats(), v.stats);
  b.setLastHeartbeatMs(v.last_heartbeat_ms);
  b.setConnected(v.connected);
}
WorkerInfo get(wire::WorkerInfo::Reader r) {
  WorkerInfo v;
  v.name = text(r.getName());
  v.pool = text(r.getPool());
  v.state = text(r.getState());
  v.capacity = r.getCapacity();
  v.labels = get_texts(r.getLabels());
  v.running = get_texts(r.getRunning());
  v.stats = get(r.getStats());
  v.last_heartbeat_ms = r.getLastHeartbeatMs();
  v.connected = r.getConnected();
  return v;
}

void put_running(capnp::List<wire::RunningJob>::Builder b, const std::vector<RunningJob>& v) {
  for (unsigned i = 0; i < v.size(); ++i) {
    b[i].setJobId(v[i].job_id);
    b[i].setAttempt(v[i].attempt);
  }
}
std::vector<RunningJob> get_running(capnp::List<wire::RunningJob>::Reader r) {
  std::vector<RunningJob> out;
  for (auto j : r) out.push_back({text(j.getJobId()), j.getAttempt()});
  return out;
}

void put_ids(capnp::List<capnp::Data>::Builder b, const std::vector<std::string>& ids) {
  for (unsigned i = 0; i < ids.size(); ++i) b.set(i, as_data(ids[i]));
}
std::vector<std::string> get_ids(capnp::List<capnp::Data>::Reader r) {
  std::vector<std::string> out;
  out.reserve(r.size());
  for (auto d : r) out.push_back(data(d));
  return out;
}

// ---- framing ----

std::string to_bytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Runs `read` over a reader of `bytes` as W; malformed input (Cap'n Proto
// throws kj::Exception for it) becomes kInvalidArgument.
template <class W, class F>
auto read_message(std::string_view bytes, std::string_view what, F&& read)
    -> Result<decltype(read(std::declval<typename W::Reader>()))> {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty()) {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("malformed {} body: {} bytes is not a Cap'n Proto message", what, bytes.size()));
  }
  // The frame's bytes may not be word-aligned: copy into words when not.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    words = kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(bytes.data()),
                                            bytes.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), bytes.data(), bytes.size());
    words = copy.asPtr();
  }
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = std::min(kTraversalLimitWords, kTraversalPerWord * words.size());
    capnp::FlatArrayMessageReader reader(words, options);
    return read(reader.getRoot<W>());
  } catch (const kj::Exception& e) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("malformed {} body: {}", what, e.getDescription().cStr()));
  }
}

}  // namespace

std::string_view type_name(Type type) {
  for (const auto& [t, name] : kTypeNames) {
    if (t == type) return name;
  }
  return "?";
}

std::optional<Type> parse_type(std::string_view name) {
  for (const auto& [t, n] : kTypeNames) {
    if (n == name) return t;
  }
  return std::nullopt;
}

// Each message: encode builds the wire struct field by field; decode reads it
// back inside read_message's exception guard.
#define KILN_CODEC(T, W, PUT, GET)                                  \
  std::string encode(const T& m) {                                  \
    capnp::MallocMessageBuilder message;                            \
    auto b = message.initRoot<wire::W>();                           \
    PUT;                                                            \
    return to_bytes(message);                                       \
  }                                                                 \
  template <>                                                       \
  Result<T> decode<T>(std::string_view bytes) {                     \
    return read_message<wire::W>(bytes, #W, [](wire::W::Reader r) { \
      T m;                                                          \
      GET;                                                          \
      return m;                                                     \
    });                                                             \
  }

KILN_CODEC(ErrorReply, Error, (b.setRequestId(m.request_id), b.setKind(m.kind), b.setMessage(m.message)),
           (m.request_id = r.getRequestId(), m.kind = text(r.getKind()), m.message = text(r.getMessage())))
KILN_CODEC(Hello, Hello,
           (b.setProtocolVersion(m.protocol_version), b.setRequestId(m.request_id), b.setClient(m.client)),
           (m.protocol_version = r.getProtocolVersion(), m.request_id = r.getRequestId(),
            m.client = text(r.getClient())))
KILN_CODEC(Welcome, Welcome,
           (b.setProtocolVersion(m.protocol_version), b.setRequestId(m.request_id),
            b.setSchedulerId(m.scheduler_id)),
           (m.protocol_version = r.getProtocolVersion(), m.request_id = r.getRequestId(),
            m.scheduler_id = text(r.getSchedulerId())))
KILN_CODEC(Ok, Ok, b.setRequestId(m.request_id), m.request_id = r.getRequestId())
KILN_CODEC(Submit, Submit, (b.setRequestId(m.request_id), put(b.initJob(), m.job)),
           (m.request_id = r.getRequestId(), m.job = get(r.getJob())))
KILN_CODEC(Submitted, Submitted, (b.setRequestId(m.request_id), b.setJobId(m.job_id)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId())))
KILN_CODEC(PutContext, PutContext,
           (b.setRequestId(m.request_id), b.setDigest(m.digest), b.setTotalSize(m.total_size),
            b.setOffset(m.offset), b.setData(as_data(m.data))),
           (m.request_id = r.getRequestId(), m.digest = text(r.getDigest()), m.total_size = r.getTotalSize(),
            m.offset = r.getOffset(), m.data = data(r.getData())))
KILN_CODEC(ContextAck, ContextAck,
           (b.setRequestId(m.request_id), b.setDigest(m.digest), b.setReceived(m.received),
            b.setComplete(m.complete)),
           (m.request_id = r.getRequestId(), m.digest = text(r.getDigest()), m.received = r.getReceived(),
            m.complete = r.getComplete()))
KILN_CODEC(GetStatus, GetStatus, (b.setRequestId(m.request_id), b.setJobId(m.job_id), b.setWaitMs(m.wait_ms)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId()), m.wait_ms = r.getWaitMs()))
KILN_CODEC(Job, Job, (b.setRequestId(m.request_id), put(b.initJob(), m.job)),
           (m.request_id = r.getRequestId(), m.job = get(r.getJob())))
KILN_CODEC(ListJobs, ListJobs,
           (b.setRequestId(m.request_id), set_texts(b.initStates(m.states.size()), m.states),
            b.setLimit(m.limit)),
           (m.request_id = r.getRequestId(), m.states = get_texts(r.getStates()), m.limit = r.getLimit()))
KILN_CODEC(
    Jobs, Jobs,
    {
      b.setRequestId(m.request_id);
      auto list = b.initJobs(m.jobs.size());
      for (unsigned i = 0; i < m.jobs.size(); ++i) put(list[i], m.jobs[i]);
      b.setTotal(m.total);
    },
    {
      m.request_id = r.getRequestId();
      for (auto j : r.getJobs()) m.jobs.push_back(get(j));
      m.total = r.getTotal();
    })
KILN_CODEC(ReadLog, ReadLog,
           (b.setRequestId(m.request_id), b.setJobId(m.job_id), b.setOffset(m.offset),
            b.setMaxBytes(m.max_bytes), b.setWaitMs(m.wait_ms)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId()), m.offset = r.getOffset(),
            m.max_bytes = r.getMaxBytes(), m.wait_ms = r.getWaitMs()))
KILN_CODEC(Log, Log,
           (b.setRequestId(m.request_id), b.setJobId(m.job_id), b.setOffset(m.offset),
            b.setData(as_data(m.data)), b.setComplete(m.complete), b.setState(m.state)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId()), m.offset = r.getOffset(),
            m.data = data(r.getData()), m.complete = r.getComplete(), m.state = text(r.getState())))
KILN_CODEC(CancelJob, CancelJob, (b.setRequestId(m.request_id), b.setJobId(m.job_id)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId())))
KILN_CODEC(ListWorkers, ListWorkers, b.setRequestId(m.request_id), m.request_id = r.getRequestId())
KILN_CODEC(
    Workers, Workers,
    {
      b.setRequestId(m.request_id);
      auto list = b.initWorkers(m.workers.size());
      for (unsigned i = 0; i < m.workers.size(); ++i) put(list[i], m.workers[i]);
    },
    {
      m.request_id = r.getRequestId();
      for (auto w : r.getWorkers()) m.workers.push_back(get(w));
    })
KILN_CODEC(WorkerAction, WorkerAction,
           (b.setRequestId(m.request_id), b.setWorker(m.worker), b.setAction(m.action)),
           (m.request_id = r.getRequestId(), m.worker = text(r.getWorker()), m.action = text(r.getAction())))
KILN_CODEC(
    Register, Register,
    {
      b.setProtocolVersion(m.protocol_version);
      b.setName(m.name);
      b.setPool(m.pool);
      b.setCapacity(m.capacity);
      set_texts(b.initLabels(m.labels.size()), m.labels);
      put_running(b.initRunning(m.running.size()), m.running);
      put(b.initStats(), m.stats);
      b.setLogOffsets(m.log_offsets);
    },
    {
      m.protocol_version = r.getProtocolVersion();
      m.name = text(r.getName());
      m.pool = text(r.getPool());
      m.capacity = r.getCapacity();
      m.labels = get_texts(r.getLabels());
      m.running = get_running(r.getRunning());
      m.stats = get(r.getStats());
      m.log_offsets = r.getLogOffsets();
    })
KILN_CODEC(Registered, Registered,
           (b.setSchedulerId(m.scheduler_id), b.setHeartbeatMs(m.heartbeat_ms), b.setLeaseMs(m.lease_ms),
            b.setState(m.state), b.setLogCapBytes(m.log_cap_bytes)),
           (m.scheduler_id = text(r.getSchedulerId()), m.heartbeat_ms = r.getHeartbeatMs(),
            m.lease_ms = r.getLeaseMs(), m.state = text(r.getState()), m.log_cap_bytes = r.getLogCapBytes()))
KILN_CODEC(Heartbeat, Heartbeat,
           (put(b.initStats(), m.stats), put_running(b.initRunning(m.running.size()), m.running),
            b.setInventoryDigest(as_data(m.inventory_digest))),
           (m.stats = get(r.getStats()), m.running = get_running(r.getRunning()),
            m.inventory_digest = data(r.getInventoryDigest())))
KILN_CODEC(Reregister, Reregister, b.setReason(m.reason), m.reason = text(r.getReason()))
KILN_CODEC(Assign, Assign,
           (b.setJobId(m.job_id), b.setAttempt(m.attempt), put(b.initJob(), m.job),
            b.setMaxOutputBytes(m.max_output_bytes)),
           (m.job_id = text(r.getJobId()), m.attempt = r.getAttempt(), m.job = get(r.getJob()),
            m.max_output_bytes = r.getMaxOutputBytes()))
KILN_CODEC(
    JobEvent, JobEvent,
    {
      b.setJobId(m.job_id);
      b.setAttempt(m.attempt);
      b.setLog(as_data(m.log));
      put(b.initStep(), m.step);
      b.setOutcome(m.outcome);
      b.setError(m.error);
      b.setResult(m.result);
      put_steps(b.initSteps(m.steps.size()), m.steps);
      b.setLogOffset(m.log_offset);
      b.setLogEnd(m.log_end);
      b.setPushed(m.pushed);
      put_outputs(b.initOutputs(m.outputs.size()), m.outputs);
    },
    {
      m.job_id = text(r.getJobId());
      m.attempt = r.getAttempt();
      m.log = data(r.getLog());
      m.step = get(r.getStep());
      m.outcome = text(r.getOutcome());
      m.error = text(r.getError());
      m.result = text(r.getResult());
      m.steps = get_steps(r.getSteps());
      m.log_offset = r.getLogOffset();
      m.log_end = r.getLogEnd();
      m.pushed = text(r.getPushed());
      m.outputs = get_outputs(r.getOutputs());
    })
KILN_CODEC(CancelAssigned, CancelAssigned, (b.setJobId(m.job_id), b.setAttempt(m.attempt)),
           (m.job_id = text(r.getJobId()), m.attempt = r.getAttempt()))
KILN_CODEC(WorkerState, WorkerState, b.setState(m.state), m.state = text(r.getState()))
KILN_CODEC(GetContext, GetContext,
           (b.setRequestId(m.request_id), b.setDigest(m.digest), b.setOffset(m.offset),
            b.setMaxBytes(m.max_bytes), b.setJobId(m.job_id), b.setAttempt(m.attempt)),
           (m.request_id = r.getRequestId(), m.digest = text(r.getDigest()), m.offset = r.getOffset(),
            m.max_bytes = r.getMaxBytes(), m.job_id = text(r.getJobId()), m.attempt = r.getAttempt()))
KILN_CODEC(ContextChunk, ContextChunk,
           (b.setRequestId(m.request_id), b.setDigest(m.digest), b.setTotalSize(m.total_size),
            b.setOffset(m.offset), b.setData(as_data(m.data))),
           (m.request_id = r.getRequestId(), m.digest = text(r.getDigest()), m.total_size = r.getTotalSize(),
            m.offset = r.getOffset(), m.data = data(r.getData())))
KILN_CODEC(Inventory, Inventory,
           (b.setFull(m.full), put_ids(b.initAdded(m.added.size()), m.added),
            put_ids(b.initRemoved(m.removed.size()), m.removed), b.setSetDigest(as_data(m.set_digest))),
           (m.full = r.getFull(), m.added = get_ids(r.getAdded()), m.removed = get_ids(r.getRemoved()),
            m.set_digest = data(r.getSetDigest())))
KILN_CODEC(
    JobAcks, JobAcks,
    {
      auto list = b.initAcks(m.acks.size());
      for (unsigned i = 0; i < m.acks.size(); ++i) {
        const JobAck& a = m.acks[i];
        list[i].setJobId(a.job_id);
        list[i].setAttempt(a.attempt);
        list[i].setLogOffset(a.log_offset);
        list[i].setLogFull(a.log_full);
        list[i].setDone(a.done);
      }
    },
    {
      for (auto a : r.getAcks()) {
        m.acks.push_back({text(a.getJobId()), a.getAttempt(), a.getLogOffset(), a.getLogFull(), a.getDone()});
      }
    })
KILN_CODEC(PutOutput, PutOutput,
           (b.setRequestId(m.request_id), b.setJobId(m.job_id), b.setAttempt(m.attempt), b.setDigest(m.digest),
            b.setTotalSize(m.total_size), b.setOffset(m.offset), b.setData(as_data(m.data))),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId()), m.attempt = r.getAttempt(),
            m.digest = text(r.getDigest()), m.total_size = r.getTotalSize(), m.offset = r.getOffset(),
            m.data = data(r.getData())))
KILN_CODEC(GetOutput, GetOutput,
           (b.setRequestId(m.request_id), b.setJobId(m.job_id), b.setDigest(m.digest), b.setOffset(m.offset),
            b.setMaxBytes(m.max_bytes)),
           (m.request_id = r.getRequestId(), m.job_id = text(r.getJobId()), m.digest = text(r.getDigest()),
            m.offset = r.getOffset(), m.max_bytes = r.getMaxBytes()))
#undef KILN_CODEC

std::string encode_job_record(const JobInfo& job) {
  capnp::MallocMessageBuilder message;
  put(message.initRoot<wire::JobInfo>(), job);
  return to_bytes(message);
}

Result<JobInfo> decode_job_record(std::string_view bytes) {
  return read_message<wire::JobInfo>(bytes, "job record", [](wire::JobInfo::Reader r) { return get(r); });
}

ErrorReply error_reply(std::uint64_t request_id, const Error& error) {
  return {request_id, std::string(error_kind_name(error.kind())), error.to_string()};
}

Error to_error(const ErrorReply& reply) {
  for (int k = 0; k <= static_cast<int>(ErrorKind::kInternal); ++k) {
    auto kind = static_cast<ErrorKind>(k);
    if (error_kind_name(kind) == reply.kind) return Error(kind, reply.message);
  }
  return Error(ErrorKind::kUnavailable, reply.message);
}

std::uint64_t peek_request_id(Type type, std::string_view bytes) {
  auto id = [&]<class W>() -> std::uint64_t {
    auto r =
        read_message<W>(bytes, "request", [](typename W::Reader reader) { return reader.getRequestId(); });
    return r ? *r : 0;
  };
  switch (type) {
    case Type::kHello: return id.template operator()<wire::Hello>();
    case Type::kSubmit: return id.template operator()<wire::Submit>();
    case Type::kPutContext: return id.template operator()<wire::PutContext>();
    case Type::kGetStatus: return id.template operator()<wire::GetStatus>();
    case Type::kListJobs: return id.template operator()<wire::ListJobs>();
    case Type::kReadLog: return id.template operator()<wire::ReadLog>();
    case Type::kCancelJob: return id.template operator()<wire::CancelJob>();
    case Type::kListWorkers: return id.template operator()<wire::ListWorkers>();
    case Type::kWorkerAction: return id.template operator()<wire::WorkerAction>();
    case Type::kGetContext: return id.template operator()<wire::GetContext>();
    case Type::kPutOutput: return id.template operator()<wire::PutOutput>();
    case Type::kGetOutput: return id.template operator()<wire::GetOutput>();
    default: return 0;
  }
}

}  // namespace kiln::proto
