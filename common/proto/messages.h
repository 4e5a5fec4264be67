// The kiln wire protocol as plain C++ structs (schema/kiln.capnp,
// docs/protocol.md). Everything outside common/proto/ handles these structs;
// only codec.cc sees Cap'n Proto.
//
//   proto::Submit submit{.request_id = 7, .job = {.spec = text, .pool = "linux-x86_64"}};
//   std::string body = proto::encode(submit);           // Cap'n Proto flat bytes
//   KILN_ASSIGN_OR_RETURN(auto back, proto::decode<proto::Submit>(body));
//   proto::type_name(proto::Submit::kType);             // "submit" (the type frame)
//
// Each message struct names its type frame in `kType`. decode() returns
// kInvalidArgument for bytes that are not a well-formed message of that type
// (a peer's bug or attack), never crashes, and enforces a traversal limit.
// Thread safety: values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln::proto {

// Bumped on incompatible changes (schema/kiln.capnp's protocolVersion).
inline constexpr std::uint32_t kProtocolVersion = 1;

enum class Type : std::uint8_t {
  kError,
  kHello,
  kWelcome,
  kOk,
  kSubmit,
  kSubmitted,
  kPutContext,
  kContextAck,
  kGetStatus,
  kJob,
  kListJobs,
  kJobs,
  kReadLog,
  kLog,
  kCancelJob,
  kListWorkers,
  kWorkers,
  kWorkerAction,
  kRegister,
  kRegistered,
  kHeartbeat,
  kReregister,
  kAssign,
  kJobStarted,
  kJobLog,
  kJobStep,
  kJobDone,
  kCancelAssigned,
  kWorkerState,
  kGetContext,
  kContextChunk,
  kInventory,
  kJobAcks,
  kPutOutput,
  kGetOutput,
};

// The type frame's text ("submit", "job-done", ...).
std::string_view type_name(Type type);
// nullopt for an unknown name.
std::optional<Type> parse_type(std::string_view name);

// ---- shared pieces ----

struct ContextRef {
  enum class Kind : std::uint8_t { kNone, kTar, kGit };
  Kind kind = Kind::kNone;
  std::string digest;  // tar: "sha256:HEX"
  std::string git_repo;
  std::string git_commit;
  std::uint64_t size = 0;
};

struct Secret {
  std::string id;
  std::string value;
};

struct JobSpec {
  std::string spec;
  std::string spec_name;
  std::string pool;
  std::string client;
  bool urgent = false;
  ContextRef context;
  std::vector<Secret> secrets;
  std::uint32_t timeout_seconds = 0;
  std::vector<std::string> labels;
  double estimate_seconds = 0;  // the client's guess of a cold build; 0: none
  std::string push;             // the image reference to push the result to; "" none
  std::string pull;             // "always", "missing", "never"; "": the worker's --pull
  std::vector<std::string> outputs;  // paths in the result sent back as tars (`kiln submit --output`)
};

// One `--output` of a finished job, held by the scheduler as a tar.
struct Output {
  std::string src;
  std::string digest;  // "sha256:HEX" of the tar
  std::uint64_t size = 0;
  std::uint64_t entries = 0;
};

// The secret id under which a job's push login (USER:PASSWORD) travels: never
// stored or logged, like every secret (docs/images.md, "Results out").
inline constexpr std::string_view kPushLoginSecret = "kiln-push-login";

struct StepInfo {
  std::string id;
  std::string description;
  bool cached = false;
  double seconds = 0;
  std::string image;  // (from ...) steps: what the base resolved to
};

struct Attempt {
  std::uint32_t number = 0;
  std::string worker;
  std::int64_t assigned_at_ms = 0;
  std::int64_t ended_at_ms = 0;
  std::string outcome;
};

