// libFuzzer target for the spec language: the S-expression reader and
// printer, the spec parser, the canonical printer and the Dockerfile writer.
//
// For any input it checks, and aborts when one fails:
//   - read_sexp(x) == s  implies  read_sexp(print_sexp(s)) == s, and printing
//     that again gives the same text;
//   - the input bytes, taken as one atom, read back exactly from print_atom;
//   - parse_spec(x) == s  implies  parse_spec(print_spec(s)) == s and
//     print_spec of that is the same text (the canonical form is a fixpoint);
//   - errors are kInvalidArgument and name the file they are about.
// Seed corpus: tests/fuzz/corpus/spec_reader. Run it with scripts/fuzz spec_reader.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/spec/sexp.h"
#include "common/spec/spec.h"

namespace {

using kiln::ErrorKind;
namespace spec = kiln::spec;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "spec_reader_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void check_error(const kiln::Error& error) {
  if (error.kind() != ErrorKind::kInvalidArgument) fail("error of the wrong kind", error.message());
  if (error.message().rfind("fuzz.spec:", 0) != 0) fail("error without the file name", error.message());
}

void check_sexp_round_trip(std::string_view text) {
  auto sexp = spec::read_sexp(text, "fuzz.spec");
  if (!sexp) {
    check_error(sexp.error());
    return;
  }
  std::string printed = spec::print_sexp(*sexp);
  auto again = spec::read_sexp(printed, "fuzz.spec");
  if (!again) fail("printed sexp does not read back", again.error().message() + "\n" + printed);
  if (!(*again == *sexp)) fail("printed sexp reads back different", printed);
  if (spec::print_sexp(*again) != printed) fail("sexp printing is not idempotent", printed);
}

void check_atom_round_trip(std::string_view bytes) {
  std::string printed = "(" + spec::print_atom(bytes) + ")";
  auto again = spec::read_sexp(printed, "fuzz.spec");
  if (!again) fail("printed atom does not read back", again.error().message() + "\n" + printed);
  if (again->items.size() != 1 || !again->items[0].is_atom() || again->items[0].atom != bytes) {
    fail("printed atom reads back different", printed);
  }
}

void check_spec_round_trip(std::string_view text) {
  auto parsed = spec::parse_spec(text, "fuzz.spec");
  if (!parsed) {
    check_error(parsed.error());
    return;
  }
  std::string printed = spec::print_spec(*parsed);
  auto again = spec::parse_spec(printed, "fuzz.spec");
  if (!again) fail("canonical text does not parse", again.error().message() + "\n" + printed);
  if (!(*again == *parsed)) fail("canonical text parses to a different spec", printed);
  std::string reprinted = spec::print_spec(*again);
  if (reprinted != printed) fail("canonical printing is not idempotent", printed + "\n---\n" + reprinted);
  // These must simply not crash (the sanitizers watch them).
  for (const spec::Op& op : parsed->ops) {
    if (spec::print_op(op).empty() || spec::op_name(op.kind).empty()) fail("empty op text", printed);
  }
  (void)spec::to_dockerfile(*parsed, true);
  (void)spec::to_dockerfile(*parsed, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_sexp_round_trip(text);
  check_atom_round_trip(text);
  check_spec_round_trip(text);
  return 0;
}
