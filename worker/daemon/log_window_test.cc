// LogWindow: a job thread that writes log text waits while its job has a
// window's worth in flight, goes on when the loop releases some, and never
// waits once its job is cancelled.
#include "worker/daemon/log_window.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/support/child.h"

namespace kiln::worker {
namespace {

using namespace std::chrono_literals;

TEST(LogWindow, AWriterWaitsAtTheWindowUntilTheLoopReleasesText) {
  LogWindow window(1000);
  const JobKey job("j1", 1);
  CancelToken cancel;
  window.acquire(job, 600, cancel);
  window.acquire(job, 600, cancel);  // under the window when asked: goes through, now 1200 out
  EXPECT_EQ(window.outstanding(job), 1200u);
  std::atomic<bool> through{false};
  std::thread writer([&] {
    window.acquire(job, 100, cancel);
    through = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(through.load()) << "wrote past its window";
  window.release(job, 100);  // 1100 still out: it keeps waiting
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(through.load());
  window.release(job, 300);  // 900 out: room
  EXPECT_TRUE(testing::eventually([&] { return through.load(); }));
  writer.join();
  EXPECT_EQ(window.outstanding(job), 1000u);
  // Another job has a window of its own.
  window.acquire(JobKey("j2", 1), 999, cancel);
  EXPECT_EQ(window.outstanding(JobKey("j2", 1)), 999u);
}

TEST(LogWindow, ACancelledJobNeverWaits) {
  LogWindow window(10);
  const JobKey job("j1", 1);
  CancelToken cancel;
  window.acquire(job, 10, cancel);
  std::atomic<bool> through{false};
  std::thread writer([&] {
    window.acquire(job, 5, cancel);
    through = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(through.load());
  cancel.cancel();
  window.wake_all();
  EXPECT_TRUE(testing::eventually([&] { return through.load(); }));
  writer.join();
  window.acquire(job, 1000, cancel);  // cancelled already: counted, not held back
  EXPECT_EQ(window.outstanding(job), 1015u);
  // Releases of a forgotten job change nothing.
  window.forget(job);
  window.release(job, 5000);
  EXPECT_EQ(window.outstanding(job), 0u);
}

TEST(LogWindow, OnceTheRestIsUnwantedTextIsCountedAndDroppedWithoutWaiting) {
  LogWindow window(10);
  const JobKey job("j1", 1);
  CancelToken cancel;
  EXPECT_TRUE(window.acquire(job, 10, cancel));
  std::atomic<bool> kept{true};
  std::thread writer([&] { kept = window.acquire(job, 5, cancel); });
  std::this_thread::sleep_for(100ms);
  window.drop_rest(job);  // wakes the waiting writer: its text is dropped
  writer.join();
  EXPECT_FALSE(kept.load());
  EXPECT_FALSE(window.acquire(job, 1000, cancel));
  EXPECT_EQ(window.outstanding(job), 10u);  // what was kept is still in flight
  EXPECT_EQ(window.produced(job), 1015u);   // the log's whole length
}

TEST(LogWindow, AZeroWindowHoldsNothingBack) {
  LogWindow window(0);
  CancelToken cancel;
  window.acquire(JobKey("j1", 1), 1u << 30, cancel);
  EXPECT_EQ(window.outstanding(JobKey("j1", 1)), 1u << 30);
}

}  // namespace
}  // namespace kiln::worker
