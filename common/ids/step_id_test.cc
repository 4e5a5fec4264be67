#include "common/ids/step_id.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"
#include "common/spec/spec.h"

namespace kiln::ids {
namespace {

// ---- Building specs in code (the golden specs are also written out as text
// in comments and in docs/step-ids.md). ----

spec::Op at(spec::OpKind kind, int line = 0, int column = 0) {
  return spec::Op{std::move(kind), spec::Position{line, column}};
}
spec::Op run_op(std::string cmd) {
  spec::Run r;
  r.shell = std::move(cmd);
  return at(r);
}
spec::Op copy_op(std::vector<std::string> src, std::string dst, std::vector<std::string> exclude = {},
                 std::optional<std::string> from_build = std::nullopt) {
  return at(spec::Copy{std::move(from_build), std::move(src), std::move(dst), std::move(exclude)});
}
spec::Op env_op(std::string name, std::string value) {
  return at(spec::Env{std::move(name), std::move(value)});
}
spec::Op workdir_op(std::string p) {
  return at(spec::Workdir{std::move(p)});
}
spec::Op user_op(int uid, int gid) {
  return at(spec::SetUser{spec::UnixUser{uid, gid}});
}
spec::Op shell_op(std::vector<std::string> args) {
  return at(spec::Shell{std::move(args)});
}
spec::Spec stage(std::string from, std::vector<spec::Op> ops, std::vector<spec::ChildBuild> children = {}) {
  spec::Spec s;
  s.from = std::move(from);
  s.ops = std::move(ops);
  s.child_builds = std::move(children);
  return s;
}
spec::ChildBuild child(std::string name, spec::Spec s) {
  return spec::ChildBuild{std::move(name), std::move(s), {}};
}

// Parses a golden spec's text; the tests check it equals the spec built in code.
spec::Spec parsed(std::string_view text) {
  auto s = spec::parse_spec(text, "golden.spec");
  EXPECT_TRUE(s.has_value()) << s.error().to_string();
  return s ? std::move(*s) : spec::Spec{};
}

std::vector<Step> steps_of(const spec::Spec& s, ContextSource* context = nullptr) {
  auto steps = compute_step_ids(s, context, "test.spec");
  EXPECT_TRUE(steps.has_value()) << steps.error().to_string();
  return steps ? std::move(*steps) : std::vector<Step>{};
}

std::vector<std::string> ids_of(const spec::Spec& s, ContextSource* context = nullptr) {
  std::vector<std::string> ids;
  for (const Step& step : steps_of(s, context)) ids.push_back(step.id);
  return ids;
}

std::string final_id(const spec::Spec& s, ContextSource* context = nullptr) {
  auto ids = ids_of(s, context);
  return ids.empty() ? std::string() : ids.back();
}

// The context of golden vector 6 and of the copy property tests.
void make_golden_context(TempTree& tree) {
  tree.file("README", "kiln\n");
  tree.file("src/main.c", "int main() { return 0; }\n");
  tree.file("src/run.sh", "#!/bin/sh\nexec ./main\n", 0755);
  tree.symlink("src/link", "main.c");
  tree.file("src/.git/HEAD", "ref: refs/heads/main\n");
}

// ---- Golden vectors ----

// (from busybox)
TEST(StepIdGolden, From) {
  EXPECT_EQ(parsed("((from busybox))"), stage("busybox", {}));
  auto steps = steps_of(stage("busybox", {}));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].encoding, "(12:kiln-step-v14:from7:busybox)");
  EXPECT_EQ(steps[0].id, "d5e9a1ef27e5a8cfe08dcbc2f562c66aff901670a3c1fbc229e4826a1de07081");
  EXPECT_EQ(steps[0].parent_id, "");
}

// (from busybox)
// (comment "ignored")
// (workdir /src)
// (workdir app)
// (env PATH /usr/bin)
// (env CC gcc)
// (env PATH /bin)
// (shell /bin/bash -c)
// (user (uid 1000) (gid 1001))
// (run (network host) (secrets (token (target /run/secrets/token))) (shell "make install"))
spec::Spec golden_run_spec() {
  spec::Run r;
  r.network = {"host"};
  r.secrets = {spec::Secret{"token", "/run/secrets/token", {}}};
  r.shell = "make install";
  return stage("busybox", {at(spec::Comment{"ignored"}), workdir_op("/src"), workdir_op("app"),
                           env_op("PATH", "/usr/bin"), env_op("CC", "gcc"), env_op("PATH", "/bin"),
                           shell_op({"/bin/bash", "-c"}), user_op(1000, 1001), at(r)});
}

