# The kiln wire protocol (docs/protocol.md): one Cap'n Proto struct per
# message body. On the wire every message is a ZeroMQ multipart message: a
# frame holding the message type (the lowercase names listed beside each
# struct, e.g. "submit"), then a frame holding the body as a Cap'n Proto flat
# message (unpacked, one segment table). Field numbers are never reused;
# incompatible changes bump protocolVersion.
@0xacda81c202f3321b;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kiln::wire");

const protocolVersion :UInt32 = 1;

# ---- shared pieces ----------------------------------------------------------

struct ContextRef {
  # Where a job's build context comes from.
  kind @0 :Kind;
  enum Kind {
    none @0;   # no context (a spec without context copies)
    tar @1;    # an uploaded tar, by digest ("sha256:HEX")
    git @2;    # a git repository and commit, fetched by the worker
  }
  digest @1 :Text;      # tar: "sha256:HEX" of the uncompressed tar
  gitRepo @2 :Text;     # git: URL or path libgit2 can fetch from
  gitCommit @3 :Text;   # git: full commit hash
  size @4 :UInt64;      # tar: bytes
}

struct Secret {
  id @0 :Text;
  value @1 :Data;
}

struct JobSpec {
  spec @0 :Text;          # the build spec, S-expression text
  specName @1 :Text;      # for messages ("app.spec")
  pool @2 :Text;
  client @3 :Text;
  urgent @4 :Bool;
  context @5 :ContextRef;
  secrets @6 :List(Secret);   # in memory only: never persisted or logged
  timeoutSeconds @7 :UInt32;  # 0: the scheduler's default
  labels @8 :List(Text);      # "key=value" a worker must have
  estimateSeconds @9 :Float64; # the client's guess of a cold build's seconds (placement); 0: none
  push @10 :Text;         # [HOST[:PORT]/]PATH[:TAG]: the worker pushes the result there; "" none.
                          # Its login travels as the secret "kiln-push-login" (USER:PASSWORD).
  pull @11 :Text;             # "always", "missing", "never": when base images' tags are asked; "": the worker's --pull
  outputs @12 :List(Text);    # paths in the result the worker sends back as tars (`kiln submit --output SRC:DIR`)
}

struct Output {
  # One `--output` of a finished job: the tar of SRC the scheduler holds
  # (put-output from the worker, get-output by the client).
  src @0 :Text;         # as JobSpec.outputs
  digest @1 :Text;      # "sha256:HEX" of the tar
  size @2 :UInt64;      # of the tar
  entries @3 :UInt64;   # files, directories and symlinks in it
}

struct StepInfo {
  id @0 :Text;
  description @1 :Text;
  cached @2 :Bool;
  seconds @3 :Float64;
  image @4 :Text;     # (from ...) steps: what the base resolved to (REGISTRY/REPO@sha256:..., or the manifest digest)
}

struct Attempt {
  number @0 :UInt32;
  worker @1 :Text;
  assignedAtMs @2 :Int64;
  endedAtMs @3 :Int64;
  outcome @4 :Text;   # "succeeded", "failed", "cancelled", "lost", "" while running
}

struct JobInfo {
  id @0 :Text;
  state @1 :Text;     # queued assigned running succeeded failed cancelled
  pool @2 :Text;
  client @3 :Text;
  urgent @4 :Bool;
  specName @5 :Text;
  context @6 :ContextRef;
  worker @7 :Text;
  attempt @8 :UInt32;
  submittedAtMs @9 :Int64;
  startedAtMs @10 :Int64;
  finishedAtMs @11 :Int64;
  result @12 :Text;   # the final snapshot id
  error @13 :Text;
  steps @14 :List(StepInfo);
  attempts @15 :List(Attempt);
  logBytes @16 :UInt64;
  spec @17 :Text;     # only in status replies, not in job lists
  secretIds @18 :List(Text);  # the ids of the secrets the job was submitted with (never values)
  cancelRequested @19 :Bool;
  timeoutSeconds @20 :UInt32;
  labels @21 :List(Text);
  plannedSteps @22 :List(Text);  # the main stage's step ids as the scheduler computed them (placement)
  estimateSeconds @23 :Float64;
  # How far into the current attempt's log (the worker's numbering, JobEvent.logOffset)
  # the scheduler has accounted: stored, or dropped over the cap. A resent chunk is
  # placed from here; 0 at each new attempt.
  attemptLogBytes @24 :UInt64;
  push @25 :Text;     # the image reference the result is pushed to ("" none)
  pushed @26 :Text;   # REGISTRY/REPOSITORY:TAG@sha256:… once pushed
  pull @27 :Text;     # as JobSpec.pull
  outputs @28 :List(Text);       # as JobSpec.outputs
  outputFiles @29 :List(Output); # once succeeded: one per entry of outputs, in order
}

