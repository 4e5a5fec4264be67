// Round-trip properties of the canonical printer, on generated specs and on
// the fuzz corpus (so that the ordinary test run checks what the fuzzer
// checks, without clang):
//   parse(print(s)) == s  and  print(parse(print(s))) == print(s).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/spec/sexp.h"
#include "common/spec/spec.h"

namespace kiln::spec {
namespace {

// Builds random but valid specs: every op and field, nested builds that only
// copy from builds in scope, and atoms full of bytes that need quoting.
class SpecGenerator {
 public:
  explicit SpecGenerator(unsigned seed) : rng_(seed) {}

  Spec spec(int depth, std::vector<std::string> scope) {
    Spec s;
    int builds = depth < 3 ? pick(3) : 0;
    for (int i = 0; i < builds; ++i) {
      ChildBuild child;
      child.name = plain_atom() + std::to_string(i);  // distinct sibling names
      child.spec = spec(depth + 1, scope);
      scope.push_back(child.name);
      s.child_builds.push_back(std::move(child));
    }
    s.from = atom(false);
    int ops = pick(7);
    for (int i = 0; i < ops; ++i) {
      Op op;
      op.kind = operation(scope);
      s.ops.push_back(std::move(op));
    }
    return s;
  }

  // Any bytes at all, for the atom printer.
  std::string bytes() {
    std::string s(pick(12), '\0');
    for (char& c : s) c = static_cast<char>(pick(256));
    return s;
  }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string plain_atom() {
    static const std::string chars = "abcdefghijklmnopqrstuvwxyz0123456789/._-";
    std::string s;
    int length = 1 + pick(pick(6) == 0 ? 50 : 10);
    for (int i = 0; i < length; ++i) s += chars[pick(static_cast<int>(chars.size()))];
    return s;
  }

  std::string atom(bool weird) {
    static const std::string odd = " \"\\();#|\n\t\r\x01\x7f\xc3\xa9";
    std::string s = plain_atom();
    if (weird) {
      for (char& c : s) {
        if (pick(6) == 0) c = odd[pick(static_cast<int>(odd.size()))];
      }
    }
    return s;
  }

  std::vector<std::string> atoms(int min, int max, bool weird) {
    std::vector<std::string> v;
    int n = min + pick(max - min + 1);
    for (int i = 0; i < n; ++i) v.push_back(atom(weird));
    return v;
  }

  KeyValues options() {
    KeyValues kv;
    int n = pick(3);
    for (int i = 0; i < n; ++i) kv.emplace_back(atom(false), atom(true));
    return kv;
  }

  OpKind operation(const std::vector<std::string>& scope) {
    switch (pick(7)) {
      case 0: return Comment{atom(true)};
      case 1: return Workdir{atom(true)};
      case 2: return Shell{atoms(1, 3, true)};
      case 3: return Env{atom(false), atom(true)};
      case 4:
        if (pick(2) == 0) return SetUser{UnixUser{pick(70000), pick(70000)}};
        return SetUser{WindowsUser{atom(true)}};
      case 5: {
        spec::Run run;
        run.shell = atom(true);
        for (int i = pick(3); i > 0; --i) run.caches.push_back({atom(false), atom(true), options()});
        if (pick(3) == 0) run.network = {"host"};
        for (int i = pick(3); i > 0; --i) run.secrets.push_back({atom(false), atom(true), options()});
        return run;
      }
      default: {
        Copy copy;
        copy.src = atoms(1, 4, pick(3) == 0);
        copy.dst = atom(false) + (copy.src.size() > 1 ? "/" : "");
        if (!scope.empty() && pick(2) == 0) copy.from_build = scope[pick(static_cast<int>(scope.size()))];
        if (pick(3) == 0) copy.exclude = atoms(1, 3, true);
        return copy;
      }
    }
  }

  std::mt19937 rng_;
};

void expect_round_trip(const Spec& spec) {
  std::string printed = print_spec(spec);
  auto parsed = parse_spec(printed, "printed.spec");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string() << "\n" << printed;
  EXPECT_EQ(*parsed, spec) << printed;
  EXPECT_EQ(print_spec(*parsed), printed);
}

TEST(SpecProperty, GeneratedSpecsRoundTrip) {
  SpecGenerator generate(20261129);
  for (int i = 0; i < 2000; ++i) {
    expect_round_trip(generate.spec(0, {}));
    if (HasFailure()) return;  // one counterexample is enough
  }
}

TEST(SpecProperty, AnyBytesRoundTripAsAnAtom) {
  SpecGenerator generate(7);
  for (int i = 0; i < 5000; ++i) {
    std::string atom = generate.bytes();
    auto read = read_sexp("(" + print_atom(atom) + ")", "atom");
    ASSERT_TRUE(read.has_value()) << read.error().to_string();
    ASSERT_EQ(read->items.size(), 1u);
    EXPECT_EQ(read->items[0].atom, atom) << print_atom(atom);
  }
}

TEST(SpecProperty, FuzzCorpusHoldsTheFuzzerProperties) {
  const char* source = std::getenv("KILN_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "KILN_SOURCE_DIR is set by ctest; run the test through ctest";
  int files = 0, valid = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(source) + "/tests/fuzz/corpus/spec_reader")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    ++files;
    auto spec = parse_spec(text.str(), "corpus.spec");
    if (!spec) {
      EXPECT_EQ(spec.error().kind(), ErrorKind::kInvalidArgument);
      EXPECT_EQ(spec.error().message().rfind("corpus.spec:", 0), 0u) << spec.error().message();
      continue;
    }
    ++valid;
    SCOPED_TRACE(entry.path().string());
    expect_round_trip(*spec);
  }
  EXPECT_GE(files, 15);
  EXPECT_GE(valid, 12);
}

}  // namespace
}  // namespace kiln::spec