TEST(StepIdGolden, RunWithFullContextEncodesExactly) {
  EXPECT_EQ(parsed(R"(((from busybox)
                      (comment "ignored")
                      (workdir /src)
                      (workdir app)
                      (env PATH /usr/bin)
                      (env CC gcc)
                      (env PATH /bin)
                      (shell /bin/bash -c)
                      (user (uid 1000) (gid 1001))
                      (run (network host) (secrets (token (target /run/secrets/token))) (shell "make install"))))"),
            golden_run_spec());
  auto steps = steps_of(golden_run_spec());
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[1].encoding,
            "(12:kiln-step-v13:run"
            "(6:parent64:d5e9a1ef27e5a8cfe08dcbc2f562c66aff901670a3c1fbc229e4826a1de07081)"
            "(7:workdir8:/src/app)"
            "(4:user(3:uid4:1000)(3:gid4:1001))"
            "(3:env(2:CC3:gcc)(4:PATH4:/bin))"
            "(5:shell9:/bin/bash2:-c)"
            "(7:network4:host)"
            "(7:secrets(5:token18:/run/secrets/token))"
            "(3:cmd12:make install))");
  EXPECT_EQ(steps[1].id, "81d57be639ccef2b001c5ec447396a7886c722b0ab3cfc683433f0ee271217e1");
  EXPECT_EQ(steps[1].parent_id, steps[0].id);
}

// (from busybox)
// (run (shell "make"))
TEST(StepIdGolden, PlainRunWithDefaults) {
  EXPECT_EQ(parsed("((from busybox) (run (shell make)))"), stage("busybox", {run_op("make")}));
  auto steps = steps_of(stage("busybox", {run_op("make")}));
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[1].id, "bd31dced1b0d7032eafc706e13e8c57329b4759928114783d40d793f6bca0574");
}

// (from busybox)
// (run (cache (opam (target /root/.opam))) (shell "make"))
// Caches never reach an id: same as PlainRunWithDefaults.
TEST(StepIdGolden, CacheMountsDoNotChangeTheId) {
  spec::Run r;
  r.caches = {spec::Cache{"opam", "/root/.opam", {}}};
  r.shell = "make";
  EXPECT_EQ(parsed("((from busybox) (run (cache (opam (target /root/.opam))) (shell make)))"),
            stage("busybox", {at(r)}));
  EXPECT_EQ(final_id(stage("busybox", {at(r)})),
            "bd31dced1b0d7032eafc706e13e8c57329b4759928114783d40d793f6bca0574");
}

// (from mcr.microsoft.com/windows/nanoserver:ltsc2022)
// (user (name ContainerUser))
// (run (shell "dir"))
TEST(StepIdGolden, WindowsUser) {
  auto s = stage("mcr.microsoft.com/windows/nanoserver:ltsc2022",
                 {at(spec::SetUser{spec::WindowsUser{"ContainerUser"}}), run_op("dir")});
  EXPECT_EQ(parsed("((from mcr.microsoft.com/windows/nanoserver:ltsc2022) (user (name ContainerUser)) "
                   "(run (shell dir)))"),
            s);
  auto steps = steps_of(s);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_NE(steps[1].encoding.find("(4:user(4:name13:ContainerUser))"), std::string::npos);
  EXPECT_EQ(steps[1].id, "4c7777a42d5a61076e3fde875915eaa792b1a4f524db725d0f61549546927aca");
}

