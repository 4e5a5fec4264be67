// Child processes for the sandbox (internal to worker/sandbox): starting the
// OCI runtime with chosen standard fds, and running its helper commands
// (kill, delete, list) to completion with a time limit.
//
//   KILN_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::spawn({"runc", "run", id},
//                                                                 {.stdout_fd = pipe_w}));
//   ... poll child.exit_fd() ...; int status = child.wait();
//   KILN_ASSIGN_OR_RETURN(CommandOutput out, run_command({"runc", "list"}, 10s));
//
// Contract: children start in their own process group (a terminal's Ctrl-C
// reaches kiln, which then cancels in order) with default signal
// dispositions and an empty signal mask; only fds 0-2 are passed (every fd
// kiln opens is close-on-exec). Thread safety: all functions may be called
// from any thread; a ChildProcess is used by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace kiln::sandbox {

struct StdFds {
  int stdin_fd = -1;   // -1: /dev/null
  int stdout_fd = -1;  // -1: /dev/null
  int stderr_fd = -1;  // -1: /dev/null
};

// A started child; reaps it (blocking) on destruction if wait() was not called.
class ChildProcess {
 public:
  static Result<ChildProcess> spawn(const std::vector<std::string>& argv, const StdFds& fds);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited (a pidfd); -1 if the kernel
  // has none (then use try_wait in a loop).
  int exit_fd() const { return pidfd_; }
  // Non-blocking: true and the wait status once the child exited.
  bool try_wait(int* status);
  // Blocks until the child exits; returns its wait status.
  int wait();
  // Sends a signal to the child (not to its descendants).
  void signal(int sig);
  bool reaped() const { return reaped_; }

 private:
  friend class DetachedRun;
  ChildProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Runs a runtime's `run --detach` so that the container's process inherits
// the given stdio itself (one pipe for stdout and stderr keeps their order;
// a foreground `runc run` would copy them through separate pipes) and still
// yields the container's own wait status: a small child process of kiln
// becomes a child subreaper, starts the runtime, and reaps the container's
// init when the runtime has left it behind.
class DetachedRun {
 public:
  struct Outcome {
    int runtime_status = 0;  // wait status of `run --detach`
    // Every orphan the reaper collected (the container's init, and any
    // helper process the runtime left): pid and wait status.
    std::vector<std::pair<pid_t, int>> reaped;
  };

  static Result<DetachedRun> start(const std::vector<std::string>& argv, const StdFds& fds);
  DetachedRun(DetachedRun&& other) noexcept;
  DetachedRun& operator=(DetachedRun&&) = delete;
  ~DetachedRun();

  // The subreaper: exits once the runtime and the container have ended.
  ChildProcess& reaper() { return reaper_; }
  // Kills the subreaper and the runtime (not the container: use its cgroup).
  void kill();
  // Call after reaper() exited.
  Outcome outcome();

 private:
  DetachedRun(ChildProcess reaper, int status_fd) : reaper_(std::move(reaper)), status_fd_(status_fd) {}
  ChildProcess reaper_;
  int status_fd_ = -1;  // closed by outcome()
};

struct CommandOutput {
  int wait_status = 0;  // as from waitpid
  std::string output;   // stdout and stderr, merged
  bool ok() const;      // exited with status 0
};

// Runs a command to completion, capturing its output; kills it (SIGKILL) and
// fails with kTimeout if it runs longer than `timeout`. A command that runs
// but fails is NOT an error here: look at CommandOutput::ok().
Result<CommandOutput> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// "exited with status 2", "was killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int wait_status);

// "SIGKILL", "SIGTERM", ... or "signal 42".
std::string signal_name(int sig);

// The command line for messages: words joined by spaces, quoted when needed.
std::string format_command(const std::vector<std::string>& argv);

}  // namespace kiln::sandbox