struct JobInfo {
  std::string id;
  std::string state;
  std::string pool;
  std::string client;
  bool urgent = false;
  std::string spec_name;
  ContextRef context;
  std::string worker;
  std::uint32_t attempt = 0;
  std::int64_t submitted_at_ms = 0;
  std::int64_t started_at_ms = 0;
  std::int64_t finished_at_ms = 0;
  std::string result;
  std::string error;
  std::vector<StepInfo> steps;
  std::vector<Attempt> attempts;
  std::uint64_t log_bytes = 0;
  std::string spec;
  std::vector<std::string> secret_ids;
  bool cancel_requested = false;
  std::uint32_t timeout_seconds = 0;
  std::vector<std::string> labels;
  std::vector<std::string> planned_steps;  // main stage step ids, for placement
  double estimate_seconds = 0;
  // The current attempt's log bytes the scheduler has accounted for (stored,
  // or dropped over the cap), in the worker's numbering: where a resent chunk
  // is placed from. 0 at each new attempt.
  std::uint64_t attempt_log_bytes = 0;
  std::string push;    // the image reference the result is pushed to ("" none)
  std::string pushed;  // REGISTRY/REPOSITORY:TAG@sha256:… once pushed
  std::string pull;  // as JobSpec::pull
  std::vector<std::string> outputs;   // as JobSpec::outputs
  std::vector<Output> output_files;   // once succeeded: one per entry of outputs
};

struct WorkerStats {
  std::uint64_t disk_free_bytes = 0;
  std::uint64_t disk_total_bytes = 0;
  std::uint64_t store_items = 0;
  std::uint64_t store_bytes = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint32_t running_jobs = 0;
  bool healthy = true;
  std::uint64_t image_cache_bytes = 0;  // the registry blob cache, on the store's disk
};

struct WorkerInfo {
  std::string name;
  std::string pool;
  std::string state;
  std::uint32_t capacity = 0;
  std::vector<std::string> labels;
  std::vector<std::string> running;
  WorkerStats stats;
  std::int64_t last_heartbeat_ms = 0;
  bool connected = false;
};

struct RunningJob {
  std::string job_id;
  std::uint32_t attempt = 0;
};

// ---- messages ----

struct ErrorReply {
  static constexpr Type kType = Type::kError;
  std::uint64_t request_id = 0;
  std::string kind;  // error_kind_name()
  std::string message;
};

struct Hello {
  static constexpr Type kType = Type::kHello;
  std::uint32_t protocol_version = kProtocolVersion;
  std::uint64_t request_id = 0;
  std::string client;
};

struct Welcome {
  static constexpr Type kType = Type::kWelcome;
  std::uint32_t protocol_version = kProtocolVersion;
  std::uint64_t request_id = 0;
  std::string scheduler_id;
};

struct Ok {
  static constexpr Type kType = Type::kOk;
  std::uint64_t request_id = 0;
};

struct Submit {
  static constexpr Type kType = Type::kSubmit;
  std::uint64_t request_id = 0;
  JobSpec job;
};

struct Submitted {
  static constexpr Type kType = Type::kSubmitted;
  std::uint64_t request_id = 0;
  std::string job_id;
};

struct PutContext {
  static constexpr Type kType = Type::kPutContext;
  std::uint64_t request_id = 0;
  std::string digest;
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;
  std::string data;
};

struct ContextAck {
  static constexpr Type kType = Type::kContextAck;
  std::uint64_t request_id = 0;
  std::string digest;
  std::uint64_t received = 0;
  bool complete = false;
};

struct GetStatus {
  static constexpr Type kType = Type::kGetStatus;
  std::uint64_t request_id = 0;
  std::string job_id;
  std::uint32_t wait_ms = 0;
};

struct Job {
  static constexpr Type kType = Type::kJob;
  std::uint64_t request_id = 0;
  JobInfo job;
};

struct ListJobs {
  static constexpr Type kType = Type::kListJobs;
  std::uint64_t request_id = 0;
  std::vector<std::string> states;
  std::uint32_t limit = 0;
};

struct Jobs {
  static constexpr Type kType = Type::kJobs;
  std::uint64_t request_id = 0;
  std::vector<JobInfo> jobs;
  std::uint64_t total = 0;
};

struct ReadLog {
  static constexpr Type kType = Type::kReadLog;
  std::uint64_t request_id = 0;
  std::string job_id;
  std::uint64_t offset = 0;
  std::uint32_t max_bytes = 0;
  std::uint32_t wait_ms = 0;
};

