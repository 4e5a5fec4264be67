// An owned file descriptor: closed when its owner goes out of scope, on every
// path (early returns, errors, exceptions). The one fd owner in kiln; code
// that only borrows a descriptor keeps using a plain `int`.
//
//   UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
//   if (!fd) return errno_error("cannot open " + path);
//   ::read(fd.get(), buf, n);                       // borrowed for the call
//
//   KILN_ASSIGN_OR_RETURN(Pipe pipe, make_pipe());  // both ends O_CLOEXEC
//   pass_to_child(pipe.write.get());
//   pipe.write.reset();                             // close our copy now
//
//   if (int err = out.close(); err != 0) ...        // when close(2)'s error matters
//
// Contract: move-only; holds -1 when empty. The destructor and reset()
// ignore close(2)'s result; call close() where a failed close means lost
// data (files just written). Thread safety: like an int — one owner; moving
// or resetting while another thread uses get() is a race.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "common/error.h"

namespace kiln {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  // Takes ownership of `fd` (a negative value means "none").
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  // The descriptor, still owned by this object (-1 when empty).
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives the descriptor up without closing it; the caller owns it now.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the current descriptor (if any) and takes `fd` instead.
  void reset(int fd = -1) noexcept {
    int old = std::exchange(fd_, fd < 0 ? -1 : fd);
    if (old >= 0) ::close(old);
  }

  // Closes now and reports close(2)'s failure: 0, or its errno. Empty afterwards either way.
  int close() noexcept {
    int old = std::exchange(fd_, -1);
    if (old < 0 || ::close(old) == 0) return 0;
    return errno;
  }

 private:
  int fd_ = -1;
};

// Both ends of a pipe(2).
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// A new pipe; `flags` as for pipe2(2) (O_CLOEXEC by default, so that child
// processes get only the ends handed to them explicitly).
Result<Pipe> make_pipe(int flags = O_CLOEXEC);

}  // namespace kiln
