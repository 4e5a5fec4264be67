// libFuzzer target for the wire protocol's decoders (common/proto/codec.cc):
// proto::decode<T> for every message type, decode_job_record (the
// scheduler's stored job records), peek_request_id and parse_type.
//
// The first input byte picks what the rest is fed to: 0 to kMessageTypeCount-1
// a message type (proto::Type, job-event types read as JobEvent; job-acks is
// the last), then a job record, then a type frame's text. For any input it checks, and aborts when one fails:
//   - decode never crashes, and refuses with kInvalidArgument;
//   - whatever decodes re-encodes to bytes that decode again, and encoding
//     that gives the same bytes (the encoding writes every field, so equal
//     bytes mean the same struct: decode(encode(decode(x))) == decode(x));
//   - the bytes decode the same at any alignment (the frame's bytes need not
//     be word-aligned);
//   - peek_request_id gives the decoded request_id for the requests it
//     knows (and 0 for other types), without decoding the rest;
//   - parse_type(x) == t  implies  type_name(t) == x.
// Seeds: `proto_codec_fuzz --write-seeds=tests/fuzz/corpus/proto_codec` (one
// realistic message of each type, and job records). Run with scripts/fuzz proto_codec.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/proto/messages.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/proto_types.h"

namespace {

namespace proto = kiln::proto;
using kiln::ErrorKind;
using kiln::fuzz::check;
using kiln::fuzz::fail;

constexpr std::uint8_t kJobRecordMode = kiln::fuzz::kMessageTypeCount;
constexpr std::uint8_t kTypeNameMode = kJobRecordMode + 1;

// The requests whose id peek_request_id reads (the client port's, and get-context).
bool peeked(proto::Type type) {
  using proto::Type;
  switch (type) {
    case Type::kHello:
    case Type::kSubmit:
    case Type::kPutContext:
    case Type::kGetStatus:
    case Type::kListJobs:
    case Type::kReadLog:
    case Type::kCancelJob:
    case Type::kListWorkers:
    case Type::kWorkerAction:
    case Type::kGetContext:
    case Type::kPutOutput:
    case Type::kGetOutput: return true;
    default: return false;
  }
}

void check_refusal(const kiln::Error& error, std::string_view what) {
  if (error.kind() != ErrorKind::kInvalidArgument) fail("decode refused with the wrong kind", what);
}

// decode -> encode -> decode -> encode gives the same bytes twice.
template <class Decode, class Encode>
void check_round_trip(std::string_view bytes, std::string_view what, Decode decode, Encode encode) {
  // An aligned copy (std::string's buffer) and the unaligned original.
  std::string aligned(bytes);
  auto first = decode(std::string_view(aligned));
  auto unaligned = decode(bytes);
  if (first.has_value() != unaligned.has_value()) fail("decoding depends on alignment", what);
  if (!first) {
    check_refusal(first.error(), what);
    return;
  }
  std::string encoded = encode(*first);
  if (encode(*unaligned) != encoded) fail("decoding depends on alignment", what);
  auto second = decode(std::string_view(encoded));
  if (!second) fail("a re-encoded message does not decode", second.error().to_string());
  if (encode(*second) != encoded) fail("re-encoding changes the message", what);
}

void fuzz_message(proto::Type type, std::string_view bytes) {
  kiln::fuzz::with_message_type(type, [&]<class T>() {
    check_round_trip(
        bytes, proto::type_name(type), [](std::string_view b) { return proto::decode<T>(b); },
        [](const T& m) { return proto::encode(m); });
    const std::uint64_t peek = proto::peek_request_id(type, bytes);
    if (!peeked(type)) {
      check(peek == 0, "peek_request_id read an id of a type it does not know", proto::type_name(type));
      return;
    }
    if constexpr (requires(T m) { m.request_id; }) {
      if (auto decoded = proto::decode<T>(bytes)) {
        check(peek == decoded->request_id, "peek_request_id differs from the decoded request_id",
              proto::type_name(type));
      }
    }
  });
}

void fuzz_type_name(std::string_view text) {
  auto type = proto::parse_type(text);
  if (type) check(proto::type_name(*type) == text, "parse_type and type_name disagree", text);
}

// ---- seeds ----

proto::JobSpec seed_spec() {
  return {.spec = "((from busybox) (copy (src \"app\") (dst \"/app\")) (run (shell \"make -C /app\")))",
          .spec_name = "app.spec",
          .pool = "linux-x86_64",
          .client = "ci",
          .urgent = true,
          .context = {.kind = proto::ContextRef::Kind::kTar,
                      .digest = "sha256:" + std::string(64, 'a'),
                      .size = 10240},
          .secrets = {{"token", std::string("s\0cret", 6)}},
          .timeout_seconds = 600,
          .labels = {"arch=x86_64", "disk=ssd"},
          .estimate_seconds = 12.5,
          .outputs = {"/app/bin", "/etc/app.conf"}};
}

proto::JobInfo seed_job() {
  return {.id = "j7",
          .state = "running",
          .pool = "linux-x86_64",
          .client = "ci",
          .spec_name = "app.spec",
          .context = {.kind = proto::ContextRef::Kind::kGit, .git_repo = "/src/app", .git_commit = "abc123"},
          .worker = "w1",
          .attempt = 2,
          .submitted_at_ms = 1'800'000'000'000,
          .started_at_ms = 1'800'000'001'000,
          .steps = {{"4f2a", "(run (shell \"make\"))", false, 3.5}, {"91bc", "(from busybox)", true, 0}},
          .attempts = {{1, "w0", 1'800'000'000'500, 1'800'000'000'900, "lost"}, {2, "w1", 1'800'000'001'000}},
          .log_bytes = 4096,
          .spec = "((from busybox) (run (shell \"make\")))",
          .secret_ids = {"token"},
          .timeout_seconds = 3600,
          .labels = {"arch=x86_64"},
          .planned_steps = {"91bc", "4f2a"},
          .estimate_seconds = 30,
          .attempt_log_bytes = 4096,
          .outputs = {"/app/bin"},
          .output_files = {{"/app/bin", "sha256:" + std::string(64, 'b'), 20480, 3}}};
}

proto::WorkerInfo seed_worker() {
  return {.name = "w1",
          .pool = "linux-x86_64",
          .state = "active",
          .capacity = 4,
          .labels = {"arch=x86_64"},
          .running = {"j7", "j9"},
          .stats = {.disk_free_bytes = 50ull << 30,
                    .disk_total_bytes = 100ull << 30,
                    .store_items = 120,
                    .store_bytes = 3ull << 30,
                    .cache_hits = 40,
                    .cache_misses = 9,
                    .running_jobs = 2},
          .last_heartbeat_ms = 1'800'000'002'000,
          .connected = true};
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  using proto::Type;
  auto add = [&](const std::string& name, std::uint8_t mode, std::string_view body) {
    std::string input(1, static_cast<char>(mode));
    input += body;
    seeds.add(name, input);
  };
  auto message = [&]<class T>(const T& m) {
    add(std::string(proto::type_name(T::kType)), static_cast<std::uint8_t>(T::kType), proto::encode(m));
  };
  const std::string id32(32, '\x5a');
  message(proto::ErrorReply{.request_id = 3, .kind = "not found", .message = "no job \"j9\""});
  message(proto::Hello{.request_id = 1, .client = "ci"});
  message(proto::Welcome{.request_id = 1, .scheduler_id = "0123456789abcdef"});
  message(proto::Ok{.request_id = 4});
  message(proto::Submit{.request_id = 2, .job = seed_spec()});
  message(proto::Submitted{.request_id = 2, .job_id = "j7"});
  message(proto::PutContext{.request_id = 5,
                            .digest = "sha256:" + std::string(64, 'a'),
                            .total_size = 10,
                            .offset = 4,
                            .data = std::string("ta\0r!", 5)});
  message(proto::ContextAck{.request_id = 5, .digest = "sha256:" + std::string(64, 'a'), .received = 9});
  message(proto::GetStatus{.request_id = 6, .job_id = "j7", .wait_ms = 30000});
  message(proto::Job{.request_id = 6, .job = seed_job()});
  message(proto::ListJobs{.request_id = 7, .states = {"queued", "running"}, .limit = 20});
  message(proto::Jobs{.request_id = 7, .jobs = {seed_job(), {.id = "j8", .state = "queued"}}, .total = 2});
  message(
      proto::ReadLog{.request_id = 8, .job_id = "j7", .offset = 100, .max_bytes = 65536, .wait_ms = 1000});
  message(proto::Log{.request_id = 8,
                     .job_id = "j7",
                     .offset = 100,
                     .data = "step 1/2\n",
                     .complete = false,
                     .state = "running"});
  message(proto::CancelJob{.request_id = 9, .job_id = "j7"});
  message(proto::ListWorkers{.request_id = 10});
  message(proto::Workers{.request_id = 10, .workers = {seed_worker(), {.name = "w2", .pool = "arm"}}});
  message(proto::WorkerAction{.request_id = 11, .worker = "w1", .action = "drain"});
  message(proto::Register{.name = "w1",
                          .pool = "linux-x86_64",
                          .capacity = 4,
                          .labels = {"arch=x86_64"},
                          .running = {{"j7", 2}},
                          .stats = seed_worker().stats,
                          .log_offsets = true});
  message(proto::Registered{.scheduler_id = "0123456789abcdef",
                            .heartbeat_ms = 1000,
                            .lease_ms = 10000,
                            .state = "active",
                            .log_cap_bytes = 16ull << 20});
  message(proto::Heartbeat{.stats = seed_worker().stats, .running = {{"j7", 2}}, .inventory_digest = id32});
  message(proto::Reregister{.reason = "scheduler restarted"});
  message(proto::Assign{.job_id = "j7", .attempt = 2, .job = seed_spec(), .max_output_bytes = 256ull << 20});
  proto::JobEvent event{.job_id = "j7", .attempt = 2};
  add("job-started", static_cast<std::uint8_t>(Type::kJobStarted), proto::encode(event));
  event.log = "+ make\ncc -o app app.c\n";
  event.log_offset = 1 << 20;
  add("job-log", static_cast<std::uint8_t>(Type::kJobLog), proto::encode(event));
  event.log.clear();
  event.log_offset = 0;
  event.step = {"4f2a", "(run (shell \"make\"))", false, 3.5};
  add("job-step", static_cast<std::uint8_t>(Type::kJobStep), proto::encode(event));
  event.step = {};
  event.outcome = "succeeded";
  event.result = "4f2a";
  event.steps = seed_job().steps;
  event.log_end = (1 << 20) + 23;
  event.outputs = seed_job().output_files;
  add("job-done", static_cast<std::uint8_t>(Type::kJobDone), proto::encode(event));
  message(proto::CancelAssigned{.job_id = "j7", .attempt = 2});
  message(proto::WorkerState{.state = "paused"});
  message(proto::GetContext{.request_id = 12,
                            .digest = "sha256:" + std::string(64, 'a'),
                            .offset = 0,
                            .max_bytes = 1 << 20,
                            .job_id = "j7",
                            .attempt = 2});
  message(proto::ContextChunk{.request_id = 12,
                              .digest = "sha256:" + std::string(64, 'a'),
                              .total_size = 10,
                              .offset = 0,
                              .data = "0123456789"});
  message(proto::Inventory{.full = true, .added = {id32, std::string(32, '\x01')}, .set_digest = id32});
  message(proto::JobAcks{.acks = {{.job_id = "j7", .attempt = 2, .log_offset = 4096},
                                  {.job_id = "j8", .attempt = 1, .log_offset = 16ull << 20, .log_full = true},
                                  {.job_id = "j9", .attempt = 3, .log_offset = 77, .done = true}}});
  message(proto::PutOutput{.request_id = 13,
                           .job_id = "j7",
                           .attempt = 2,
                           .digest = "sha256:" + std::string(64, 'b'),
                           .total_size = 20480,
                           .offset = 10240,
                           .data = std::string("out\0put", 7)});
  message(proto::GetOutput{
      .request_id = 14, .job_id = "j7", .digest = "sha256:" + std::string(64, 'b'), .offset = 0, .max_bytes = 1 << 20});
  add("job-record", kJobRecordMode, proto::encode_job_record(seed_job()));
  add("job-record-queued", kJobRecordMode,
      proto::encode_job_record({.id = "j1", .state = "queued", .client = "ci", .spec = "((from busybox))"}));
  add("type-name", kTypeNameMode, "context-chunk");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  kiln::fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % (kTypeNameMode + 1);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode < kJobRecordMode) {
    fuzz_message(static_cast<proto::Type>(mode), rest);
  } else if (mode == kJobRecordMode) {
    check_round_trip(
        rest, "job record", [](std::string_view b) { return proto::decode_job_record(b); },
        [](const proto::JobInfo& j) { return proto::encode_job_record(j); });
  } else {
    fuzz_type_name(rest);
  }
  return 0;
}