// (from busybox)
// (workdir /app)
// (user (uid 1000) (gid 1000))
// (copy (src src README) (dst ./) (exclude .git))
// with the context of make_golden_context.
TEST(StepIdGolden, CopyFromContextEncodesExactly) {
  TempTree tree;
  make_golden_context(tree);
  auto dir = DirectoryContext::open(tree.root());
  ASSERT_TRUE(dir.has_value());
  auto s =
      stage("busybox", {workdir_op("/app"), user_op(1000, 1000), copy_op({"src", "README"}, "./", {".git"})});
  EXPECT_EQ(parsed("((from busybox) (workdir /app) (user (uid 1000) (gid 1000)) "
                   "(copy (src src README) (dst ./) (exclude .git)))"),
            s);
  auto steps = steps_of(s, &*dir);
  ASSERT_EQ(steps.size(), 2u);

  // The manifests the copy records, spelled out.
  auto src = dir->manifest("src", std::vector<std::string>{".git"});
  ASSERT_TRUE(src.has_value());
  EXPECT_EQ(src->encode(),
            "(16:kiln-manifest-v1(3:dir3:src)"
            "(7:symlink8:src/link6:main.c)"
            "(4:file10:src/main.c64:deac66ccb79f6d31c0fa7d358de48e083c15c02ff50ec1ebd4b64314b9e6e1961:-)"
            "(4:file10:src/run.sh64:24c2875cd5390403226e6c0f13147d3289a515a999f177d76d8b0068220b8605"
            "1:x))");
  EXPECT_EQ(src->digest(), "967d8930404dad7720099f0ec2317d2edf1b57999b7e31525a561c99090b2472");
  EXPECT_EQ(steps[1].encoding,
            "(12:kiln-step-v14:copy"
            "(6:parent64:d5e9a1ef27e5a8cfe08dcbc2f562c66aff901670a3c1fbc229e4826a1de07081)"
            "(4:user(3:uid4:1000)(3:gid4:1000))"
            "(3:dst5:/app/)"
            "(4:from7:context)"
            "(7:exclude4:.git)"
            "(7:sources"
            "(3:src64:967d8930404dad7720099f0ec2317d2edf1b57999b7e31525a561c99090b2472)"
            "(6:README64:618b5b1845079ea7efd81bab58c33c7693ad306f6f953e132f5c397211ba42a0)))");
  EXPECT_EQ(steps[1].id, "68f6ff015c24d34b5fbbf2ea7335307e4dc5e0bd2693073536729a5027621f8e");
}

// ((build dev
//   ((from busybox)
//    (run (shell "make"))))
//  (from alpine)
//  (copy (from (build dev)) (src /src/app) (dst /usr/bin/app)))
TEST(StepIdGolden, MultiStageCopy) {
  auto s = stage("alpine", {copy_op({"/src/app"}, "/usr/bin/app", {}, "dev")},
                 {child("dev", stage("busybox", {run_op("make")}))});
  EXPECT_EQ(parsed(R"(((build dev ((from busybox) (run (shell make))))
                        (from alpine)
                        (copy (from (build dev)) (src /src/app) (dst /usr/bin/app))))"),
            s);
  auto steps = steps_of(s);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].stage, "dev");
  EXPECT_EQ(steps[1].id, "bd31dced1b0d7032eafc706e13e8c57329b4759928114783d40d793f6bca0574");
  EXPECT_EQ(steps[2].stage, "");
  EXPECT_EQ(steps[2].id, "1cb9fd9751be1fe849995d57cbb95417cc9d4ee7c17e3ff2cd5b339d7c40fe06");
  EXPECT_EQ(steps[3].encoding,
            "(12:kiln-step-v14:copy"
            "(6:parent64:1cb9fd9751be1fe849995d57cbb95417cc9d4ee7c17e3ff2cd5b339d7c40fe06)"
            "(4:user(3:uid1:0)(3:gid1:0))"
            "(3:dst12:/usr/bin/app)"
            "(4:from(5:build64:bd31dced1b0d7032eafc706e13e8c57329b4759928114783d40d793f6bca0574))"
            "(7:exclude)"
            "(7:sources7:src/app))");
  EXPECT_EQ(steps[3].id, "4132712bf440262056181138e247d7ce7592ea678fbf6b6a6f20b63e363e3ce9");
}

