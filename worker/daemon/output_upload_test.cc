// upload_output against the in-test scheduler (FakeScheduler answers
// put-output as the scheduler's output store does): chunks in order, a
// resumed upload that skips what another uploader already sent, chunks
// sent again when unanswered, a refusal, and a scheduler that never answers.
#include "worker/daemon/output_upload.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/sha256.h"
#include "common/unique_fd.h"
#include "worker/daemon/testing/fake_scheduler.h"

namespace kiln::worker {
namespace {

using testing::FakeScheduler;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class OutputUploadTest : public ::testing::Test {
 protected:
  OutputUploadTest() {
    for (int i = 0; i < 5000; ++i) bytes_ += "output line " + std::to_string(i) + "\n";
    digest_ = "sha256:" + sha256_hex(bytes_);
    fd_.reset(::memfd_create("output", MFD_CLOEXEC));
    EXPECT_TRUE(fd_);
    EXPECT_EQ(::write(fd_.get(), bytes_.data(), bytes_.size()), static_cast<ssize_t>(bytes_.size()));
  }

  // Runs the upload on a thread while the test's thread serves the scheduler.
  Status upload(OutputUploadOptions options) {
    options.job_id = "j1";
    options.attempt = 1;
    Status result = make_error(ErrorKind::kInternal, "not run");
    std::atomic<bool> finished{false};
    std::thread t([&] {
      result = upload_output(zmq_, scheduler_.address(), digest_, fd_.get(), bytes_.size(), nullptr, options);
      finished = true;
    });
    while (!finished) scheduler_.serve_for(50ms);
    t.join();
    return result;
  }

  std::string bytes_;
  std::string digest_;
  UniqueFd fd_;
  zmq::context_t zmq_;
  FakeScheduler scheduler_;
};

TEST_F(OutputUploadTest, SendsEveryChunkInOrderUntilStored) {
  auto sent = upload({.chunk_bytes = 4096});
  ASSERT_TRUE(sent) << sent.error().to_string();
  EXPECT_EQ(scheduler_.outputs_stored[digest_], bytes_);
  EXPECT_EQ(scheduler_.put_outputs_seen, static_cast<int>((bytes_.size() + 4095) / 4096));
}

TEST_F(OutputUploadTest, ResumesWhereTheSchedulerSaysAndSkipsWhatItHolds) {
  // Another worker sent the first 50,000 bytes of the same output already.
  scheduler_.outputs_received[digest_] = bytes_.substr(0, 50000);
  auto sent = upload({.chunk_bytes = 4096});
  ASSERT_TRUE(sent) << sent.error().to_string();
  EXPECT_EQ(scheduler_.outputs_stored[digest_], bytes_);
  // One chunk at offset 0 (answered: resume at 50,000), then the rest only.
  EXPECT_EQ(scheduler_.put_outputs_seen, 1 + static_cast<int>((bytes_.size() - 50000 + 4095) / 4096));
}

TEST_F(OutputUploadTest, AnUnansweredChunkIsSentAgain) {
  scheduler_.put_outputs_to_ignore = 2;
  auto sent = upload({.chunk_timeout = 200ms, .retries = 3, .chunk_bytes = 1 << 20});
  ASSERT_TRUE(sent) << sent.error().to_string();
  EXPECT_EQ(scheduler_.outputs_stored[digest_], bytes_);
  EXPECT_EQ(scheduler_.put_outputs_seen, 3);
}

TEST_F(OutputUploadTest, ARefusalIsTheError) {
  scheduler_.refuse_outputs_with = "output belongs to no job with outputs assigned to this worker";
  auto sent = upload({});
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(sent.error().to_string(), HasSubstr("no job with outputs assigned to this worker"));
  EXPECT_TRUE(scheduler_.outputs_stored.empty());
}

TEST_F(OutputUploadTest, ASchedulerThatNeverAnswersIsUnavailable) {
  scheduler_.put_outputs_to_ignore = 1000;
  auto sent = upload({.chunk_timeout = 100ms, .retries = 2});
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(sent.error().to_string(), HasSubstr("is kiln-scheduler running?"));
  EXPECT_EQ(scheduler_.put_outputs_seen, 3);
}

}  // namespace
}  // namespace kiln::worker
