#include "worker/fetcher/internal/blob_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fs.h"
#include "common/sha256.h"
#include "tests/support/temp_dir.h"

namespace kiln::fetcher::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string digest_of(std::string_view s) {
  return "sha256:" + sha256_hex(s);
}

class BlobCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cache = BlobCache::open(dir_.path() + "/cache");
    ASSERT_TRUE(cache) << cache.error().to_string();
    cache_.emplace(std::move(*cache));
  }
  std::vector<std::string> temporaries() { return *list_dir(dir_.path() + "/cache/tmp"); }

  kiln::testing::TempDir dir_;
  std::optional<BlobCache> cache_;
};

TEST_F(BlobCacheTest, ABlobAppearsUnderItsDigestOnlyOnceCommitted) {
  std::string content = "layer bytes";
  std::string digest = digest_of(content);
  auto writer = cache_->begin(digest, static_cast<std::int64_t>(content.size()));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->write(content.substr(0, 5)));
  EXPECT_FALSE(cache_->contains(digest));
  ASSERT_TRUE((*writer)->write(content.substr(5)));
  EXPECT_FALSE(cache_->contains(digest));
  ASSERT_TRUE((*writer)->commit("test"));
  EXPECT_TRUE(cache_->contains(digest));
  EXPECT_EQ(*read_file(cache_->path_of(digest)), content);
  EXPECT_EQ(cache_->path_of(digest), dir_.path() + "/cache/blobs/sha256/" + digest.substr(7));
  writer->reset();  // the unique_ptr: destroying a committed writer leaves the blob
  EXPECT_TRUE(cache_->contains(digest));
  EXPECT_THAT(temporaries(), IsEmpty());
}

TEST_F(BlobCacheTest, AWrongDigestIsRefusedAndLeavesNothing) {
  std::string digest = digest_of("what the manifest says");
  {
    auto writer = cache_->begin(digest, -1);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->write("something else"));
    auto s = (*writer)->commit("registry r");
    ASSERT_FALSE(s);
    EXPECT_THAT(s.error().message(), HasSubstr(digest));
    EXPECT_THAT(s.error().message(), HasSubstr(digest_of("something else")));
    EXPECT_THAT(s.error().message(), HasSubstr("not cached"));
  }
  EXPECT_FALSE(cache_->contains(digest));
  EXPECT_THAT(temporaries(), IsEmpty());
}

TEST_F(BlobCacheTest, MoreOrFewerBytesThanTheDescriptorSaysAreRefused) {
  std::string content = "0123456789";
  auto writer = cache_->begin(digest_of(content), 4);
  ASSERT_TRUE(writer);
  EXPECT_FALSE((*writer)->write(content));
  auto short_writer = cache_->begin(digest_of(content), 20);
  ASSERT_TRUE((*short_writer)->write(content));
  auto s = (*short_writer)->commit("r");
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(), HasSubstr("descriptor says 20"));
  EXPECT_FALSE(cache_->contains(digest_of(content)));
}

TEST_F(BlobCacheTest, ResetStartsADownloadOver) {
  std::string content = "full content";
  auto writer = cache_->begin(digest_of(content), static_cast<std::int64_t>(content.size()));
  ASSERT_TRUE((*writer)->write("full con"));
  ASSERT_TRUE((*writer)->reset());
  ASSERT_TRUE((*writer)->write(content));
  ASSERT_TRUE((*writer)->commit("r"));
  EXPECT_EQ(*read_file(cache_->path_of(digest_of(content))), content);
}

TEST_F(BlobCacheTest, PutAndTagRecords) {
  ASSERT_TRUE(cache_->put(digest_of("{}"), "{}", "r").has_value());
  EXPECT_TRUE(cache_->contains(digest_of("{}")));
  EXPECT_FALSE(cache_->put(digest_of("x"), "y", "r").has_value());
  auto none = cache_->read_tag("r/a:1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  ASSERT_TRUE(cache_->write_tag("r/a:1", {digest_of("{}"), "application/vnd.oci.image.manifest.v1+json"}));
  auto record = cache_->read_tag("r/a:1");
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->digest, digest_of("{}"));
  EXPECT_EQ((*record)->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_FALSE(*cache_->read_tag("r/a:2"));
  // The cache reads as an OCI layout's blobs.
  auto files = cache_->files();
  EXPECT_EQ(*files->read_file("blobs/sha256/" + sha256_hex("{}"), 100), "{}");
}

}  // namespace
}  // namespace kiln::fetcher::internal
