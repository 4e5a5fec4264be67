#include "common/cancel_token.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

namespace kiln {

// An eventfd lets a poll() loop sleep on its other fds and still wake at
// once on cancel, without a polling interval.
CancelToken::CancelToken() : event_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void CancelToken::cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  if (event_fd_) {
    std::uint64_t one = 1;
    // The counter is never read, so it stays readable forever: every
    // waiter, present and future, sees POLLIN.
    [[maybe_unused]] ssize_t n = ::write(event_fd_.get(), &one, sizeof one);
  }
}

bool CancelToken::wait_for(std::chrono::milliseconds timeout) const {
  if (cancelled()) return true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!event_fd_) {
    while (!cancelled() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return cancelled();
  }
  pollfd p{event_fd_.get(), POLLIN, 0};
  while (!cancelled()) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  return cancelled();
}

}  // namespace kiln
