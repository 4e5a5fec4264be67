// The canonical printer: OBuilder's layout byte for byte, and round trips.
#include <gtest/gtest.h>

#include <string>

#include "common/spec/spec.h"

namespace kiln::spec {
namespace {

Spec parse_ok(std::string_view text) {
  auto r = parse_spec(text, "t.spec");
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? *r : Spec{};
}

// Checks that `canonical` is printed back unchanged and that the printed
// form parses to the same spec.
void expect_canonical(const std::string& canonical) {
  Spec s = parse_ok(canonical);
  std::string printed = print_spec(s);
  EXPECT_EQ(printed, canonical);
  EXPECT_EQ(parse_ok(printed), s);
}

Op op(OpKind kind) {
  Op o;
  o.kind = std::move(kind);
  return o;
}

// OBuilder's test/test.ml "test_sexp" example, built in code.
Spec obuilder_example(std::string multi_source_dst) {
  Spec tools;
  tools.from = "base";
  tools.ops = {op(spec::Run{{}, {}, {}, "make tools"})};
  Spec s;
  s.child_builds.push_back(ChildBuild{"tools", tools, {}});
  s.from = "base";
  s.ops = {
      op(Comment{"A test comment"}),
      op(Workdir{"/src"}),
      op(spec::Run{{}, {}, {}, "a command"}),
      op(spec::Run{
          {{"a", "/data", {}}, {"b", "/srv", {}}},
          {},
          {{"a", "/run/secrets/a", {}}, {"b", "/b", {}}},
          "a very very very very very very very very very very very very very very very long command"}),
      op(Copy{std::nullopt, {"a", "b"}, multi_source_dst, {}}),
      op(Copy{std::nullopt, {"a", "b"}, multi_source_dst, {".git", "_build"}}),
      op(Copy{"tools", {"binary"}, "/usr/local/bin/", {}}),
      op(Env{"DEBUG", "1"}),
      op(SetUser{UnixUser{1, 2}}),
  };
  return s;
}

std::string obuilder_example_text(std::string multi_source_dst) {
  return "((build tools\n"
         "        ((from base)\n"
         "         (run (shell \"make tools\"))))\n"
         " (from base)\n"
         " (comment \"A test comment\")\n"
         " (workdir /src)\n"
         " (run (shell \"a command\"))\n"
         " (run (cache (a (target /data)) (b (target /srv)))\n"
         "      (secrets (a (target /run/secrets/a)) (b (target /b)))\n"
         "      (shell \"a very very very very very very very very very very very very very very very long "
         "command\"))\n"
         " (copy (src a b) (dst " +
         multi_source_dst +
         "))\n"
         " (copy (src a b) (dst " +
         multi_source_dst +
         ") (exclude .git _build))\n"
         " (copy (from (build tools)) (src binary) (dst /usr/local/bin/))\n"
         " (env DEBUG 1)\n"
         " (user (uid 1) (gid 2))\n"
         ")\n";
}

// Byte for byte OBuilder's expected text. (OBuilder copies (src a b) to "c";
// kiln's parser refuses several sources without a trailing '/', a rule
// OBuilder only checks when building, so the parsed variant uses "c/".)
TEST(SpecPrint, MatchesOBuilderLayout) {
  EXPECT_EQ(print_spec(obuilder_example("c")), obuilder_example_text("c"));
  expect_canonical(obuilder_example_text("c/"));
  EXPECT_EQ(parse_ok(obuilder_example_text("c/")), obuilder_example("c/"));
}

// Expected texts produced by OBuilder's own Spec.pp (lib_spec/spec.ml, with
// Sexplib 0.15 and Fmt 0.9) from the one-line inputs: kiln's canonical form
// must stay byte-identical to OBuilder's.
struct OBuilderGolden {
  const char* name;
  const char* input;
  const char* obuilder_output;
};

const OBuilderGolden kOBuilderGoldens[] = {
    {"NestedBuildsRunsAndCopies",
     R"spec(((build outer ((build inner ((from alpine) (run (cache (c (target /c))) (network host) (shell "make all")) (copy (from context) (src src/main.c src/util.c include/) (dst /work/src/)))) (from debian) (copy (from (build inner)) (src /work/src/a.out) (dst /usr/local/bin/tool-with-a-long-name)) (user (uid 1000) (gid 1000)))) (from busybox) (copy (from (build outer)) (src /usr/local/bin/tool-with-a-long-name) (dst /bin/tool)) (run (secrets (npm (target /run/secrets/npm) (buildkit_options ((mode 0400))))) (shell "tool --version"))))spec",
     R"spec(((build outer
        ((build inner
                ((from alpine)
                 (run (cache (c (target /c)))
                      (network host)
                      (shell "make all"))
                 (copy (src src/main.c src/util.c include/) (dst /work/src/))))
         (from debian)
         (copy (from (build inner))
               (src /work/src/a.out)
               (dst /usr/local/bin/tool-with-a-long-name))
         (user (uid 1000) (gid 1000))))
 (from busybox)
 (copy (from (build outer))
       (src /usr/local/bin/tool-with-a-long-name)
       (dst /bin/tool))
 (run (secrets (npm (target /run/secrets/npm) (buildkit_options ((mode 0400)))))
      (shell "tool --version"))
)
)spec"},
    {"CopyWidthBoundaryAtTopLevelAndInAChildBuild",
     R"spec(((build b ((from x) (copy (src aaaaaaaaaa) (dst ddddddddddddddddddddddddddddddddddddddd)) (copy (src aaaaaaaaaa) (dst dddddddddddddddddddddddddddddddddddddddd)))) (from base) (copy (src aaaaaaaaaa) (dst ddddddddddddddddddddddddddddddddddddddddddddddd)) (copy (src aaaaaaaaaa) (dst dddddddddddddddddddddddddddddddddddddddddddddddd))))spec",
     R"spec(((build b
        ((from x)
         (copy (src aaaaaaaaaa) (dst ddddddddddddddddddddddddddddddddddddddd))
         (copy (src aaaaaaaaaa)
               (dst dddddddddddddddddddddddddddddddddddddddd))))
 (from base)
 (copy (src aaaaaaaaaa) (dst ddddddddddddddddddddddddddddddddddddddddddddddd))
 (copy (src aaaaaaaaaa)
       (dst dddddddddddddddddddddddddddddddddddddddddddddddd))
)
)spec"},
    {"QuotedAtoms",
     R"spec(((from "my image") (comment "") (env "A B" "#|x") (workdir "caf\195\169") (shell /bin/sh -c "a;b") (run (shell "printf '%s\\n' \"$X\""))))spec",
     R"spec(((from "my image")
 (comment "")
 (env "A B" "#|x")
 (workdir "caf\195\169")
 (shell /bin/sh -c "a;b")
 (run (shell "printf '%s\\n' \"$X\""))
)
)spec"},
};

