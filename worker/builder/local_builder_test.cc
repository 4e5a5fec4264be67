// LocalBuilder::open: flags checked before anything is touched, the default
// store under HOME, and a builder without a sandbox for commands that run no
// steps. (With a sandbox it needs runc: tests/builder/ covers that through
// `kiln build` and kiln-worker.) Needs root (overlay mounts).
#include "worker/builder/local_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/ids/temp_tree_for_test.h"

namespace kiln::builder {
namespace {

using ::testing::HasSubstr;

TEST(LocalBuilderTest, BadFlagsFailBeforeTheStoreIsCreated) {
  ids::TempTree tree;
  LocalBuilderOptions options{.home = tree.host("home"), .rsync_mode = "sideways"};
  auto bad_mode = LocalBuilder::open(options);
  ASSERT_FALSE(bad_mode);
  EXPECT_EQ(bad_mode.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(bad_mode.error().to_string(), HasSubstr("sideways"));

  options = {.home = tree.host("home"), .oci_runtime = "podman"};
  auto bad_runtime = LocalBuilder::open(options);
  ASSERT_FALSE(bad_runtime);
  EXPECT_EQ(bad_runtime.error().kind(), ErrorKind::kInvalidArgument);

  options = {.home = tree.host("home"), .image_aliases = {"busybox"}};
  auto bad_alias = LocalBuilder::open(options);
  ASSERT_FALSE(bad_alias);
  EXPECT_THAT(bad_alias.error().to_string(), HasSubstr("--image-alias"));

  options = {.home = tree.host("home"), .memory = "lots"};
  auto bad_memory = LocalBuilder::open(options);
  ASSERT_FALSE(bad_memory);
  EXPECT_THAT(bad_memory.error().to_string(), HasSubstr("--memory"));

  options = {.home = tree.host("home"), .userns = "0:65536"};
  auto bad_userns = LocalBuilder::open(options);
  ASSERT_FALSE(bad_userns);
  EXPECT_THAT(bad_userns.error().to_string(), HasSubstr("--userns"));

  // The default store is overlayfs, which the kernel cannot idmap.
  options = {.home = tree.host("home"), .userns = ""};
  auto userns_on_overlayfs = LocalBuilder::open(options);
  ASSERT_FALSE(userns_on_overlayfs);
  EXPECT_EQ(userns_on_overlayfs.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(userns_on_overlayfs.error().to_string(), HasSubstr("--store btrfs:DIR, xfs:DIR or rsync:DIR"));

  EXPECT_FALSE(std::filesystem::exists(tree.host("home")));
}

TEST(LocalBuilderTest, TheWorkersDefaultLimitsAreHalfTheRamAnd4096ProcessesAndNoneMeansNone) {
  sandbox::Limits limits = default_worker_step_limits();
  ASSERT_TRUE(limits.memory_bytes);
  EXPECT_EQ(*limits.memory_bytes,
            static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) / 2);
  EXPECT_EQ(limits.pids, 4096u);
  EXPECT_FALSE(limits.cpu_millicores);

  ids::TempTree tree;
  auto local = LocalBuilder::open({.home = tree.host("home"), .run_steps = false, .memory = "none"});
  ASSERT_TRUE(local) << local.error().to_string();
  EXPECT_FALSE((*local)->builder_options().limits.memory_bytes);
}

TEST(LocalBuilderTest, WithoutStepsItOpensTheDefaultStoreAndNoSandbox) {
  ids::TempTree tree;
  auto local = LocalBuilder::open({.home = tree.host("home"),
                                   .run_steps = false,
                                   .image_aliases = {"alpine=oci:/images/alpine:3"},
                                   .memory = "512M",
                                   .pids = 64,
                                   .cpus = 1.5,
                                   .step_timeout_seconds = 2.5});
  ASSERT_TRUE(local) << local.error().to_string();
  EXPECT_EQ((*local)->store_spec(), "overlayfs:" + tree.host("home") + "/store");
  EXPECT_FALSE((*local)->sandbox_ready());
  EXPECT_FALSE(std::filesystem::exists(tree.host("home/sandbox")));
  EXPECT_EQ((*local)->builder().count().value_or(99), 0u);
  EXPECT_EQ(&(*local)->builder().root(), &(*local)->store().root());
  const BuilderOptions& o = (*local)->builder_options();
  EXPECT_EQ(o.image_aliases.at("alpine"), "oci:/images/alpine:3");
  EXPECT_EQ(o.limits.memory_bytes, 512u << 20);
  EXPECT_EQ(o.limits.pids, 64u);
  EXPECT_EQ(o.limits.cpu_millicores, 1500u);
  EXPECT_EQ(o.step_timeout, std::chrono::milliseconds(2500));
}

}  // namespace
}  // namespace kiln::builder
