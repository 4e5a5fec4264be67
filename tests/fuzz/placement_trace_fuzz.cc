// libFuzzer target for the placement trace reader (common/trace/
// placement_trace.cc): trace::parse_trace on arbitrary JSON-lines text, as
// `kiln-sim --trace FILE` reads it.
//
// For any input it checks, and aborts when one fails:
//   - no crash and no exception escapes (nlohmann::json throws on mistyped
//     fields; the reader must turn every such case into an error);
//   - errors are kInvalidArgument and name the file ("fuzz.jsonl:...");
//   - a parsed trace keeps the format's rules: at least one worker, every
//     capacity >= 1, every step's seconds >= 0, jobs sorted by submit time;
//   - write_trace then parse_trace gives the trace back: writing it again
//     gives the same text (write_trace writes every field, so the same text
//     means the same trace).
// Seeds: `placement_trace_fuzz --write-seeds=tests/fuzz/corpus/placement_trace`.
// Run with scripts/fuzz placement_trace (dictionary placement_trace.dict).
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "common/trace/placement_trace.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace trace = kiln::trace;
using kiln::ErrorKind;
using kiln::fuzz::check;
using kiln::fuzz::fail;

std::string written(const trace::Trace& t) {
  std::ostringstream out;
  trace::write_trace(t, out);
  return out.str();
}

void check_rules(const trace::Trace& t, std::string_view input) {
  check(!t.workers.empty(), "a trace without workers was accepted", input);
  for (const trace::TraceWorker& w : t.workers) check(w.capacity >= 1, "a worker of capacity 0", input);
  for (std::size_t i = 0; i < t.jobs.size(); ++i) {
    for (const trace::TraceStep& s : t.jobs[i].steps)
      check(s.seconds >= 0, "a step of negative seconds", input);
    if (i > 0) check(!(t.jobs[i].submit < t.jobs[i - 1].submit), "jobs not sorted by submit time", input);
  }
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  const std::string step_a(64, 'a'), step_b(64, 'b');
  trace::Trace small{
      .workers =
          {{.name = "w00", .pool = "linux", .capacity = 2, .labels = {"arch=x86_64"}, .cache_limit = 120},
           {.name = "w01"}},
      .jobs = {
          {.id = "j00001",
           .submit = 12.5,
           .client = "pr",
           .urgent = true,
           .steps = {{step_a, 20.0}, {step_b, 95.3}}},
          {.id = "j00002", .submit = 3, .labels = {"arch=x86_64"}, .steps = {{step_a, 20}}, .estimate = 60}}};
  seeds.add("01-written", written(small));
  seeds.add(
      "02-doc-example",
      "{\"type\":\"worker\",\"name\":\"w00\",\"pool\":\"linux\",\"capacity\":2,\"labels\":[\"arch=x86_64\"],"
      "\"cache_limit\":120}\n"
      "{\"type\":\"job\",\"id\":\"j00001\",\"t\":12.5,\"pool\":\"linux\",\"client\":\"pr\",\"urgent\":true,"
      "\"labels\":[],\"estimate\":0,\"steps\":[{\"id\":\"" +
          step_a + "\",\"seconds\":20.0},{\"id\":\"" + step_b + "\",\"seconds\":95.3}]}\n");
  seeds.add("03-comments-blank",
            "# kiln admin trace: 1 worker\n\n   \n{\"type\":\"worker\",\"name\":\"w\"}\r\n");
  seeds.add("04-minimal-job",
            "{\"type\":\"worker\",\"name\":\"w\"}\n{\"type\":\"job\",\"id\":\"j\",\"t\":0,\"steps\":[]}\n");
  seeds.add(
      "05-unknown-fields",
      "{\"type\":\"worker\",\"name\":\"w\",\"extra\":{\"a\":[1,2]}}\n"
      "{\"type\":\"job\",\"id\":\"j\",\"t\":1e3,\"steps\":[{\"id\":\"s\",\"seconds\":0.25,\"x\":null}]}\n");
  seeds.add("06-mistyped", "{\"type\":\"worker\",\"name\":7}\n");
  seeds.add("07-no-workers", "{\"type\":\"job\",\"id\":\"j\",\"t\":0,\"steps\":[]}\n");
  seeds.add("08-unsorted",
            "{\"type\":\"worker\",\"name\":\"w\",\"capacity\":3}\n"
            "{\"type\":\"job\",\"id\":\"b\",\"t\":9,\"steps\":[]}\n"
            "{\"type\":\"job\",\"id\":\"a\",\"t\":-2.5,\"steps\":[{\"id\":\"s\",\"seconds\":1}]}\n");
  seeds.add("09-unicode", "{\"type\":\"worker\",\"name\":\"w\\u00e9\\ud83d\\ude00\",\"labels\":[\"k=v\"]}\n");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  kiln::fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::istringstream in{std::string(input)};
  auto parsed = trace::parse_trace(in, "fuzz.jsonl");
  if (!parsed) {
    check(parsed.error().kind() == ErrorKind::kInvalidArgument, "an error of the wrong kind",
          parsed.error().to_string());
    check(parsed.error().message().starts_with("fuzz.jsonl:"), "an error without the file name",
          parsed.error().message());
    return 0;
  }
  check_rules(*parsed, input);
  const std::string text = written(*parsed);
  std::istringstream again_in(text);
  auto again = trace::parse_trace(again_in, "written.jsonl");
  if (!again) fail("a written trace does not read back", again.error().to_string() + "\n" + text);
  if (written(*again) != text) fail("a written trace reads back different", text);
  return 0;
}