// ((build base ((from busybox) (run (shell "a"))))
//  (build tool
//   ((build inner ((from busybox) (copy (from (build base)) (src /x) (dst /y))))
//    (from busybox)
//    (copy (from (build inner)) (src y) (dst /z))))
//  (from busybox)
//  (copy (from (build tool)) (src z) (dst z)))
// "inner" sees "base" (an earlier sibling of its enclosing stage).
TEST(StepIdGolden, NestedStagesAndScope) {
  auto inner = stage("busybox", {copy_op({"/x"}, "/y", {}, "base")});
  auto tool = stage("busybox", {copy_op({"y"}, "/z", {}, "inner")}, {child("inner", inner)});
  auto base = stage("busybox", {run_op("a")});
  auto s = stage("busybox", {copy_op({"z"}, "z", {}, "tool")}, {child("base", base), child("tool", tool)});
  EXPECT_EQ(parsed(R"(((build base ((from busybox) (run (shell a))))
                        (build tool
                         ((build inner ((from busybox) (copy (from (build base)) (src /x) (dst /y))))
                          (from busybox)
                          (copy (from (build inner)) (src y) (dst /z))))
                        (from busybox)
                        (copy (from (build tool)) (src z) (dst z))))"),
            s);
  auto steps = steps_of(s);
  std::vector<std::pair<std::string, std::string>> got;
  for (const Step& step : steps) got.emplace_back(step.stage, step.id);
  const std::string from = "d5e9a1ef27e5a8cfe08dcbc2f562c66aff901670a3c1fbc229e4826a1de07081";
  std::vector<std::pair<std::string, std::string>> expected = {
      {"base", from},
      {"base", "607185196102617bbf480c9ecadfb0243188ceeb4a99abdd9a6e0578995f2263"},
      {"tool/inner", from},
      {"tool/inner", "d42e14680acfd9a6f2eca047c9669c819ede2b0fa2600a62356b893d6cb67b2a"},
      {"tool", from},
      {"tool", "0ef0ddd8b9035b935dcb8d04aa2c716413f132e6e759d685b7b77efdd611dc79"},
      {"", from},
      {"", "4f6d108d74412ccde2f4dd7e31651c8351d34ee9443119a50c7d12648fd9600b"},
  };
  EXPECT_EQ(got, expected);
}

// ---- Step metadata ----

TEST(StepIds, StepsCarryKindParentStageDescriptionAndPosition) {
  spec::Spec s =
      stage("busybox", {at(spec::Comment{"c"}, 2, 2), run_op("make"), copy_op({"/out"}, "/bin/", {}, "dev")},
            {child("dev", stage("alpine", {}))});
  s.from_pos = {1, 30};
  s.ops[1].pos = {3, 2};
  s.ops[2].pos = {4, 2};
  auto steps = steps_of(s);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].stage, "dev");
  EXPECT_EQ(steps[0].kind, StepKind::kFrom);
  EXPECT_EQ(steps[0].description, "(from alpine)");
  EXPECT_EQ(steps[1].kind, StepKind::kFrom);
  EXPECT_EQ(steps[1].stage, "");
  EXPECT_EQ(steps[1].pos.line, 1);
  EXPECT_EQ(steps[1].pos.column, 30);
  EXPECT_EQ(steps[2].kind, StepKind::kRun);
  EXPECT_EQ(steps[2].parent_id, steps[1].id);
  EXPECT_EQ(steps[2].pos.line, 3);
  EXPECT_EQ(steps[2].description, spec::print_op(s.ops[1]));
  EXPECT_EQ(steps[3].description, spec::print_op(s.ops[2]));
  EXPECT_EQ(steps[3].kind, StepKind::kCopy);
  EXPECT_EQ(steps[3].parent_id, steps[2].id);
  EXPECT_NE(steps[3].encoding.find(steps[0].id), std::string::npos);  // the child's final id
  EXPECT_EQ(steps[3].pos.line, 4);
  EXPECT_EQ(step_kind_name(steps[3].kind), "copy");
  for (const Step& step : steps) {
    EXPECT_TRUE(is_sha256_hex(step.id));
    EXPECT_EQ(step.id, step_id_of(step.encoding));
  }
}

