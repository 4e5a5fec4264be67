#include "worker/store/pending_hits.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace kiln::store {
namespace {

class PendingHitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln-pending-hits-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "pending-hits").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(PendingHitsTest, AppendsAccumulateAndTakeRemovesTheFile) {
  ASSERT_TRUE(append_pending_hits(path_, {{"a", 10}, {"b", 20}}));
  ASSERT_TRUE(append_pending_hits(path_, {{"a", 30}}));
  ASSERT_TRUE(append_pending_hits(path_, {}));
  auto read = read_pending_hits(path_);
  ASSERT_TRUE(read) << read.error().to_string();
  EXPECT_EQ(*read, (std::vector<PendingHit>{{"a", 10}, {"b", 20}, {"a", 30}}));
  auto taken = take_pending_hits(path_);
  ASSERT_TRUE(taken) << taken.error().to_string();
  EXPECT_EQ(taken->size(), 3u);
  EXPECT_FALSE(std::filesystem::exists(path_));
  auto none = take_pending_hits(path_);
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_TRUE(none->empty());
}

TEST_F(PendingHitsTest, MalformedAndTornLinesAreSkipped) {
  std::ofstream(path_) << "a 1\n"
                       << " 2\n"
                       << "nospace\n"
                       << "b x\n"
                       << "c 3junk\n"
                       << "d 4\n"
                       << "e 5";  // torn: no newline
  auto hits = read_pending_hits(path_);
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_EQ(*hits, (std::vector<PendingHit>{{"a", 1}, {"d", 4}}));
}

TEST_F(PendingHitsTest, OnlyTheFirstMegabytesOfAnOversizedFileAreRead) {
  {
    std::ofstream out(path_);
    for (std::size_t written = 0; written < kMaxPendingHitsBytes + 4096; written += 8) out << "abcdef 1\n";
  }
  auto hits = take_pending_hits(path_);
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_LE(hits->size(), kMaxPendingHitsBytes / 9);
  EXPECT_GT(hits->size(), kMaxPendingHitsBytes / 9 - 2);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(PendingHitsTest, TheFileStopsGrowingAtItsBound) {
  const std::vector<PendingHit> batch(1000, PendingHit{std::string(64, 'a'), 1'000'000'000'000'000});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(append_pending_hits(path_, batch));  // ~8 MB offered
  EXPECT_LE(std::filesystem::file_size(path_), kMaxPendingHitsBytes);
  EXPECT_GT(std::filesystem::file_size(path_), kMaxPendingHitsBytes - 100'000);
  auto hits = read_pending_hits(path_);
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_EQ(hits->size() % 1000, 0u);  // whole batches only
}

}  // namespace
}  // namespace kiln::store