TEST(SpecPrint, MatchesOBuilderGoldens) {
  for (const OBuilderGolden& golden : kOBuilderGoldens) {
    SCOPED_TRACE(golden.name);
    Spec s = parse_ok(golden.input);
    EXPECT_EQ(print_spec(s), golden.obuilder_output);
    EXPECT_EQ(parse_ok(golden.obuilder_output), s);
  }
}

TEST(SpecPrint, ReformatsFreeFormInput) {
  Spec s = parse_ok(
      "; a comment\n"
      "((from base) (run (network host)\n"
      "   (shell \"x\")) #| gone |# (user (gid 2) (uid 1)) #;(env A B)\n"
      " (copy (dst /d/) (src a b) (from context)))");
  EXPECT_EQ(print_spec(s),
            "((from base)\n"
            " (run (network host)\n"
            "      (shell x))\n"
            " (user (uid 1) (gid 2))\n"
            " (copy (src a b) (dst /d/))\n"
            ")\n");
}

TEST(SpecPrint, SingleItemSpecStillClosesOnItsOwnLine) {
  expect_canonical("((from base)\n)\n");
}

// A copy stays on one line while the whole line, closing parenthesis
// included, fits in 78 columns (OCaml Format's margin, as OBuilder prints).
TEST(SpecPrint, CopyBreaksOnlyWhenTooWide) {
  // " (copy " is 7 columns; fields of 70 characters and the ')' make 78.
  std::string dst70 = std::string(70 - std::string("(src a) (dst )").size(), 'd');
  std::string fits = " (copy (src a) (dst " + dst70 + "))";
  EXPECT_EQ(fits.size(), 78u);
  expect_canonical("((from base)\n" + fits + "\n)\n");
  std::string dst71 = dst70 + "d";
  expect_canonical("((from base)\n (copy (src a)\n       (dst " + dst71 + "))\n)\n");
  Spec s = parse_ok("((from base) (copy (src a) (dst " + dst71 + ")))");
  EXPECT_EQ(print_op(s.ops[0]), "(copy (src a) (dst " + dst71 + "))");
}

TEST(SpecPrint, CopyWidthCountsTheIndentOfNestedBuilds) {
  // The same copy fits at the top level but not inside a child build, whose
  // items start 9 columns further right.
  std::string dst = std::string(55, 'd');
  std::string copy = "(copy (src a) (dst " + dst + "))";
  expect_canonical("((from base)\n " + copy + "\n)\n");
  expect_canonical(
      "((build b\n"
      "        ((from x)\n"
      "         (copy (src a)\n"
      "               (dst " +
      dst +
      "))))\n"
      " (from base)\n"
      ")\n");
}

TEST(SpecPrint, NestedBuildsHangUnderTheirNames) {
  expect_canonical(
      "((build outer\n"
      "        ((build inner\n"
      "                ((from a)\n"
      "                 (run (network host)\n"
      "                      (shell \"make\\nmake install\"))))\n"
      "         (from b)\n"
      "         (copy (from (build inner)) (src /x) (dst /y))))\n"
      " (build \"odd name\"\n"
      "        ((from c)))\n"
      " (from base)\n"
      " (copy (from (build outer)) (src /y) (dst /z))\n"
      ")\n");
}

TEST(SpecPrint, EscapesRoundTrip) {
  expect_canonical(
      "((from base)\n"
      " (comment \"caf\\195\\169 \\\"q\\\" b\\\\s\\t\\000\")\n"
      " (env E \"\")\n"
      ")\n");
  Spec s = parse_ok("((from base) (env E \"a\\x41\\066 \\\n    c\"))");
  EXPECT_EQ(std::get<Env>(s.ops[0].kind).value, "aAB c");
  EXPECT_EQ(print_op(s.ops[0]), "(env E \"aAB c\")");
}

TEST(SpecPrint, EveryFieldOfEveryOpRoundTrips) {
  expect_canonical(
      "((build b\n"
      "        ((from x)))\n"
      " (from base)\n"
      " (comment hi)\n"
      " (workdir /w)\n"
      " (shell /bin/sh -c)\n"
      " (env K V)\n"
      " (user (name Zaphod))\n"
      " (user (uid 1000) (gid 1000))\n"
      " (run (cache (c (target /c) (buildkit_options ((sharing locked) (k v)))))\n"
      "      (network host bridge)\n"
      "      (secrets (s (target /run/secrets/s) (buildkit_options ((mode 0400)))))\n"
      "      (shell \"echo $HOME\"))\n"
      " (copy (from (build b)) (src x y) (dst /d/) (exclude .git))\n"
      ")\n");
}

}  // namespace
}  // namespace kiln::spec