TEST(StepIds, ResolvesWorkdirsAndDestinations) {
  EXPECT_EQ(resolve_workdir("/", "src"), "/src");
  EXPECT_EQ(resolve_workdir("/src", "./app//"), "/src/app");
  EXPECT_EQ(resolve_workdir("/src", "/opt/"), "/opt");
  EXPECT_EQ(resolve_workdir("/src", "../x"), "/src/../x");  // ".." is left to the kernel
  EXPECT_EQ(resolve_destination("/w", "out/"), "/w/out/");
  EXPECT_EQ(resolve_destination("/w", "out"), "/w/out");
  EXPECT_EQ(resolve_destination("/w", "./"), "/w/");
  EXPECT_EQ(resolve_destination("/w", "/"), "/");
  EXPECT_EQ(resolve_destination("/w", "/abs//x/"), "/abs/x/");
}

// ---- Properties: what must change an id, and what must not ----

// A spec whose run and copy each see every input: the copy comes first so
// that a change to the run's context cannot reach it through its parent.
struct Variant {
  std::string image = "busybox";
  std::vector<spec::Op> before;  // context ops before both steps
  spec::Run run = [] {
    spec::Run r;
    r.network = {"host"};
    r.secrets = {spec::Secret{"token", "/run/secrets/token", {}}};
    r.shell = "make";
    return r;
  }();
  spec::Copy copy{std::nullopt, {"src"}, "out/", {".git"}};

  spec::Spec build() const {
    std::vector<spec::Op> ops = before;
    ops.push_back(at(copy));
    ops.push_back(at(run));
    return stage(image, ops);
  }
};

struct Ids {
  std::string copy;
  std::string run;
};

class StepIdProperties : public ::testing::Test {
 protected:
  void SetUp() override {
    make_golden_context(tree_);
    baseline_ = ids(Variant{});
  }
  Ids ids(const Variant& v) {
    auto dir = DirectoryContext::open(tree_.root());
    EXPECT_TRUE(dir.has_value());
    auto steps = steps_of(v.build(), &*dir);
    EXPECT_EQ(steps.size(), 3u);
    return steps.size() == 3 ? Ids{steps[1].id, steps[2].id} : Ids{};
  }
  Variant with_before(std::vector<spec::Op> ops) {
    Variant v;
    v.before = std::move(ops);
    return v;
  }
  TempTree tree_;
  Ids baseline_;
};

TEST_F(StepIdProperties, RunInputsChangeTheRunId) {
  auto changes_run = [&](const Variant& v, const char* what) {
    EXPECT_NE(ids(v).run, baseline_.run) << what;
  };
  Variant v;
  v.run.shell = "make all";
  changes_run(v, "cmd");
  v = Variant{};
  v.image = "alpine";
  changes_run(v, "parent");
  changes_run(with_before({workdir_op("/w")}), "workdir");
  changes_run(with_before({user_op(1, 1)}), "user");
  changes_run(with_before({env_op("A", "1")}), "env");
  changes_run(with_before({shell_op({"/bin/bash", "-c"})}), "shell");
  v = Variant{};
  v.run.network = {};
  changes_run(v, "network");
  v = Variant{};
  v.run.secrets[0].target = "/run/secrets/other";
  changes_run(v, "secret target");
  v = Variant{};
  v.run.secrets[0].id = "other";
  changes_run(v, "secret id");
  // The copy before the run is its parent.
  v = Variant{};
  v.copy.dst = "elsewhere/";
  changes_run(v, "parent copy");
}

TEST_F(StepIdProperties, EnvValuesChangeTheIdButOnlyTheLastBindingCounts) {
  Ids a = ids(with_before({env_op("A", "1")}));
  EXPECT_NE(ids(with_before({env_op("A", "2")})).run, a.run);
  EXPECT_EQ(ids(with_before({env_op("A", "0"), env_op("A", "1")})).run, a.run);
  Ids ab = ids(with_before({env_op("A", "1"), env_op("B", "2")}));
  EXPECT_EQ(ids(with_before({env_op("B", "2"), env_op("A", "1")})).run, ab.run);
}

