// The worker's maintenance and the registry blob cache: trimmed to its cap
// each pass, pruned before results when the disk is low, and counted in the
// stats heartbeats carry. (Pulls that fill the cache against a real registry:
// worker/fetcher/image_cache_test.cc.)
#include "worker/daemon/maintenance.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"
#include "worker/sandbox/fake_sandbox.h"

namespace kiln::worker {
namespace {

using Clock = std::chrono::system_clock;

class NoFetcher final : public fetcher::Fetcher {
 public:
  Result<fetcher::ImageConfig> fetch(const fetcher::Progress&, const std::string& rootfs, std::string_view,
                                     const fetcher::FetchOptions&) override {
    std::filesystem::create_directories(rootfs + "/bin");
    return fetcher::ImageConfig{};
  }
};

class MaintenanceImageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::open_store("overlayfs:" + tree_.host("store"));
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    builder_ = std::make_unique<builder::Builder>(*store_, sandbox_, fetcher_);
    cache_ = tree_.host("image-cache");
    std::filesystem::create_directories(cache_ + "/blobs/sha256");
  }
  void TearDown() override {
    builder_.reset();
    store_.reset();
  }
  // A blob of `bytes` bytes last used `age` ago; returns its path.
  std::string add_blob(int n, std::size_t bytes, std::chrono::seconds age) {
    std::string path = cache_ + "/blobs/sha256/" + sha256_hex(std::to_string(n));
    std::ofstream(path) << std::string(bytes, 'x');
    auto when = Clock::to_time_t(Clock::now() - age);
    timespec times[2] = {{when, 0}, {when, 0}};
    EXPECT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    return path;
  }
  MaintenanceOptions options() {
    return {.worker_name = "w1",
            .contexts_dir = tree_.host("contexts"),
            .prune_below_bytes = 0,
            .prune_min_age = std::chrono::minutes(10),
            .image_cache_dir = cache_,
            .image_cache_max_bytes = 2500};
  }

  ids::TempTree tree_;
  std::unique_ptr<store::Store> store_;
  sandbox::FakeSandbox sandbox_;
  NoFetcher fetcher_;
  std::unique_ptr<builder::Builder> builder_;
  std::string cache_;
};

TEST_F(MaintenanceImageCacheTest, EachPassTrimsTheCacheToItsCapLeastRecentlyUsedFirst) {
  std::string oldest = add_blob(1, 1000, std::chrono::hours(3));
  std::string middle = add_blob(2, 1000, std::chrono::hours(2));
  std::string newest = add_blob(3, 1000, std::chrono::hours(1));
  Maintenance maintenance(options(), *builder_, [](std::vector<std::string>) {});
  fetcher::ImageCachePruneReport report = maintenance.trim_image_cache();
  EXPECT_EQ(report.removed, 1u);
  EXPECT_EQ(report.bytes_left, 2000u);
  EXPECT_FALSE(std::filesystem::exists(oldest));
  EXPECT_TRUE(std::filesystem::exists(middle));
  EXPECT_TRUE(std::filesystem::exists(newest));

  // The thread's pass measures it for the heartbeats.
  maintenance.start();
  proto::WorkerStats stats;
  for (int i = 0; i < 500 && stats.image_cache_bytes == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    maintenance.fill_stats(stats);
  }
  maintenance.stop();
  EXPECT_EQ(stats.image_cache_bytes, 2000u);
}

TEST_F(MaintenanceImageCacheTest, ALowDiskPrunesBlobsOlderThanTheMinimumAgeBeforeAnyResult) {
  std::string old_blob = add_blob(1, 1000, std::chrono::hours(1));
  std::string recent = add_blob(2, 1000, std::chrono::minutes(1));
  spec::Spec spec;
  spec.from = "busybox";
  auto base = builder_->build({.spec = spec});
  ASSERT_TRUE(base) << base.error().to_string();
  MaintenanceOptions o = options();
  o.prune_below_bytes = std::numeric_limits<std::uint64_t>::max();  // always low
  o.image_cache_max_bytes = std::numeric_limits<std::uint64_t>::max();
  Maintenance maintenance(o, *builder_, [](std::vector<std::string>) {});
  maintenance.prune_if_low();
  EXPECT_FALSE(std::filesystem::exists(old_blob));
  EXPECT_TRUE(std::filesystem::exists(recent));  // used within --prune-min-age
  EXPECT_TRUE(store_->info(*base));              // just built: younger than the minimum age too
}

}  // namespace
}  // namespace kiln::worker
