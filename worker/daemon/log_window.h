// Back-pressure on job logs (docs/worker.md, "Job logs and memory"): the
// bytes of each job attempt's log that a job thread has handed on and the
// session has not released yet (queued for the event loop, kept until the
// scheduler acknowledges them, on the socket). A job thread that writes log
// text waits while its job has `window` bytes or more outstanding; since it
// is the step's output reader, the step's output pipe fills and the step
// itself waits. The worker's memory for logs is thus about `window` per
// running job, whatever the steps print.
//
//   LogWindow window(1 << 20);
//   // job thread, before queueing `text` for the loop:
//   if (!window.acquire(key, text.size(), job.cancel)) return;   // may wait; false: drop it
//   // event loop, when the session says it holds nothing below `offset`:
//   window.release(key, offset);
//   // ... or that it wants no more of the job's log (over the scheduler's cap):
//   window.drop_rest(key);
//   // after cancelling a job, so that its waiting thread looks at its token:
//   window.wake_all();
//
// Offsets count a job's log bytes in the order the job thread acquired them
// (the session numbers the text it receives the same way). A cancelled job
// never waits: its text is counted and goes on (a cancelled step is being
// killed, so little more comes).
// Thread safety: every member may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "common/cancel_token.h"
#include "worker/daemon/job_executor.h"

namespace kiln::worker {

class LogWindow {
 public:
  // `window` 0 means no bound (nobody waits).
  explicit LogWindow(std::size_t window) : window_(window) {}

  // Waits until `key` has less than the window outstanding, or `cancel` is
  // cancelled; then counts `bytes` more as outstanding and returns true. After
  // drop_rest(key) it counts them as produced and released at once and
  // returns false: the caller drops the text.
  bool acquire(const JobKey& key, std::size_t bytes, const CancelToken& cancel);
  // Everything of `key`'s log below `offset` is released (an offset not
  // past the last one changes nothing).
  void release(const JobKey& key, std::uint64_t offset);
  // Nothing more of `key`'s log is wanted: acquire() drops it (and wakes a
  // waiting writer).
  void drop_rest(const JobKey& key);
  // Wakes every waiting thread to look at its cancel token again.
  void wake_all();
  // The job ended: its counts go.
  void forget(const JobKey& key);
  // Bytes acquired and not released.
  std::uint64_t outstanding(const JobKey& key) const;
  // Every byte of `key`'s log acquired, dropped ones included: the log's length.
  std::uint64_t produced(const JobKey& key) const;

 private:
  struct Counts {
    std::uint64_t acquired = 0;
    std::uint64_t released = 0;
    bool drop = false;
  };
  const std::size_t window_;
  mutable std::mutex mu_;
  std::condition_variable room_;
  std::map<JobKey, Counts> jobs_;
};

}  // namespace kiln::worker