TEST_F(StepIdProperties, CopyInputsChangeTheCopyId) {
  auto changes_copy = [&](const char* what) { EXPECT_NE(ids(Variant{}).copy, baseline_.copy) << what; };
  tree_.file("src/main.c", "int main() { return 1; }\n");
  changes_copy("file content");
  make_golden_context(tree_);
  ASSERT_EQ(ids(Variant{}).copy, baseline_.copy);

  ASSERT_EQ(::chmod(tree_.host("src/main.c").c_str(), 0755), 0);
  changes_copy("exec bit");
  make_golden_context(tree_);

  tree_.symlink("src/link", "run.sh");
  changes_copy("symlink target");
  make_golden_context(tree_);

  tree_.file("src/new.h", "");
  changes_copy("a new file");
  tree_.remove("src/new.h");

  tree_.dir("src/empty");
  changes_copy("a new empty directory");
  tree_.remove("src/empty");
  ASSERT_EQ(ids(Variant{}).copy, baseline_.copy);

  Variant v;
  v.copy.dst = "out";
  EXPECT_NE(ids(v).copy, baseline_.copy) << "dst without trailing slash";
  v.copy.dst = "/elsewhere/";
  EXPECT_NE(ids(v).copy, baseline_.copy) << "dst elsewhere";
  v.copy.dst = "/out/";
  EXPECT_EQ(ids(v).copy, baseline_.copy) << "\"out/\" in workdir / is \"/out/\"";
  EXPECT_NE(ids(with_before({workdir_op("/w")})).copy, baseline_.copy)
      << "relative dst under another workdir";
  EXPECT_NE(ids(with_before({user_op(5, 5)})).copy, baseline_.copy) << "owner of copied files";
  v = Variant{};
  v.copy.src = {"src/main.c"};
  EXPECT_NE(ids(v).copy, baseline_.copy) << "source";
}

TEST_F(StepIdProperties, IrrelevantInputsDoNotChangeIds) {
  // Cache mounts.
  Variant v;
  v.run.caches = {spec::Cache{"ccache", "/root/.ccache", {}}};
  EXPECT_EQ(ids(v).run, baseline_.run) << "cache mounts";
  // Secret values cannot reach an id: compute_step_ids never receives them.
  // What a secret's buildkit options say is docker-only and left out too.
  v = Variant{};
  v.run.secrets[0].buildkit_options = {{"mode", "0400"}};
  EXPECT_EQ(ids(v).run, baseline_.run) << "secret buildkit options";
  // Comments.
  Ids commented = ids(with_before({at(spec::Comment{"hello"})}));
  EXPECT_EQ(commented.copy, baseline_.copy);
  EXPECT_EQ(commented.run, baseline_.run);
  // Env, shell and network do not change what a copy writes.
  EXPECT_EQ(ids(with_before({env_op("A", "1"), shell_op({"/bin/bash", "-c"})})).copy, baseline_.copy);
  // Spellings of the same workdir.
  Ids w = ids(with_before({workdir_op("/w")}));
  EXPECT_EQ(ids(with_before({workdir_op("/w/./")})).run, w.run);
  EXPECT_EQ(ids(with_before({workdir_op("/"), workdir_op("w")})).run, w.run);
  // Exclude order and repeats.
  v = Variant{};
  v.copy.exclude = {".git", ".git"};
  EXPECT_EQ(ids(v).copy, baseline_.copy);
  // Excluded files.
  tree_.file("src/.git/HEAD", "something else");
  tree_.file("src/.git/objects/new", "x");
  EXPECT_EQ(ids(Variant{}).copy, baseline_.copy) << "excluded files";
  // Files outside the copied source.
  tree_.file("unrelated", "x");
  EXPECT_EQ(ids(Variant{}).copy, baseline_.copy) << "files outside the source";
  // Modification times.
  struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, tree_.host("src/main.c").c_str(), times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, tree_.host("src").c_str(), times, 0), 0);
  EXPECT_EQ(ids(Variant{}).copy, baseline_.copy) << "mtimes";
}

TEST(StepIds, DirectoryAndWholeContextManifestGiveTheSameIds) {
  TempTree tree;
  make_golden_context(tree);
  auto dir = DirectoryContext::open(tree.root());
  auto whole = ContextManifest::from_directory(tree.root());
  ASSERT_TRUE(dir.has_value());
  ASSERT_TRUE(whole.has_value());
  auto parsed = ContextManifest::parse(whole->serialize());
  ASSERT_TRUE(parsed.has_value());
  auto s = Variant{}.build();
  EXPECT_EQ(ids_of(s, &*dir), ids_of(s, &*parsed));
}

