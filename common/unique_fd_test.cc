// UniqueFd: closes on scope exit, moves, releases, resets; make_pipe.
#include "common/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <utility>

namespace kiln {
namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

int open_null() {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  return fd;
}

TEST(UniqueFd, ClosesWhenItGoesOutOfScope) {
  int raw = open_null();
  {
    UniqueFd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_TRUE(fd);
    EXPECT_EQ(fd.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, EmptyByDefaultAndForNegativeValues) {
  UniqueFd none;
  EXPECT_FALSE(none);
  EXPECT_EQ(none.get(), -1);
  UniqueFd failed_open(::open("/nonexistent/kiln", O_RDONLY));
  EXPECT_FALSE(failed_open);
  EXPECT_EQ(failed_open.close(), 0);
}

TEST(UniqueFd, MovesOwnership) {
  int raw = open_null();
  UniqueFd a(raw);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(b.get(), raw);
  UniqueFd c;
  int other = open_null();
  c.reset(other);
  c = std::move(b);  // closes `other`, takes `raw`
  EXPECT_FALSE(is_open(other));
  EXPECT_EQ(c.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST(UniqueFd, ReleaseHandsTheFdOver) {
  int raw = open_null();
  int released;
  {
    UniqueFd fd(raw);
    released = fd.release();
    EXPECT_FALSE(fd);
  }
  EXPECT_EQ(released, raw);
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

TEST(UniqueFd, ResetClosesTheOldOne) {
  int first = open_null();
  int second = open_null();
  UniqueFd fd(first);
  fd.reset(second);
  EXPECT_FALSE(is_open(first));
  EXPECT_EQ(fd.get(), second);
  fd.reset();
  EXPECT_FALSE(is_open(second));
  EXPECT_FALSE(fd);
}

TEST(UniqueFd, CloseReportsSuccess) {
  int raw = open_null();
  UniqueFd fd(raw);
  EXPECT_EQ(fd.close(), 0);
  EXPECT_FALSE(fd);
  EXPECT_FALSE(is_open(raw));
}

TEST(MakePipe, GivesTwoCloseOnExecEndsThatTalk) {
  auto pipe = make_pipe();
  ASSERT_TRUE(pipe) << pipe.error().to_string();
  EXPECT_TRUE(::fcntl(pipe->read.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(pipe->write.get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(pipe->write.get(), "hi", 2), 2);
  pipe->write.reset();
  char buf[4];
  EXPECT_EQ(::read(pipe->read.get(), buf, sizeof buf), 2);
  EXPECT_EQ(::read(pipe->read.get(), buf, sizeof buf), 0);  // EOF: the write end is closed
}

}  // namespace
}  // namespace kiln
