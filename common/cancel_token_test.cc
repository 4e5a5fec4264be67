// CancelToken: the flag, its wait fd and wait_for, across threads.
#include "common/cancel_token.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

namespace kiln {
namespace {

using namespace std::chrono_literals;

TEST(CancelToken, StartsClearAndStaysCancelled) {
  CancelToken token;
  EXPECT_FALSE(token.cancelled());
  EXPECT_FALSE(token.wait_for(1ms));
  token.cancel();
  token.cancel();  // idempotent
  EXPECT_TRUE(token.cancelled());
  EXPECT_TRUE(token.wait_for(0ms));
}

TEST(CancelToken, WaitFdWakesPollOnCancelFromAnotherThread) {
  CancelToken token;
  ASSERT_GE(token.wait_fd(), 0);
  pollfd p{token.wait_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // not readable before cancel
  std::thread other([&] { token.cancel(); });
  EXPECT_EQ(::poll(&p, 1, 60'000), 1);
  other.join();
  EXPECT_TRUE(p.revents & POLLIN);
  // Still readable for later waiters.
  p.revents = 0;
  EXPECT_EQ(::poll(&p, 1, 0), 1);
}

TEST(CancelToken, WaitForReturnsWhenCancelledElsewhere) {
  CancelToken token;
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    token.cancel();
  });
  EXPECT_TRUE(token.wait_for(std::chrono::hours(1)));
  other.join();
}

}  // namespace
}  // namespace kiln
