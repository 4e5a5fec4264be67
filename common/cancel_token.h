// A one-way cancel flag shared between a thread doing long work (a build
// step, a copy, a fetch) and the threads that may want it stopped.
//
//   CancelToken cancel;                          // owned by whoever starts the work
//   std::thread stopper([&] { ...; cancel.cancel(); });
//   while (more_work()) {
//     if (cancel.cancelled()) return make_error(ErrorKind::kCancelled, "cancelled");
//     ...
//   }
//   // or, in a poll() loop: add {cancel.wait_fd(), POLLIN} to wake at once.
//
// Contract: once cancelled it stays cancelled. Not copyable or movable (work
// holds a reference). The wait_fd() belongs to the token. Thread safety:
// every member may be called from any thread at any time.
#pragma once

#include <atomic>
#include <chrono>

#include "common/unique_fd.h"

namespace kiln {

class CancelToken {
 public:
  CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Requests cancellation; wakes anything waiting on wait_fd(). Idempotent.
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // A file descriptor that becomes readable (POLLIN) once cancel() was
  // called, for poll() loops; -1 if the OS refused one (then poll the flag).
  // Owned by the token: do not read or close it.
  int wait_fd() const { return event_fd_.get(); }

  // Waits up to `timeout` for cancellation; true if cancelled.
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  std::atomic<bool> cancelled_{false};
  UniqueFd event_fd_;
};

}  // namespace kiln
