#include "worker/sandbox/sandbox.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <thread>

namespace kiln::sandbox {

CancelToken::CancelToken() {
  // An eventfd lets run() sleep in poll() on the child's output and still
  // wake at once on cancel, without a polling interval.
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

CancelToken::~CancelToken() {
  if (event_fd_ >= 0) ::close(event_fd_);
}

void CancelToken::cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  if (event_fd_ >= 0) {
    std::uint64_t one = 1;
    // The counter is never read, so it stays readable forever: every
    // waiter, present and future, sees POLLIN.
    [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
}

bool CancelToken::wait_for(std::chrono::milliseconds timeout) const {
  if (cancelled()) return true;
  if (event_fd_ < 0) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!cancelled() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return cancelled();
  }
  pollfd p{event_fd_, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cancelled()) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  return cancelled();
}

StdinProvider stdin_from_bytes(std::string bytes) {
  auto remaining = std::make_shared<std::optional<std::string>>(std::move(bytes));
  return [remaining]() -> Result<std::string> {
    if (!*remaining) return std::string();
    std::string out = std::move(**remaining);
    remaining->reset();
    return out;
  };
}

}  // namespace kiln::sandbox
