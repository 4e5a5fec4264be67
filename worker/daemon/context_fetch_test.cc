// fetch_context_tar against the in-test scheduler (FakeScheduler answers
// get-context): chunked fetches, verification, the cache, and the errors.
#include "worker/daemon/context_fetch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"
#include "worker/daemon/testing/fake_scheduler.h"

namespace kiln::worker {
namespace {

using testing::FakeScheduler;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the fetch on a thread while the test's thread serves the scheduler.
class ContextFetchTest : public ::testing::Test {
 protected:
  Result<std::string> fetch(const std::string& digest, ContextFetchOptions options = {}) {
    Result<std::string> result = make_error(ErrorKind::kInternal, "not run");
    std::atomic<bool> finished{false};
    std::thread t([&] {
      result = fetch_context_tar(zmq_, scheduler_.address(), digest, cache(), nullptr, options);
      finished = true;
    });
    // Serving happens inside expect(): wait for a message that never comes
    // until the fetch has finished.
    while (!finished) scheduler_.serve_for(50ms);
    t.join();
    return result;
  }
  std::string cache() const { return tree_.host("contexts"); }

  ids::TempTree tree_;
  zmq::context_t zmq_;
  FakeScheduler scheduler_;
};

TEST_F(ContextFetchTest, FetchesInChunksVerifiesAndCaches) {
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes += "line " + std::to_string(i) + "\n";
  std::string digest = "sha256:" + sha256_hex(bytes);
  scheduler_.serve_context(digest, bytes);
  ContextFetchOptions options;
  options.chunk_bytes = 1000;  // several chunks
  auto path = fetch(digest, options);
  ASSERT_TRUE(path) << path.error().to_string();
  EXPECT_EQ(*path, cache() + "/" + digest.substr(7) + ".tar");
  EXPECT_EQ(read_text(*path), bytes);
  EXPECT_GE(scheduler_.get_contexts_served, 8);

  // Cached: the scheduler is not asked again.
  int served = scheduler_.get_contexts_served;
  auto again = fetch(digest, options);
  ASSERT_TRUE(again);
  EXPECT_EQ(scheduler_.get_contexts_served, served);
}

TEST_F(ContextFetchTest, WrongBytesAreRefusedAndNotCached) {
  std::string digest = "sha256:" + sha256_hex("the real content");
  scheduler_.serve_context(digest, "damaged content");
  auto path = fetch(digest);
  ASSERT_FALSE(path);
  EXPECT_EQ(path.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(path.error().to_string(), HasSubstr("damaged"));
  EXPECT_TRUE(std::filesystem::is_empty(cache()));  // no partial file left either
}

TEST_F(ContextFetchTest, MissingContextBadDigestAndNoScheduler) {
  auto missing = fetch("sha256:" + std::string(64, 'a'));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().to_string(), HasSubstr("resubmit"));

  auto bad = fetch_context_tar(zmq_, scheduler_.address(), "md5:abc", cache(), nullptr);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);

  ContextFetchOptions quick;
  quick.chunk_timeout = 100ms;
  quick.retries = 1;
  auto nobody =
      fetch_context_tar(zmq_, "tcp://127.0.0.1:1", "sha256:" + std::string(64, 'b'), cache(), nullptr, quick);
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(nobody.error().to_string(), HasSubstr("is kiln-scheduler running"));
}

TEST_F(ContextFetchTest, CancelStopsAFetch) {
  CancelToken cancel;
  cancel.cancel();
  auto r = fetch_context_tar(zmq_, "tcp://127.0.0.1:1", "sha256:" + std::string(64, 'c'), cache(), &cancel);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCancelled);
}

TEST_F(ContextFetchTest, UnusedContextsAndLeftoverPartsAreRemoved) {
  namespace fs = std::filesystem;
  tree_.file("contexts/old.tar", "x");
  tree_.file("contexts/.old.1.part", "x");
  tree_.file("contexts/new.tar", "x");
  tree_.file("contexts/notes.txt", "x");
  auto long_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 30);
  fs::last_write_time(tree_.host("contexts/old.tar"), long_ago);
  fs::last_write_time(tree_.host("contexts/.old.1.part"), long_ago);
  fs::last_write_time(tree_.host("contexts/notes.txt"), long_ago);
  EXPECT_EQ(remove_unused_contexts(cache(), std::chrono::hours(24 * 7)), 2u);
  EXPECT_FALSE(fs::exists(tree_.host("contexts/old.tar")));
  EXPECT_FALSE(fs::exists(tree_.host("contexts/.old.1.part")));
  EXPECT_TRUE(fs::exists(tree_.host("contexts/new.tar")));
  EXPECT_TRUE(fs::exists(tree_.host("contexts/notes.txt")));
}

TEST_F(ContextFetchTest, PartialDownloadsAreRemovedAtStart) {
  tree_.file("contexts/.abc.1.1.part", "half");
  tree_.file("contexts/abc.tar", "whole");
  remove_partial_contexts(cache());
  EXPECT_FALSE(std::filesystem::exists(tree_.host("contexts/.abc.1.1.part")));
  EXPECT_TRUE(std::filesystem::exists(tree_.host("contexts/abc.tar")));
}

}  // namespace
}  // namespace kiln::worker