struct Log {
  static constexpr Type kType = Type::kLog;
  std::uint64_t request_id = 0;
  std::string job_id;
  std::uint64_t offset = 0;
  std::string data;
  bool complete = false;
  std::string state;
};

struct CancelJob {
  static constexpr Type kType = Type::kCancelJob;
  std::uint64_t request_id = 0;
  std::string job_id;
};

struct ListWorkers {
  static constexpr Type kType = Type::kListWorkers;
  std::uint64_t request_id = 0;
};

struct Workers {
  static constexpr Type kType = Type::kWorkers;
  std::uint64_t request_id = 0;
  std::vector<WorkerInfo> workers;
};

struct WorkerAction {
  static constexpr Type kType = Type::kWorkerAction;
  std::uint64_t request_id = 0;
  std::string worker;
  std::string action;  // pause unpause drain forget
};

struct Register {
  static constexpr Type kType = Type::kRegister;
  std::uint32_t protocol_version = kProtocolVersion;
  std::string name;
  std::string pool;
  std::uint32_t capacity = 0;
  std::vector<std::string> labels;
  std::vector<RunningJob> running;
  WorkerStats stats;
  // Job-log chunks carry log_offset, job-done carries log_end, and the text is
  // kept until a job-acks covers it (false: an older worker).
  bool log_offsets = false;
};

struct Registered {
  static constexpr Type kType = Type::kRegistered;
  std::string scheduler_id;
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t lease_ms = 0;
  std::string state;
  // >0: job-log and job-done are answered by job-acks (to a worker that
  // registered with log_offsets), and a job's log is stored up to this many
  // bytes. 0: an older scheduler that does not acknowledge.
  std::uint64_t log_cap_bytes = 0;
};

struct Heartbeat {
  static constexpr Type kType = Type::kHeartbeat;
  WorkerStats stats;
  std::vector<RunningJob> running;
  std::string inventory_digest;  // 32 bytes (IdSetDigest of what the scheduler was told), or empty
};

struct Reregister {
  static constexpr Type kType = Type::kReregister;
  std::string reason;
};

struct Assign {
  static constexpr Type kType = Type::kAssign;
  std::string job_id;
  std::uint32_t attempt = 0;
  JobSpec job;
  std::uint64_t max_output_bytes = 0;  // the largest output tar the scheduler takes
};

// job-started, job-log, job-step and job-done share one body; `type` says
// which one it is on the wire.
struct JobEvent {
  Type type = Type::kJobLog;
  std::string job_id;
  std::uint32_t attempt = 0;
  std::string log;
  StepInfo step;
  std::string outcome;
  std::string error;
  std::string result;
  std::vector<StepInfo> steps;
  std::uint64_t log_offset = 0;  // job-log: where `log` starts in the attempt's log (log_offsets workers)
  std::uint64_t log_end = 0;     // job-done: the attempt's log length (log_offsets workers)
  std::string pushed;            // job-done: REF@DIGEST the result was pushed as
  std::vector<Output> outputs;   // job-done: each stored by put-output first
};

// What the scheduler has made durable of one attempt's reports.
struct JobAck {
  std::string job_id;
  std::uint32_t attempt = 0;
  std::uint64_t log_offset = 0;  // the log below this is stored (or dropped): free it
  bool log_full = false;         // no more of this attempt's log is stored: send and keep none
  bool done = false;             // its job-done is recorded (or ignored as not current)
};

// Sent to a worker only after the commit that made the acknowledged reports durable.
struct JobAcks {
  static constexpr Type kType = Type::kJobAcks;
  std::vector<JobAck> acks;
};

struct CancelAssigned {
  static constexpr Type kType = Type::kCancelAssigned;
  std::string job_id;
  std::uint32_t attempt = 0;
};

struct WorkerState {
  static constexpr Type kType = Type::kWorkerState;
  std::string state;
};

