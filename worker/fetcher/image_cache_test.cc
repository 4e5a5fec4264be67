// Pruning the image cache filled by real pulls from a `docker-registry` on
// 127.0.0.1 (tests/support/local_registry.h): least recently used blobs go
// first, a blob a pull holds never goes, and what was pruned is pulled again.
#include "worker/fetcher/image_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "tests/support/local_registry.h"
#include "worker/fetcher/internal/blob_cache.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/testing/fixture.h"
#include "worker/fetcher/testing/image_writer.h"

namespace kiln::fetcher {
namespace {

using internal::Compression;
using testing::Layer;
using testing::LayerBuilder;
using Clock = std::chrono::system_clock;

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

class ImageCacheTest : public testing::FetcherTest {
 protected:
  void SetUp() override {
    FetcherTest::SetUp();
    registry_.emplace(new_dir("registry"));
    // Random contents: the layers stay about 256 KiB compressed.
    shared_ = make_layer(LayerBuilder().file("shared.bin", random_bytes(256 << 10, 1)), Compression::kGzip);
    only_a_ = make_layer(LayerBuilder().file("a.bin", random_bytes(256 << 10, 2)), Compression::kGzip);
    only_b_ = make_layer(LayerBuilder().file("b.bin", random_bytes(256 << 10, 3)), Compression::kGzip);
    testing::OciLayoutWriter layout(new_dir("layout"));
    auto a = layout.add_image({shared_, only_a_}, testing::config_with_env({"IMAGE=a"}));
    auto b = layout.add_image({shared_, only_b_}, testing::config_with_env({"IMAGE=b"}));
    layout.write_index({{a, "a"}, {b, "b"}});
    ASSERT_EQ(registry_->push("oci:" + layout.dir() + ":a", "team/a:1"), "");
    ASSERT_EQ(registry_->push("oci:" + layout.dir() + ":b", "team/b:1"), "");
    options_.cache_dir = tmp_ + "/cache";
    options_.insecure_registries = {registry_->host()};
  }

  Result<ImageConfig> pull(const std::string& name) {
    std::filesystem::remove_all(rootfs_);
    std::filesystem::create_directories(rootfs_);
    return make_fetcher(options_)->fetch(nullptr, rootfs_, registry_->host() + "/" + name, {});
  }

  std::string blob_path(const Layer& layer) const {
    return options_.cache_dir + "/blobs/sha256/" + testing::sha256_digest(layer.blob).substr(7);
  }
  static void set_used(const std::string& path, Clock::time_point when) {
    auto since = when.time_since_epoch();
    auto s = std::chrono::duration_cast<std::chrono::seconds>(since);
    timespec times[2];
    times[0] = times[1] = timespec{s.count(), 0};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }
  static Clock::time_point used_at(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return Clock::from_time_t(st.st_mtime);
  }

  std::optional<kiln::testing::LocalRegistry> registry_;
  RegistryOptions options_;
  Layer shared_, only_a_, only_b_;
};

TEST_F(ImageCacheTest, PrunesLeastRecentlyUsedBlobsButNeverOneInUse) {
  ASSERT_TRUE(pull("team/a:1"));
  ASSERT_TRUE(pull("team/b:1"));
  auto full = image_cache_usage(options_.cache_dir);
  ASSERT_TRUE(full) << full.error().to_string();
  // Two manifests, two configs and three layers, the layers most of it.
  EXPECT_EQ(full->blobs, 7u);
  EXPECT_GT(full->bytes, 3u * (256 << 10));

  // Everything was used two hours ago; a's own layer three hours ago (the
  // least recently used) and the shared layer four (but a pull holds it).
  const auto now = Clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(options_.cache_dir + "/blobs/sha256"))
    set_used(entry.path(), now - std::chrono::hours(2));
  set_used(blob_path(only_a_), now - std::chrono::hours(3));
  set_used(blob_path(shared_), now - std::chrono::hours(4));
  auto cache = internal::BlobCache::open(options_.cache_dir);
  ASSERT_TRUE(cache);
  auto held = cache->lease(testing::sha256_digest(shared_.blob));
  ASSERT_TRUE(held && *held);
  // The lease marked it used now: set it back, so only the lock protects it.
  set_used(blob_path(shared_), now - std::chrono::hours(4));

  // A limit that one layer's removal satisfies: the oldest unleased blob goes.
  const std::uint64_t a_bytes = std::filesystem::file_size(blob_path(only_a_));
  auto report = prune_image_cache(options_.cache_dir, {.max_bytes = full->bytes - a_bytes});
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->removed, 1u);
  EXPECT_EQ(report->bytes, a_bytes);
  EXPECT_EQ(report->kept_in_use, 1u);
  EXPECT_FALSE(std::filesystem::exists(blob_path(only_a_)));
  EXPECT_TRUE(std::filesystem::exists(blob_path(shared_)));
  EXPECT_TRUE(std::filesystem::exists(blob_path(only_b_)));
  EXPECT_EQ(image_cache_usage(options_.cache_dir)->bytes, full->bytes - a_bytes);

  // Pulling b marks its blobs used now; pruning what is older than an hour
  // then leaves b whole and the held layer, and takes a's manifest and config.
  ASSERT_TRUE(pull("team/b:1"));
  EXPECT_GT(used_at(blob_path(only_b_)), now - std::chrono::minutes(5));
  set_used(blob_path(shared_), now - std::chrono::hours(4));  // b's pull used it too
  report =
      prune_image_cache(options_.cache_dir, {.max_bytes = 0, .used_before = now - std::chrono::hours(1)});
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->removed, 2u);
  EXPECT_EQ(report->kept_in_use, 1u);
  EXPECT_TRUE(std::filesystem::exists(blob_path(shared_)));
  EXPECT_TRUE(std::filesystem::exists(blob_path(only_b_)));
  EXPECT_EQ(image_cache_usage(options_.cache_dir)->blobs, 4u);  // b's manifest, config, two layers

  // Released, the shared layer goes too; a is pulled again from the registry.
  held->reset();
  report =
      prune_image_cache(options_.cache_dir, {.max_bytes = 0, .used_before = now - std::chrono::hours(1)});
  ASSERT_TRUE(report);
  EXPECT_EQ(report->removed, 1u);
  EXPECT_EQ(report->kept_in_use, 0u);
  EXPECT_FALSE(std::filesystem::exists(blob_path(shared_)));
  auto again = pull("team/a:1");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(registry_->blob_gets("team/a", testing::sha256_digest(only_a_.blob)), 2) << registry_->log();
  EXPECT_EQ(registry_->blob_gets("team/a", testing::sha256_digest(shared_.blob)), 2);
}

TEST_F(ImageCacheTest, StopsWhenTheCallerHasEnough) {
  ASSERT_TRUE(pull("team/a:1"));
  int asked = 0;
  auto report = prune_image_cache(options_.cache_dir, {.enough = [&] { return ++asked == 2; }});
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->removed, 2u);
  EXPECT_EQ(image_cache_usage(options_.cache_dir)->blobs, 2u);
}

TEST_F(ImageCacheTest, AMissingCacheHoldsNothing) {
  auto usage = image_cache_usage(tmp_ + "/no-such-cache");
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->bytes, 0u);
  EXPECT_FALSE(std::filesystem::exists(tmp_ + "/no-such-cache"));
}

}  // namespace
}  // namespace kiln::fetcher