struct WorkerStats {
  diskFreeBytes @0 :UInt64;
  diskTotalBytes @1 :UInt64;
  storeItems @2 :UInt64;
  storeBytes @3 :UInt64;
  cacheHits @4 :UInt64;
  cacheMisses @5 :UInt64;
  runningJobs @6 :UInt32;
  healthy @7 :Bool;
  imageCacheBytes @8 :UInt64;  # the registry blob cache (not in storeBytes)
}

struct WorkerInfo {
  name @0 :Text;
  pool @1 :Text;
  state @2 :Text;     # active paused draining disconnected
  capacity @3 :UInt32;
  labels @4 :List(Text);
  running @5 :List(Text);     # job ids
  stats @6 :WorkerStats;
  lastHeartbeatMs @7 :Int64;
  connected @8 :Bool;
}

struct RunningJob {
  jobId @0 :Text;
  attempt @1 :UInt32;
}

# ---- every peer -------------------------------------------------------------

struct Error {          # "error"
  requestId @0 :UInt64;
  kind @1 :Text;        # error_kind_name(): "invalid argument", "not found", ...
  message @2 :Text;
}

struct Hello {          # "hello": a client or admin's first message
  protocolVersion @0 :UInt32;
  requestId @1 :UInt64;
  client @2 :Text;
}

struct Welcome {        # "welcome"
  protocolVersion @0 :UInt32;
  requestId @1 :UInt64;
  schedulerId @2 :Text;
}

struct Ok {             # "ok"
  requestId @0 :UInt64;
}

# ---- clients and admins -> scheduler (port 7800) ----------------------------

struct Submit {         # "submit" -> "submitted" | "error"
  requestId @0 :UInt64;
  job @1 :JobSpec;
}

struct Submitted {      # "submitted"
  requestId @0 :UInt64;
  jobId @1 :Text;
}

struct PutContext {     # "put-context" -> "context-ack": one chunk of a tar
  requestId @0 :UInt64;
  digest @1 :Text;
  totalSize @2 :UInt64;
  offset @3 :UInt64;
  data @4 :Data;
}

struct ContextAck {     # "context-ack"
  requestId @0 :UInt64;
  digest @1 :Text;
  received @2 :UInt64;  # bytes held so far (resume from here)
  complete @3 :Bool;    # verified and stored
}

struct GetStatus {      # "status" -> "job" | "error"
  requestId @0 :UInt64;
  jobId @1 :Text;
  waitMs @2 :UInt32;    # >0: reply when the job ends or after this long
}

struct Job {            # "job"
  requestId @0 :UInt64;
  job @1 :JobInfo;
}

struct ListJobs {       # "list-jobs" -> "jobs"
  requestId @0 :UInt64;
  states @1 :List(Text);  # empty: every state
  limit @2 :UInt32;
}

struct Jobs {           # "jobs"
  requestId @0 :UInt64;
  jobs @1 :List(JobInfo);
  total @2 :UInt64;
}

struct ReadLog {        # "read-log" -> "log" | "error"
  requestId @0 :UInt64;
  jobId @1 :Text;
  offset @2 :UInt64;
  maxBytes @3 :UInt32;
  waitMs @4 :UInt32;    # >0: hold the reply until data past offset or the job ends
}

struct Log {            # "log"
  requestId @0 :UInt64;
  jobId @1 :Text;
  offset @2 :UInt64;
  data @3 :Data;
  complete @4 :Bool;    # the job has ended and offset+len(data) is the log's end
  state @5 :Text;
}

struct CancelJob {      # "cancel" -> "ok" | "error"
  requestId @0 :UInt64;
  jobId @1 :Text;
}

struct ListWorkers {    # "list-workers" -> "workers"
  requestId @0 :UInt64;
}

struct Workers {        # "workers"
  requestId @0 :UInt64;
  workers @1 :List(WorkerInfo);
}

struct WorkerAction {   # "worker-action" -> "ok" | "error"
  requestId @0 :UInt64;
  worker @1 :Text;
  action @2 :Text;      # pause unpause drain forget
}

# ---- workers -> scheduler (port 7801) -------------------------------------

struct Register {       # "register" -> "registered" | "error"
  protocolVersion @0 :UInt32;
  name @1 :Text;
  pool @2 :Text;
  capacity @3 :UInt32;
  labels @4 :List(Text);
  running @5 :List(RunningJob);   # jobs still running from before a reconnect
  stats @6 :WorkerStats;
  # The worker numbers its job-log chunks (JobEvent.logOffset), says each attempt's
  # log length in job-done (JobEvent.logEnd) and keeps the text until a job-acks
  # covers it. False (an older worker): chunks are appended as they come, not acked.
  logOffsets @7 :Bool;
}

