#include "worker/daemon/log_window.h"

#include <chrono>

namespace kiln::worker {

bool LogWindow::acquire(const JobKey& key, std::size_t bytes, const CancelToken& cancel) {
  std::unique_lock lock(mu_);
  auto full = [&] {
    const Counts& counts = jobs_[key];  // looked up again: forget() may run while this waits
    return !counts.drop && window_ > 0 && counts.acquired - counts.released >= window_;
  };
  // A wake-up may be missed between cancel() and wake_all(): look again
  // every 100 ms whatever happens.
  while (full() && !cancel.cancelled()) room_.wait_for(lock, std::chrono::milliseconds(100));
  Counts& counts = jobs_[key];
  counts.acquired += bytes;
  if (!counts.drop) return true;
  counts.released += bytes;
  return false;
}

void LogWindow::drop_rest(const JobKey& key) {
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(key);
    if (it == jobs_.end()) return;
    it->second.drop = true;
  }
  room_.notify_all();
}

void LogWindow::release(const JobKey& key, std::uint64_t offset) {
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(key);
    if (it == jobs_.end() || offset <= it->second.released) return;
    it->second.released = offset;
  }
  room_.notify_all();
}

void LogWindow::wake_all() {
  room_.notify_all();
}

void LogWindow::forget(const JobKey& key) {
  std::lock_guard lock(mu_);
  jobs_.erase(key);
}

std::uint64_t LogWindow::produced(const JobKey& key) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(key);
  return it == jobs_.end() ? 0 : it->second.acquired;
}

std::uint64_t LogWindow::outstanding(const JobKey& key) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(key);
  return it == jobs_.end() ? 0 : it->second.acquired - it->second.released;
}

}  // namespace kiln::worker
