// find_base_layers on a registry base in the image cache: the blobs a push
// reads are leased for as long as the BaseImage lives, so a prune of the
// cache meanwhile (the worker's maintenance) cannot remove them mid-push;
// a base whose blobs were pruned before is reported, not half-read.
#include "worker/pusher/base_layers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"

namespace kiln::pusher {
namespace {

using fetcher::internal::BlobCache;
using ::testing::HasSubstr;

class BaseLayersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cache = BlobCache::open(tree_.host("cache"));
    ASSERT_TRUE(cache) << cache.error().to_string();
    cache_.emplace(std::move(*cache));
    // An uncompressed layer (an empty tar), its config and manifest.
    const std::string layer(1024, '\0');
    layer_digest_ = "sha256:" + sha256_hex(layer);
    const std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
                               layer_digest_ + R"("]}})";
    const std::string config_digest = "sha256:" + sha256_hex(config);
    const std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":)"
        R"("application/vnd.oci.image.config.v1+json","digest":")" +
        config_digest + R"(","size":)" + std::to_string(config.size()) +
        R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + layer_digest_ +
        R"(","size":1024}]})";
    image_.reference = "127.0.0.1:5000/team/base:1";
    image_.manifest_digest = "sha256:" + sha256_hex(manifest);
    for (const auto& [digest, content] :
         {std::pair{layer_digest_, layer}, {config_digest, config}, {image_.manifest_digest, manifest}}) {
      auto lease = cache_->put(digest, content, "test");  // dropped at once: unleased
      ASSERT_TRUE(lease) << lease.error().to_string();
    }
  }

  std::size_t prune_everything() {
    auto report = cache_->prune({.max_bytes = 0});
    EXPECT_TRUE(report) << report.error().to_string();
    return report ? report->removed : 0;
  }

  ids::TempTree tree_;
  std::optional<BlobCache> cache_;
  ImageJson image_;
  std::string layer_digest_;
};

TEST_F(BaseLayersTest, TheBlobsAPushReadsAreLeasedWhileItRuns) {
  std::string why;
  {
    auto base = find_base_layers(image_, tree_.host("cache"), why);
    ASSERT_TRUE(base) << base.error().to_string();
    ASSERT_TRUE(*base) << why;
    ASSERT_EQ((*base)->layers.size(), 1u);
    EXPECT_EQ((*base)->layers[0].digest, layer_digest_);
    EXPECT_EQ((*base)->registry, "127.0.0.1:5000");
    EXPECT_EQ((*base)->leases.size(), 3u);
    // The worker's maintenance prunes the cache during the push: nothing goes.
    EXPECT_EQ(prune_everything(), 0u);
    EXPECT_TRUE(cache_->contains(layer_digest_));
  }
  // The push is over: the blobs may go now.
  EXPECT_EQ(prune_everything(), 3u);
  auto gone = find_base_layers(image_, tree_.host("cache"), why);
  ASSERT_TRUE(gone) << gone.error().to_string();
  EXPECT_FALSE(*gone);
  EXPECT_THAT(why, HasSubstr("is no longer in"));
}

}  // namespace
}  // namespace kiln::pusher