struct Registered {     # "registered"
  schedulerId @0 :Text;
  heartbeatMs @1 :UInt32;
  leaseMs @2 :UInt32;
  state @3 :Text;       # active paused draining
  # >0: this scheduler answers job-log and job-done of a worker registered with
  # logOffsets by job-acks, and stores at most this many bytes of a job's log
  # (--log-cap-bytes). 0: an older scheduler (no acks).
  logCapBytes @4 :UInt64;
}

struct Heartbeat {      # "heartbeat" (the scheduler answers "reregister" if it does not know the worker)
  stats @0 :WorkerStats;
  running @1 :List(RunningJob);
  inventoryDigest @2 :Data;  # the worker's set digest (as Inventory.setDigest) once its full inventory went out; else empty
}

struct Reregister {     # "reregister"
  reason @0 :Text;
}

struct Assign {         # "assign": scheduler -> worker
  jobId @0 :Text;
  attempt @1 :UInt32;
  job @2 :JobSpec;
  maxOutputBytes @3 :UInt64;  # the largest output tar the scheduler takes (JobSpec.outputs)
}

struct JobEvent {       # "job-started", "job-log", "job-step", "job-done": worker -> scheduler
  jobId @0 :Text;
  attempt @1 :UInt32;
  log @2 :Data;         # job-log
  step @3 :StepInfo;    # job-step
  outcome @4 :Text;     # job-done: succeeded failed cancelled
  error @5 :Text;       # job-done
  result @6 :Text;      # job-done: the final snapshot id
  steps @7 :List(StepInfo);  # job-done: every step
  logOffset @8 :UInt64; # job-log (logOffsets workers): where `log` starts in this attempt's log
  logEnd @9 :UInt64;    # job-done (logOffsets workers): the attempt's log length, every byte produced
  pushed @10 :Text;     # job-done: REGISTRY/REPOSITORY:TAG@sha256:… the result was pushed as
  outputs @11 :List(Output);  # job-done: the job's outputs, each already stored by put-output
}

struct JobAck {
  jobId @0 :Text;
  attempt @1 :UInt32;
  logOffset @2 :UInt64; # every byte of the attempt's log below this is stored durably, or dropped
  logFull @3 :Bool;     # nothing more of this attempt's log will be stored (the cap, or the attempt
                        # is not current): send no more text, keep none after logOffset
  done @4 :Bool;        # the attempt's job-done is recorded (or ignored: the attempt is not current)
}

struct JobAcks {        # "job-acks": scheduler -> worker, sent only after the commit that made them durable
  acks @0 :List(JobAck);
}

struct CancelAssigned { # "cancel-job": scheduler -> worker
  jobId @0 :Text;
  attempt @1 :UInt32;
}

struct WorkerState {    # "worker-state": scheduler -> worker (pause, drain)
  state @0 :Text;
}

struct GetContext {     # "get-context" -> "context-chunk" | "error"
  requestId @0 :UInt64;
  digest @1 :Text;
  offset @2 :UInt64;
  maxBytes @3 :UInt32;
  # On the worker port: the job (and attempt) whose context this is; served
  # only while that attempt is assigned to the asking worker.
  jobId @4 :Text;
  attempt @5 :UInt32;
}

struct ContextChunk {   # "context-chunk"
  requestId @0 :UInt64;
  digest @1 :Text;
  totalSize @2 :UInt64;
  offset @3 :UInt64;
  data @4 :Data;
}

struct Inventory {      # "inventory": worker -> scheduler, the step ids its store holds
  full @0 :Bool;        # true: `added` is the whole set (replaces what the scheduler had)
  added @1 :List(Data); # 32-byte binary step ids
  removed @2 :List(Data);
  setDigest @3 :Data;   # SHA-256 over the sorted set after this change (drift check)
}

struct PutOutput {      # "put-output" -> "context-ack": worker -> scheduler, one chunk of an output tar
  requestId @0 :UInt64;
  jobId @1 :Text;       # the attempt assigned to this worker the output belongs to
  attempt @2 :UInt32;
  digest @3 :Text;
  totalSize @4 :UInt64;
  offset @5 :UInt64;
  data @6 :Data;
}

struct GetOutput {      # "get-output" -> "context-chunk": a client reads one of its job's outputs
  requestId @0 :UInt64;
  jobId @1 :Text;
  digest @2 :Text;      # one of the job's JobInfo.outputFiles
  offset @3 :UInt64;
  maxBytes @4 :UInt32;
}
