// The promise placement rests on: the step ids the scheduler computes at
// submit, from the manifest of the uploaded tar, are the ids the worker's
// builder computes from the directory it unpacks that tar into (and the ids
// `kiln build` computes from the original directory). The context is packed
// by the writer `kiln submit` uses; the spec copies a whole directory with
// excludes, single files, a symlink, an empty directory, a file with odd
// characters, and a build stage's output.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/context/context_tar.h"
#include "common/ids/manifest.h"
#include "common/ids/step_id.h"
#include "common/ids/temp_tree_for_test.h"
#include "common/spec/spec.h"

namespace kiln::context {
namespace {

constexpr const char* kOddName = "odd name \"q\" caf\xc3\xa9\t$x.txt";

constexpr const char* kSpec = R"spec(
((build tools
   ((from busybox)
    (workdir /tools)
    (copy (src bin) (dst ./bin/))
    (copy (src /src/lib/) (dst lib) (exclude deep))
    (run (shell "make tools"))))
 (from busybox)
 (workdir /app)
 (user (uid 1000) (gid 1000))
 (copy (src .) (dst ./) (exclude .git .cache build))
 (copy (src README bin/run.sh bin/tool) (dst /usr/local/share/))
 (copy (src "odd name \"q\" café\t$x.txt") (dst /odd))
 (copy (src link srcdir empty src/lib/deep) (dst /misc/))
 (run (shell "make"))
 (copy (from (build tools)) (src /tools/bin /tools/lib) (dst /usr/lib/tools/))
 (workdir sub)
 (copy (src src) (dst .) (exclude main.c)))
)spec";

// Every step's id and encoding, as one comparable list.
std::vector<std::string> ids_of(const std::vector<ids::Step>& steps) {
  std::vector<std::string> out;
  for (const ids::Step& s : steps) out.push_back(s.stage + " " + s.id + " " + s.encoding);
  return out;
}

class ContextTarStepIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.file("src/README", "kiln\n");
    tree_.file("src/src/main.c", "int main() { return 0; }\n");
    tree_.file("src/src/lib/util.c", "int util;\n");
    tree_.file("src/src/lib/deep/er/x.h", "#define X 1\n");
    tree_.file("src/src/.cache/junk", "left out by the exclude\n");
    tree_.file("src/bin/run.sh", "#!/bin/sh\nexec ./main\n", 0755);
    ASSERT_EQ(::link(tree_.host("src/bin/run.sh").c_str(), tree_.host("src/bin/tool").c_str()), 0);
    tree_.symlink("src/link", "src/main.c");
    tree_.symlink("src/srcdir", "src");
    tree_.dir("src/empty");
    tree_.file(std::string("src/") + kOddName, "odd\n");
    tree_.file("src/build/out.o", "object\n");
    tree_.file("src/.git/HEAD", "ref: refs/heads/main\n");  // the writer leaves .git out
    auto spec = spec::parse_spec(kSpec, "ids.spec");
    ASSERT_TRUE(spec) << spec.error().to_string();
    spec_ = std::move(*spec);
  }

  // As the scheduler at submit: the manifest of the uploaded tar.
  std::vector<std::string> scheduler_ids(const std::string& tar) {
    auto manifest = context_tar_manifest(tar);
    EXPECT_TRUE(manifest) << manifest.error().to_string();
    if (!manifest) return {};
    auto steps = ids::compute_step_ids(spec_, &*manifest, "ids.spec");
    EXPECT_TRUE(steps) << steps.error().to_string();
    return steps ? ids_of(*steps) : std::vector<std::string>{};
  }

  // As the worker's builder: a DirectoryContext on the context directory.
  std::vector<std::string> directory_ids(const std::string& dir) {
    auto context = ids::DirectoryContext::open(dir);
    EXPECT_TRUE(context) << context.error().to_string();
    if (!context) return {};
    auto steps = ids::compute_step_ids(spec_, &*context, "ids.spec");
    EXPECT_TRUE(steps) << steps.error().to_string();
    return steps ? ids_of(*steps) : std::vector<std::string>{};
  }

  ids::TempTree tree_;
  spec::Spec spec_;
};

TEST_F(ContextTarStepIdsTest, SchedulerAndWorkerComputeTheSameStepIds) {
  auto tar = write_context_tar(tree_.host("src"), tree_.host("ctx.tar"));
  ASSERT_TRUE(tar) << tar.error().to_string();
  tree_.dir("job");
  ASSERT_TRUE(unpack_context_tar(tree_.host("ctx.tar"), tree_.host("job")));

  std::vector<std::string> scheduler = scheduler_ids(tree_.host("ctx.tar"));
  std::vector<std::string> worker = directory_ids(tree_.host("job"));
  // tools: from, 2 copies, run; main: from, 4 copies, run, 2 copies.
  ASSERT_EQ(scheduler.size(), 12u);
  EXPECT_EQ(scheduler, worker);
  // And `kiln build` on the original directory (the spec excludes .git).
  EXPECT_EQ(scheduler, directory_ids(tree_.host("src")));
}

// The equality above is not vacuous: what the ids record of the context (the
// executable bit, content, symlink targets) reaches them on both sides.
TEST_F(ContextTarStepIdsTest, WhatTheManifestRecordsChangesTheIdsOnBothSides) {
  ASSERT_TRUE(write_context_tar(tree_.host("src"), tree_.host("before.tar")));
  std::vector<std::string> before = scheduler_ids(tree_.host("before.tar"));

  ASSERT_EQ(::chmod(tree_.host("src/bin/run.sh").c_str(), 0644), 0);  // the hard link too
  ASSERT_TRUE(write_context_tar(tree_.host("src"), tree_.host("after.tar")));
  tree_.dir("job");
  ASSERT_TRUE(unpack_context_tar(tree_.host("after.tar"), tree_.host("job")));
  std::vector<std::string> after = scheduler_ids(tree_.host("after.tar"));
  EXPECT_NE(before, after);
  EXPECT_EQ(after, directory_ids(tree_.host("job")));
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(before.front(), after.front());  // the tools stage's (from busybox)
}

}  // namespace
}  // namespace kiln::context
