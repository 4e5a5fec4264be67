// A store opened with StoreOpenMode::kReadOnlyUntilWrite (what `kiln` does):
// lookups and cache hits write nothing to the metadata database, the hits
// are counted by the next writable open, and the first change makes the
// store writable with the crash recovery a writable open does. On every
// directory backend, on a real filesystem of its kind.
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "tests/store/store_fixture.h"
#include "worker/store/fs_util.h"
#include "worker/store/store.h"

namespace kiln::store {
namespace {

using testing::Backend;
using testing::param_name;
using testing::write_file;
namespace fs = std::filesystem;

class ReadOnlyOpenTest : public testing::StoreTest {
 protected:
  void open_read_only() {
    open_mode_ = StoreOpenMode::kReadOnlyUntilWrite;
    open();
  }
  void open_writable() {
    open_mode_ = StoreOpenMode::kReadWrite;
    open();
  }
  // The metadata database's files: name -> (size, modification time in ns).
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> metadata_files() const {
    std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> out;
    for (const auto& entry : fs::directory_iterator(root_ + "/state/metadata")) {
      struct stat st {};
      EXPECT_EQ(::stat(entry.path().c_str(), &st), 0);
      out[entry.path().filename().string()] = {static_cast<std::uintmax_t>(st.st_size),
                                               st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
    }
    return out;
  }
  std::string pending_hits() const { return root_ + "/state/pending-hits"; }
};

TEST_P(ReadOnlyOpenTest, CachedLookupsWriteNothingAndTheirHitsAreCountedLater) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  ASSERT_TRUE(store_->record_cache_miss());
  auto built_used = store_->info("b")->last_used;
  store_.reset();
  auto before = metadata_files();

  open_read_only();
  auto b = store_->info("b");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->parent, "a");
  EXPECT_EQ(testing::read_file(store_->log_file("b")), "log of b\n");
  EXPECT_EQ(*store_->list_results(), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(store_->record_cache_hit("a"));
  ASSERT_TRUE(store_->record_cache_hit("b"));
  auto stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->cache_hits, 2u);
  EXPECT_EQ(stats->cache_misses, 1u);
  auto missing = store_->info("c");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  store_.reset();
  EXPECT_EQ(metadata_files(), before) << "a read-only store wrote to its database";
  ASSERT_TRUE(path_exists(pending_hits()));

  open_writable();
  EXPECT_FALSE(path_exists(pending_hits())) << "the hits were not taken";
  stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->cache_hits, 2u);
  EXPECT_EQ(stats->cache_misses, 1u);
  EXPECT_GT(store_->info("b")->last_used, built_used);
  open_writable();  // counted once
  EXPECT_EQ(store_->stats()->cache_hits, 2u);
}

TEST_P(ReadOnlyOpenTest, TheFirstChangeMakesItWritableAndRepairsWhatACrashLeft) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  store_.reset();
  // What a build killed mid-way leaves (the crash test makes real ones).
  fs::create_directories(root_ + "/tmp/left-behind");
  write_file(root_ + "/tmp/left-behind/half", "x");

  open_read_only();
  ASSERT_TRUE(store_->info("a"));
  ASSERT_TRUE(store_->record_cache_hit("a"));
  EXPECT_TRUE(path_exists(root_ + "/tmp/left-behind")) << "repaired while only reading";
  EXPECT_EQ(store_->recovery_report().temporaries_removed, 0);

  must_build("a", "b", {{"g", "2"}});
  EXPECT_FALSE(path_exists(root_ + "/tmp/left-behind"));
  EXPECT_EQ(store_->recovery_report().temporaries_removed, 1) << store_->recovery_report().to_string();
  EXPECT_EQ(file_of("b", "f"), "1");
  EXPECT_EQ(file_of("b", "g"), "2");

  open_writable();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  auto stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->results, 2u);
  EXPECT_EQ(stats->cache_hits, 1u);  // recorded while read-only, applied when it became writable
  EXPECT_FALSE(path_exists(pending_hits()));
}

TEST_P(ReadOnlyOpenTest, AResultWhoseFilesACrashRemovedIsNotACacheHit) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(remove_result_directory("b"));
  open_read_only();
  auto b = store_->info("b");
  ASSERT_FALSE(b) << "a record without its directory was reported as a result";
  EXPECT_EQ(b.error().kind(), ErrorKind::kNotFound) << b.error().to_string();
  EXPECT_EQ(store_->recovery_report().records_dropped, 1) << store_->recovery_report().to_string();
  EXPECT_TRUE(store_->info("a"));
  must_build("a", "b", {{"g", "3"}});
  EXPECT_EQ(file_of("b", "g"), "3");
}

TEST_P(ReadOnlyOpenTest, AStoreThatDoesNotExistYetIsCreatedWritable) {
  store_.reset();
  fs::remove_all(root_);
  open_read_only();
  must_build(std::nullopt, "a", {{"f", "1"}});
  EXPECT_EQ(file_of("a", "f"), "1");
}

INSTANTIATE_TEST_SUITE_P(Backends, ReadOnlyOpenTest,
                         ::testing::Values(Backend{"overlayfs", "overlayfs", "ext4"},
                                           Backend{"btrfs", "btrfs", "btrfs"}, Backend{"xfs", "xfs", "xfs"},
                                           Backend{"rsync_copy", "rsync", "ext4", RsyncMode::kCopy},
                                           Backend{"docker", "docker", "ext4"}),
                         param_name);

}  // namespace
}  // namespace kiln::store