// Every example spec in the repository gets a full id chain from the example
// context, the same through a directory walk and a whole-context manifest.
TEST(StepIds, ExampleSpecs) {
  const char* source_dir = std::getenv("KILN_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "run through ctest, which sets KILN_SOURCE_DIR";
  std::string examples = std::string(source_dir) + "/examples";
  auto dir = DirectoryContext::open(examples + "/context");
  ASSERT_TRUE(dir.has_value()) << dir.error().to_string();
  auto whole = ContextManifest::from_directory(examples + "/context");
  ASSERT_TRUE(whole.has_value()) << whole.error().to_string();
  int specs = 0;
  for (const auto& file : std::filesystem::directory_iterator(examples)) {
    if (file.path().extension() != ".spec") continue;
    ++specs;
    auto s = spec::load_spec_file(file.path().string());
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    auto walked = compute_step_ids(*s, &*dir, file.path().string());
    ASSERT_TRUE(walked.has_value()) << walked.error().to_string();
    EXPECT_GE(walked->size(), 2u) << file.path();
    EXPECT_EQ(walked->back().stage, "");
    auto selected = compute_step_ids(*s, &*whole, file.path().string());
    ASSERT_TRUE(selected.has_value()) << selected.error().to_string();
    EXPECT_EQ(walked->back().id, selected->back().id) << file.path();
  }
  EXPECT_GT(specs, 0);
}

// ---- Errors ----

std::string error_of(const spec::Spec& s, ContextSource* context) {
  auto steps = compute_step_ids(s, context, "app.spec");
  return steps ? std::string() : steps.error().to_string();
}

TEST(StepIds, ContextCopyWithoutContextIsAnError) {
  auto s = stage("busybox", {at(spec::Copy{std::nullopt, {"src"}, "/src", {}}, 3, 2)});
  auto steps = compute_step_ids(s, nullptr, "app.spec");
  ASSERT_FALSE(steps.has_value());
  EXPECT_EQ(steps.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_EQ(steps.error().message(),
            "app.spec:3:2: copy: this spec copies from the build context; pass a context directory");
  // Copies from build stages need no context.
  auto staged = stage("busybox", {copy_op({"/a"}, "/a", {}, "dev")}, {child("dev", stage("busybox", {}))});
  EXPECT_TRUE(compute_step_ids(staged, nullptr).has_value());
}

TEST(StepIds, BadSourcesNameTheOpPosition) {
  TempTree tree;
  make_golden_context(tree);
  auto dir = DirectoryContext::open(tree.root());
  ASSERT_TRUE(dir.has_value());
  auto missing = stage("busybox", {at(spec::Copy{std::nullopt, {"nope"}, "/x", {}}, 7, 3)});
  std::string e = error_of(missing, &*dir);
  EXPECT_NE(e.find("app.spec:7:3: copy: source path \"nope\" not found in the context"), std::string::npos)
      << e;

  auto dotdot = stage("busybox", {at(spec::Copy{std::string("dev"), {"../etc"}, "/x", {}}, 4, 1)},
                      {child("dev", stage("busybox", {}))});
  e = error_of(dotdot, &*dir);
  EXPECT_NE(e.find("app.spec:4:1: copy: can't use .. in source paths"), std::string::npos) << e;
}

TEST(StepIds, CopyShapeErrors) {
  TempTree tree;
  make_golden_context(tree);
  auto dir = DirectoryContext::open(tree.root());
  ASSERT_TRUE(dir.has_value());
  std::string e = error_of(stage("busybox", {copy_op({"src", "README"}, "/dst")}), &*dir);
  EXPECT_NE(e.find("end (dst \"/dst\") with '/'"), std::string::npos) << e;
  e = error_of(stage("busybox", {copy_op({}, "/dst/")}), &*dir);
  EXPECT_NE(e.find("no source paths"), std::string::npos) << e;
  e = error_of(stage("busybox", {copy_op({"/a"}, "/a", {}, "later")}), &*dir);
  EXPECT_NE(e.find("no build named \"later\" is in scope"), std::string::npos) << e;
}

}  // namespace
}  // namespace kiln::ids