struct GetContext {
  static constexpr Type kType = Type::kGetContext;
  std::uint64_t request_id = 0;
  std::string digest;
  std::uint64_t offset = 0;
  std::uint32_t max_bytes = 0;
  std::string job_id;  // worker port: the assigned attempt the context is for
  std::uint32_t attempt = 0;
};

struct ContextChunk {
  static constexpr Type kType = Type::kContextChunk;
  std::uint64_t request_id = 0;
  std::string digest;
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;
  std::string data;
};

// put-output (answered by context-ack): a chunk of an output tar, from the
// worker holding the attempt.
struct PutOutput {
  static constexpr Type kType = Type::kPutOutput;
  std::uint64_t request_id = 0;
  std::string job_id;
  std::uint32_t attempt = 0;
  std::string digest;
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;
  std::string data;
};

// get-output (answered by context-chunk): a client reads its job's output.
struct GetOutput {
  static constexpr Type kType = Type::kGetOutput;
  std::uint64_t request_id = 0;
  std::string job_id;
  std::string digest;
  std::uint64_t offset = 0;
  std::uint32_t max_bytes = 0;
};

struct Inventory {
  static constexpr Type kType = Type::kInventory;
  bool full = false;
  std::vector<std::string> added;    // 32-byte binary ids
  std::vector<std::string> removed;  // 32-byte binary ids
  std::string set_digest;            // 32 bytes
};

// Encodes a message body (Cap'n Proto flat, unpacked).
#define KILN_PROTO_CODEC(T)       \
  std::string encode(const T& m); \
  template <>                     \
  Result<T> decode<T>(std::string_view bytes);

template <class T>
Result<T> decode(std::string_view bytes);

KILN_PROTO_CODEC(ErrorReply)
KILN_PROTO_CODEC(Hello)
KILN_PROTO_CODEC(Welcome)
KILN_PROTO_CODEC(Ok)
KILN_PROTO_CODEC(Submit)
KILN_PROTO_CODEC(Submitted)
KILN_PROTO_CODEC(PutContext)
KILN_PROTO_CODEC(ContextAck)
KILN_PROTO_CODEC(GetStatus)
KILN_PROTO_CODEC(Job)
KILN_PROTO_CODEC(ListJobs)
KILN_PROTO_CODEC(Jobs)
KILN_PROTO_CODEC(ReadLog)
KILN_PROTO_CODEC(Log)
KILN_PROTO_CODEC(CancelJob)
KILN_PROTO_CODEC(ListWorkers)
KILN_PROTO_CODEC(Workers)
KILN_PROTO_CODEC(WorkerAction)
KILN_PROTO_CODEC(Register)
KILN_PROTO_CODEC(Registered)
KILN_PROTO_CODEC(Heartbeat)
KILN_PROTO_CODEC(Reregister)
KILN_PROTO_CODEC(Assign)
KILN_PROTO_CODEC(JobEvent)
KILN_PROTO_CODEC(CancelAssigned)
KILN_PROTO_CODEC(WorkerState)
KILN_PROTO_CODEC(GetContext)
KILN_PROTO_CODEC(ContextChunk)
KILN_PROTO_CODEC(Inventory)
KILN_PROTO_CODEC(JobAcks)
KILN_PROTO_CODEC(PutOutput)
KILN_PROTO_CODEC(GetOutput)
#undef KILN_PROTO_CODEC

// Job records persisted by the scheduler reuse the wire's JobInfo encoding
// (with the spec); secrets are never part of it.
std::string encode_job_record(const JobInfo& job);
Result<JobInfo> decode_job_record(std::string_view bytes);

// The request id of a request body that cannot be taken whole (too large,
// or malformed past its first field), read without decoding the rest; 0
// when even that cannot be read or `type` carries none. So that an error
// about a request reaches the request that caused it.
std::uint64_t peek_request_id(Type type, std::string_view bytes);

// An ErrorReply from an Error (kind name + message with context).
ErrorReply error_reply(std::uint64_t request_id, const Error& error);
// Back to an Error (unknown kinds become kUnavailable).
Error to_error(const ErrorReply& reply);

}  // namespace kiln::proto
