// parse_spec and validate: every operation, field order, defaults, and every
// error with its exact place and wording.
#include "common/spec/spec.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace kiln::spec {
namespace {

Spec parse_ok(std::string_view text) {
  auto r = parse_spec(text, "t.spec");
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? *r : Spec{};
}

std::string parse_error(std::string_view text) {
  auto r = parse_spec(text, "t.spec");
  EXPECT_FALSE(r.has_value()) << "unexpectedly parsed:\n" << print_spec(*r);
  if (r) return "";
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  return r.error().message();
}

// The single op of "((from base) OP)".
OpKind only_op(std::string_view op_text) {
  Spec s = parse_ok("((from base) " + std::string(op_text) + ")");
  EXPECT_EQ(s.ops.size(), 1u);
  return s.ops.empty() ? OpKind{} : s.ops[0].kind;
}

TEST(SpecParse, EveryOperation) {
  EXPECT_EQ(only_op("(comment \"hello world\")"), OpKind(Comment{"hello world"}));
  EXPECT_EQ(only_op("(workdir /src)"), OpKind(Workdir{"/src"}));
  EXPECT_EQ(only_op("(shell /bin/sh -c)"), OpKind(Shell{{"/bin/sh", "-c"}}));
  EXPECT_EQ(only_op("(env DEBUG 1)"), OpKind(Env{"DEBUG", "1"}));
  EXPECT_EQ(only_op("(user (uid 1000) (gid 100))"), OpKind(SetUser{UnixUser{1000, 100}}));
  EXPECT_EQ(only_op("(user (name Zaphod))"), OpKind(SetUser{WindowsUser{"Zaphod"}}));
  EXPECT_EQ(only_op("(run (shell \"make\"))"), OpKind(spec::Run{{}, {}, {}, "make"}));
  EXPECT_EQ(
      only_op("(run (cache (c1 (target /c)) (c2 (target /d) (buildkit_options (sharing locked) (mode 0700))))"
              " (network host) (secrets (s1 (target /run/secrets/s1))) (shell \"make\"))"),
      OpKind(spec::Run{{{"c1", "/c", {}}, {"c2", "/d", {{"sharing", "locked"}, {"mode", "0700"}}}},
                       {"host"},
                       {{"s1", "/run/secrets/s1", {}}},
                       "make"}));
  EXPECT_EQ(only_op("(copy (src a) (dst b))"), OpKind(Copy{std::nullopt, {"a"}, "b", {}}));
  EXPECT_EQ(only_op("(copy (from context) (src a b) (dst d/) (exclude .git _build))"),
            OpKind(Copy{std::nullopt, {"a", "b"}, "d/", {".git", "_build"}}));
}

TEST(SpecParse, EveryOperationPrintsAsOneLine) {
  Spec s = parse_ok(
      "((build b ((from x)))"
      " (from base) (comment \"hello world\") (workdir /src) (shell /bin/sh -c) (env DEBUG 1)"
      " (user (gid 2) (uid 1)) (user (name Zaphod))"
      " (run (shell make) (network host) (cache (c (buildkit_options (k v)) (target /c))))"
      " (copy (dst d) (from (build b)) (src a)))");
  std::vector<std::string> printed;
  for (const Op& op : s.ops) printed.push_back(print_op(op));
  EXPECT_EQ(printed,
            (std::vector<std::string>{
                "(comment \"hello world\")",
                "(workdir /src)",
                "(shell /bin/sh -c)",
                "(env DEBUG 1)",
                "(user (uid 1) (gid 2))",
                "(user (name Zaphod))",
                "(run (cache (c (target /c) (buildkit_options ((k v))))) (network host) (shell make))",
                "(copy (from (build b)) (src a) (dst d))",
            }));
  std::vector<std::string> names;
  for (const Op& op : s.ops) names.emplace_back(op_name(op.kind));
  EXPECT_EQ(names,
            (std::vector<std::string>{"comment", "workdir", "shell", "env", "user", "user", "run", "copy"}));
}

TEST(SpecParse, FieldOrderDoesNotMatter) {
  EXPECT_EQ(only_op("(run (shell x) (secrets (s (target /s))) (network host) (cache (c (target /c))))"),
            only_op("(run (cache (c (target /c))) (network host) (secrets (s (target /s))) (shell x))"));
  Spec s = parse_ok("((build b ((from x))) (from base) (copy (exclude e) (dst d) (src s) (from (build b))))");
  EXPECT_EQ(s.ops.at(0).kind, OpKind(Copy{"b", {"s"}, "d", {"e"}}));
  EXPECT_EQ(only_op("(user (gid 2) (uid 1))"), OpKind(SetUser{UnixUser{1, 2}}));
  EXPECT_EQ(only_op("(run (cache (c (buildkit_options (k v)) (target /c))) (shell x))"),
            only_op("(run (cache (c (target /c) (buildkit_options (k v)))) (shell x))"));
}

// OBuilder writes buildkit options as one list of pairs (ppx_sexp_conv's
// [@sexp.list] record field); the flat form is accepted as well, and both
// print as OBuilder's.
TEST(SpecParse, BuildkitOptionsInBothForms) {
  OpKind obuilder_form =
      only_op("(run (secrets (s (target /s) (buildkit_options ((k v) (k2 v2))))) (shell x))");
  OpKind flat_form = only_op("(run (secrets (s (target /s) (buildkit_options (k v) (k2 v2)))) (shell x))");
  EXPECT_EQ(obuilder_form, flat_form);
  EXPECT_EQ(std::get<spec::Run>(obuilder_form).secrets.at(0).buildkit_options,
            (KeyValues{{"k", "v"}, {"k2", "v2"}}));
  EXPECT_EQ(print_op(Op{obuilder_form, {}}),
            "(run (secrets (s (target /s) (buildkit_options ((k v) (k2 v2))))) (shell x))");
  // A single pair in OBuilder's form, and OBuilder's empty list.
  EXPECT_EQ(std::get<spec::Run>(only_op("(run (cache (c (target /c) (buildkit_options ((k v))))) (shell x))"))
                .caches.at(0)
                .buildkit_options,
            (KeyValues{{"k", "v"}}));
  EXPECT_TRUE(std::get<spec::Run>(only_op("(run (cache (c (target /c) (buildkit_options ()))) (shell x))"))
                  .caches.at(0)
                  .buildkit_options.empty());
  EXPECT_EQ(
      parse_error("((from a)\n (run (cache (c (target /c) (buildkit_options ((k v) (k))))) (shell x)))"),
      "t.spec:2:54: a buildkit option must be (KEY VALUE) in (c (target /c) (buildkit_options ((k v) (k)))) "
      "(a cache is (ID (target PATH)) with optional (buildkit_options ((KEY VALUE)...)))");
}

TEST(SpecParse, DefaultsAndEmptyLists) {
  Copy copy = std::get<Copy>(only_op("(copy (from context) (src a) (dst b))"));
  EXPECT_FALSE(copy.from_build.has_value());
  EXPECT_EQ(print_op(Op{copy, {}}), "(copy (src a) (dst b))");
  spec::Run run = std::get<spec::Run>(only_op("(run (cache) (network) (secrets) (shell x))"));
  EXPECT_EQ(run, (spec::Run{{}, {}, {}, "x"}));
  EXPECT_EQ(print_op(Op{run, {}}), "(run (shell x))");
  EXPECT_EQ(print_op(Op{std::get<Copy>(only_op("(copy (src a) (dst b) (exclude))")), {}}),
            "(copy (src a) (dst b))");
}

TEST(SpecParse, StagesAndPositions) {
  Spec s = parse_ok(
      "((build one ((from a) (run (shell x))))\n"
      " (build two ((build inner ((from c))) (from b)))\n"
      " (from base)\n"
      " (copy (from (build two)) (src /x) (dst /y)))");
  ASSERT_EQ(s.child_builds.size(), 2u);
  EXPECT_EQ(s.child_builds[0].name, "one");
  EXPECT_EQ(s.child_builds[0].spec.from, "a");
  EXPECT_EQ(s.child_builds[1].spec.child_builds[0].name, "inner");
  EXPECT_EQ(s.child_builds[1].pos.line, 2);
  EXPECT_EQ(s.child_builds[1].pos.column, 2);
  EXPECT_EQ(s.from, "base");
  EXPECT_EQ(s.from_pos.line, 3);
  EXPECT_EQ(s.ops[0].pos.line, 4);
  EXPECT_EQ(s.ops[0].pos.column, 2);
  EXPECT_EQ(std::get<Copy>(s.ops[0].kind).from_build, "two");
}

TEST(SpecParse, ReaderErrorsCarryTheFileName) {
  EXPECT_EQ(parse_error("((from base)\n (run (shell \"x)))"),
            "t.spec:2:14: unterminated string (a string opened with '\"' must be closed with '\"')");
}

TEST(SpecParse, StructureErrors) {
  EXPECT_EQ(parse_error("base"),
            "t.spec:1:1: expected a spec (a list) in base (a spec is ((build NAME SPEC)... "
            "(from IMAGE) OPERATION...): child builds first, then the base image, then "
            "operations)");
  EXPECT_EQ(
      parse_error("((build a ((from x)))\n (run (shell y)))"),
      "t.spec:2:2: operation \"run\" before (from IMAGE) in (run (shell y)) (operations come after (from "
      "IMAGE); only (build NAME SPEC) items may precede it)");
  EXPECT_EQ(
      parse_error("((build a ((from x))))"),
      "t.spec:1:1: missing (from IMAGE) in ((build a ((from x)))) (every spec and every child build needs "
      "a base image: add (from IMAGE) after its (build ...) items)");
  EXPECT_EQ(
      parse_error("((build a ((run (shell x))))\n (from y))"),
      "t.spec:1:12: operation \"run\" before (from IMAGE) in (run (shell x)) (operations come after (from "
      "IMAGE); only (build NAME SPEC) items may precede it)");
  EXPECT_EQ(parse_error("((from)\n)"),
            "t.spec:1:2: malformed (from) in (from) ((from IMAGE) names exactly one base image)");
  EXPECT_EQ(parse_error("((from a)\n (from b))"),
            "t.spec:2:2: second (from) in (from b) (a spec has exactly one (from IMAGE))");
  EXPECT_EQ(parse_error("((from a)\n (build b ((from c))))"),
            "t.spec:2:2: (build ...) after (from) in (build b ((from c))) (child builds come before (from "
            "IMAGE); move it up)");
  EXPECT_EQ(
      parse_error("((build b (from c)) (from a))"),
      "t.spec:1:11: the spec of build \"b\" is one form, not a list of items in (build b (from c)) (a child "
      "build is (build NAME ((from IMAGE) OPERATION...)): note the double parentheses)");
  EXPECT_EQ(parse_error("((build (b) ((from c))) (from a))"),
            "t.spec:1:2: malformed (build) in (build (b) ((from c))) (a child build is (build NAME ((from "
            "IMAGE) OPERATION...)))");
  EXPECT_EQ(parse_error("(x (from a))"),
            "t.spec:1:2: unexpected item in x (a spec is ((build NAME SPEC)... (from IMAGE) OPERATION...): "
            "child builds first, then the base image, then operations)");
}

TEST(SpecParse, OperationErrors) {
  EXPECT_EQ(
      parse_error("((from a)\n\n (rnu (shell \"make\")))"),
      "t.spec:3:2: unknown operation \"rnu\" in (rnu (shell make)) (did you mean \"run\"? expected one of "
      "comment, workdir, "
      "shell, run, copy, user, env)");
  EXPECT_EQ(
      parse_error("((from a) run)"),
      "t.spec:1:11: expected an operation in run (an operation is a list such as (run (shell CMD)); one "
      "of comment, workdir, shell, run, copy, user, env)");
  EXPECT_EQ(parse_error("((from a) (comment a b))"),
            "t.spec:1:22: \"comment\" needs exactly one atom in (comment a b) ((comment TEXT) takes one text "
            "atom)");
  EXPECT_EQ(
      parse_error("((from a) (workdir (x)))"),
      "t.spec:1:20: \"workdir\" needs exactly one atom in (workdir (x)) ((workdir PATH) takes one non-empty "
      "path)");
  EXPECT_EQ(parse_error("((from a) (shell))"),
            "t.spec:1:11: empty shell in (shell) ((shell PROGRAM ARG...) names at least the program)");
  EXPECT_EQ(
      parse_error("((from a) (shell sh (c)))"),
      "t.spec:1:21: \"shell\" takes atoms, not a list in (shell sh (c)) ((shell PROGRAM ARG...) names at "
      "least the program)");
  EXPECT_EQ(parse_error("((from a) (env A))"),
            "t.spec:1:11: malformed env in (env A) ((env NAME VALUE) takes a non-empty name and a value)");
  EXPECT_EQ(parse_error("((from a) (env \"\" v))"),
            "t.spec:1:16: empty variable name in (env \"\" v) ((env NAME VALUE) takes a non-empty name and a "
            "value)");
}

TEST(SpecParse, EmptyNamesAndPathsAreRefused) {
  EXPECT_EQ(parse_error("((from \"\"))"),
            "t.spec:1:8: empty image name in (from \"\") ((from IMAGE) names exactly one base image)");
  EXPECT_EQ(parse_error("((from a)\n (workdir \"\"))"),
            "t.spec:2:11: empty workdir in (workdir \"\") ((workdir PATH) takes one non-empty path)");
  EXPECT_EQ(
      parse_error("((build \"\" ((from x)))\n (from a))"),
      "t.spec:1:9: empty build name in (build \"\" ((from x))) (a child build is (build NAME ((from IMAGE) "
      "OPERATION...)))");
  EXPECT_EQ(parse_error("((from a)\n (run (cache (\"\" (target /x))) (shell x)))"),
            "t.spec:2:15: empty id in (\"\" (target /x)) (a cache is (ID (target PATH)) with optional "
            "(buildkit_options ((KEY VALUE)...)))");
  EXPECT_EQ(
      parse_error("((from a)\n (copy (src a) (dst \"\")))"),
      "t.spec:2:21: field \"dst\" is empty in (copy (src a) (dst \"\")) (copy takes the fields from, src, "
      "dst, exclude, in any order; src and dst are required)");
  EXPECT_EQ(parse_error("((from a)\n (user (name \"\")))"),
            "t.spec:2:14: field \"name\" is empty in (user (name \"\")) (a user is (user (uid N) (gid N)) or "
            "(user (name NAME)))");
}

TEST(SpecParse, RunErrors) {
  EXPECT_EQ(
      parse_error("((from a)\n (run (network host)))"),
      "t.spec:2:2: missing field \"shell\" in (run (network host)) (run takes the fields cache, network, "
      "secrets, shell, in any order; shell is required)");
  EXPECT_EQ(
      parse_error("((from a)\n (run (shell x) (netwrk host)))"),
      "t.spec:2:17: unknown field \"netwrk\" in (run (shell x) (netwrk host)) (did you mean \"network\"? run "
      "takes the fields cache, "
      "network, secrets, shell, in any order; shell is required)");
  EXPECT_EQ(
      parse_error("((from a)\n (run (shell x) (shell y)))"),
      "t.spec:2:17: duplicate field \"shell\" in (run (shell x) (shell y)) (run takes the fields cache, "
      "network, secrets, shell, in any order; shell is required)");
  EXPECT_EQ(parse_error("((from a)\n (run (shell x y)))"),
            "t.spec:2:7: field \"shell\" needs exactly one atom in (run (shell x y)) (run takes the fields "
            "cache, network, secrets, shell, in any order; shell is required)");
  EXPECT_EQ(
      parse_error("((from a)\n (run shell))"),
      "t.spec:2:7: expected a field (NAME VALUE...) in (run shell) (run takes the fields cache, network, "
      "secrets, shell, in any order; shell is required)");
  EXPECT_EQ(parse_error("((from a)\n (run (cache (c)) (shell x)))"),
            "t.spec:2:14: missing field \"target\" for \"c\" in (c) (a cache is (ID (target PATH)) with "
            "optional (buildkit_options ((KEY VALUE)...)))");
  EXPECT_EQ(parse_error("((from a)\n (run (secrets (s (targt /s))) (shell x)))"),
            "t.spec:2:19: unknown field \"targt\" in (s (targt /s)) (did you mean \"target\"? a secret is "
            "(ID (target PATH)) with "
            "optional (buildkit_options ((KEY VALUE)...)))");
  EXPECT_EQ(parse_error("((from a)\n (run (cache (c (target /c) (buildkit_options (k)))) (shell x)))"),
            "t.spec:2:47: a buildkit option must be (KEY VALUE) in (c (target /c) (buildkit_options (k))) (a "
            "cache is (ID (target PATH)) with optional (buildkit_options ((KEY VALUE)...)))");
  EXPECT_EQ(parse_error("((from a)\n (run (cache c) (shell x)))"),
            "t.spec:2:14: expected (ID (target PATH)...) in c (a cache is (ID (target PATH)) with optional "
            "(buildkit_options ((KEY VALUE)...)))");
  EXPECT_EQ(parse_error("((from a)\n (run (cache (c (target \"\"))) (shell x)))"),
            "t.spec:2:25: field \"target\" is empty in (c (target \"\")) (a cache is (ID (target PATH)) with "
            "optional (buildkit_options ((KEY VALUE)...)))");
}

TEST(SpecParse, CopyErrors) {
  constexpr std::string_view rule =
      "(copy takes the fields from, src, dst, exclude, in any order; src and dst are required)";
  EXPECT_EQ(parse_error("((from a)\n (copy (src x)))"),
            fmt::format("t.spec:2:2: missing field \"dst\" in (copy (src x)) {}", rule));
  EXPECT_EQ(parse_error("((from a)\n (copy (dst x)))"),
            fmt::format("t.spec:2:2: missing field \"src\" in (copy (dst x)) {}", rule));
  EXPECT_EQ(parse_error("((from a)\n (copy (src) (dst x)))"),
            "t.spec:2:8: no source paths in (copy (src) (dst x)) ((src PATH...) needs at least one path)");
  EXPECT_EQ(
      parse_error("((from a)\n (copy (src a b) (dst /x)))"),
      "t.spec:2:18: 2 sources copied to \"/x\" in (copy (src a b) (dst /x)) (when copying several sources "
      "the destination is a directory and must end with '/')");
  EXPECT_EQ(
      parse_error("((from a)\n (copy (from ctx) (src a) (dst b)))"),
      "t.spec:2:8: invalid data source in (copy (from ctx) (src a) (dst b)) (a copy reads (from context) or "
      "(from (build NAME)))");
  EXPECT_EQ(parse_error("((from a)\n (copy (from (stage x)) (src a) (dst b)))"),
            "t.spec:2:8: invalid data source in (copy (from (stage x)) (src a) (dst b)) (a copy reads (from "
            "context) or (from (build NAME)))");
  EXPECT_EQ(parse_error("((from a)\n (copy (src a) (dst b) (exclude (x))))"),
            fmt::format(
                "t.spec:2:33: \"exclude\" takes atoms, not a list in (copy (src a) (dst b) (exclude (x))) {}",
                rule));
  EXPECT_EQ(
      parse_error("((from a)\n (copy (src a) (dst b) (dest c)))"),
      fmt::format("t.spec:2:24: unknown field \"dest\" in (copy (src a) (dst b) (dest c)) (did you mean "
                  "\"dst\"? {}",
                  rule.substr(1)));
}

TEST(SpecParse, UserErrors) {
  constexpr std::string_view rule = "(a user is (user (uid N) (gid N)) or (user (name NAME)))";
  EXPECT_EQ(parse_error("((from a)\n (user (uid 1)))"),
            fmt::format("t.spec:2:2: missing field \"gid\" in (user (uid 1)) {}", rule));
  EXPECT_EQ(parse_error("((from a)\n (user (gid 1)))"),
            fmt::format("t.spec:2:2: missing field \"uid\" in (user (gid 1)) {}", rule));
  EXPECT_EQ(
      parse_error("((from a)\n (user (uid -1) (gid 1)))"),
      "t.spec:2:13: uid \"-1\" is not a non-negative decimal integer in (user (uid -1) (gid 1)) (a user is "
      "(user (uid N) (gid N)) or (user (name NAME)); ids range from 0 to 2147483647)");
  EXPECT_EQ(
      parse_error("((from a)\n (user (uid 1) (gid 0x10)))"),
      "t.spec:2:21: gid \"0x10\" is not a non-negative decimal integer in (user (uid 1) (gid 0x10)) (a user "
      "is (user (uid N) (gid N)) or (user (name NAME)); ids range from 0 to 2147483647)");
  EXPECT_NE(parse_error("((from a) (user (uid 2147483648) (gid 1)))").find("uid \"2147483648\" is not"),
            std::string::npos);
  EXPECT_EQ(
      parse_error("((from a)\n (user (name x) (uid 1)))"),
      fmt::format("t.spec:2:17: a user has either uid/gid or a name, not both in (user (name x) (uid 1)) {}",
                  rule));
  EXPECT_EQ(parse_error("((from a)\n (user (uid 1) (uid 2)))"),
            fmt::format("t.spec:2:16: duplicate field \"uid\" in (user (uid 1) (uid 2)) {}", rule));
  EXPECT_EQ(only_op("(user (uid 2147483647) (gid 0))"), OpKind(SetUser{UnixUser{2147483647, 0}}));
}

TEST(SpecParse, LongFormsAreTruncatedInErrors) {
  std::string long_command(200, 'x');
  std::string message = parse_error("((from a) (run (shell " + long_command + ") (bogus)))");
  std::string form = "(run (shell " + std::string(65, 'x') + "...";
  EXPECT_EQ(form.size(), 80u);
  EXPECT_NE(message.find(" in " + form + " (run takes"), std::string::npos) << message;
}

// --- Scoping (validate) ---

TEST(SpecScope, EarlierSiblingIsInScope) {
  parse_ok(
      "((build a ((from x)))\n"
      " (build b ((from x) (copy (from (build a)) (src f) (dst f))))\n"
      " (from x)\n"
      " (copy (from (build a)) (src f) (dst f))\n"
      " (copy (from (build b)) (src f) (dst f)))");
}

TEST(SpecScope, EnclosingStageBuildIsInScope) {
  parse_ok(
      "((build tools ((from x)))\n"
      " (build app ((build inner ((from y) (copy (from (build tools)) (src t) (dst t))))\n"
      "             (from x) (copy (from (build inner)) (src f) (dst f))))\n"
      " (from x))");
}

TEST(SpecScope, LaterSiblingIsNotInScope) {
  EXPECT_EQ(
      parse_error("((build a ((from x)\n"
                  "           (copy (from (build b)) (src f) (dst f))))\n"
                  " (build b ((from x)))\n"
                  " (from x))"),
      "t.spec:2:12: unknown build \"b\" in (copy (from (build b)) (src f) (dst f)) (a copy may read a build "
      "defined before it in the same stage or in an enclosing stage; no builds are in scope here)");
}

TEST(SpecScope, ABuildCannotReadItselfOrItsOwnChildrenFromOutside) {
  EXPECT_NE(parse_error("((build a ((from x) (copy (from (build a)) (src f) (dst f)))) (from x))")
                .find("unknown build \"a\""),
            std::string::npos);
  // `inner` is local to `outer`: the top level cannot see it.
  EXPECT_EQ(
      parse_error("((build outer ((build inner ((from x))) (from x)))\n"
                  " (from x)\n"
                  " (copy (from (build inner)) (src f) (dst f)))"),
      "t.spec:3:2: unknown build \"inner\" in (copy (from (build inner)) (src f) (dst f)) (a copy may read "
      "a build defined before it in the same stage or in an enclosing stage; builds in scope: outer)");
}

TEST(SpecScope, AnInnerBuildMayReuseAnOuterName) {
  // The inner "a" shadows the outer one inside "b"; once "b" is done the
  // outer "a" must still be in scope (and the inner one gone).
  Spec s = parse_ok(
      "((build a ((from x)))\n"
      " (build b ((build a ((from y))) (from z) (copy (from (build a)) (src f) (dst f))))\n"
      " (from w)\n"
      " (copy (from (build a)) (src f) (dst f)))");
  EXPECT_EQ(s.child_builds[1].spec.child_builds[0].name, "a");
}

TEST(SpecScope, DidYouMean) {
  EXPECT_EQ(
      parse_error("((build tools ((from x)))\n"
                  " (build base ((from x)))\n"
                  " (from x)\n"
                  " (copy (from (build tols)) (src f) (dst f)))"),
      "t.spec:4:2: unknown build \"tols\" in (copy (from (build tols)) (src f) (dst f)) (did you mean "
      "\"tools\"? a copy may read a build defined before it in the same stage or in an enclosing stage; "
      "builds in scope: base, tools)");
  // Nothing close enough: no hint, just the list.
  std::string far =
      parse_error("((build tools ((from x))) (from x) (copy (from (build zzz)) (src f) (dst f)))");
  EXPECT_EQ(far.find("did you mean"), std::string::npos);
  EXPECT_NE(far.find("builds in scope: tools"), std::string::npos);
}

TEST(SpecScope, LongScopeListsAreCut) {
  std::string text = "(";
  for (int i = 0; i < 25; ++i) text += fmt::format("(build b{:02} ((from x))) ", i);
  text += "(from x) (copy (from (build zzz)) (src a) (dst b)))";
  std::string message = parse_error(text);
  EXPECT_NE(message.find("builds in scope: b00, b01, "), std::string::npos) << message;
  EXPECT_NE(message.find(", b19 and 5 more)"), std::string::npos) << message;
  EXPECT_EQ(message.find("b20"), std::string::npos) << message;
}

TEST(SpecScope, DuplicateSiblingNames) {
  EXPECT_EQ(parse_error("((build a ((from x)))\n (build a ((from y)))\n (from z))"),
            "t.spec:2:2: duplicate build name \"a\" in (build a ((from y))) (child builds of one stage need "
            "distinct names; rename one of them)");
}

TEST(SpecScope, ValidateWorksOnBuiltSpecs) {
  Spec s;
  s.from = "x";
  Copy copy;
  copy.from_build = "missing";
  copy.src = {"a"};
  copy.dst = "b";
  s.ops.emplace_back();
  s.ops.back().kind = copy;
  auto status = validate(s, "built");
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(
      status.error().message(),
      "built: unknown build \"missing\" in (copy (from (build missing)) (src a) (dst b)) (a copy may read a "
      "build defined before it in the same stage or in an enclosing stage; no builds are in scope here)");
}

TEST(SpecLoad, ReadsAFileAndReportsMissingOnes) {
  std::string path = ::testing::TempDir() + "/spec_test_load.spec";
  std::ofstream(path) << "((from busybox)\n (run (shell \"echo hi\")))\n";
  auto spec = load_spec_file(path);
  ASSERT_TRUE(spec.has_value()) << spec.error().to_string();
  EXPECT_EQ(spec->from, "busybox");
  std::ofstream(path) << "((from busybox)\n (rnu))\n";
  auto bad = load_spec_file(path);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message().rfind(path + ":2:2: unknown operation", 0), 0u) << bad.error().message();
  std::remove(path.c_str());
  auto missing = load_spec_file(path);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(missing.error().message().find(path), std::string::npos);
  auto directory = load_spec_file(::testing::TempDir());
  ASSERT_FALSE(directory.has_value());
  EXPECT_NE(directory.error().message().find("Is a directory"), std::string::npos)
      << directory.error().message();
}

}  // namespace
}  // namespace kiln::spec
