// Child processes: the one way kiln starts programs (the sandbox's OCI
// runtime and its helper commands, the stores' tools, `kiln up`'s daemons).
//
//   // Run to completion, output captured, killed after 20 s:
//   KILN_ASSIGN_OR_RETURN(CommandOutput out, run_command({"runc", "list"}, {.timeout = 20s}));
//   if (!out.ok()) ... describe_wait_status(out.wait_status) ... out.output ...
//
//   // Start, then watch: stdout into a pipe of ours, its own process group.
//   KILN_ASSIGN_OR_RETURN(Pipe pipe, make_pipe());
//   KILN_ASSIGN_OR_RETURN(Subprocess child, Subprocess::spawn({"runc", "run", id},
//       {.stdout_fd = pipe.write.get(), .group = ProcessGroup::kNew}));
//   pipe.write.reset();
//   ... poll pipe.read and child.exit_fd() ...; int status = child.wait();
//
// Standard streams: each of stdin/stdout/stderr is /dev/null (kDevNull, the
// default), this process's own (kInherit), or an fd of the caller's (it
// stays the caller's; the child gets a copy; any fd works, 0-2 included). Nothing else is passed: every fd
// kiln opens is close-on-exec.
//
// Options that need code between fork and exec (parent_death_signal,
// subreaper) make spawn() fork; otherwise it uses posix_spawn (vfork-fast
// for a large parent). Either way, preparation happens before the fork and
// the child runs only async-signal-safe calls (kiln is multi-threaded), and
// a program that cannot be executed is an error from spawn() itself.
//
// Errors: spawn() fails when the program is missing (kNotFound, "is it
// installed...?") or cannot be executed, or the OS refuses pipes or
// processes. A command that runs but fails is NOT an error of run_command:
// look at CommandOutput::ok(). Thread safety: functions may be called from
// any thread; a Subprocess is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace kiln {

// Special values for SpawnOptions' stdin_fd, stdout_fd and stderr_fd.
inline constexpr int kDevNull = -1;  // /dev/null
inline constexpr int kInherit = -2;  // this process's own stream

enum class ProcessGroup {
  kInherit,     // the child stays in this process's group
  kNew,         // setpgid(0, 0): its own group (a terminal's Ctrl-C does not reach it)
  kNewSession,  // setsid(): its own session and group (it outlives a terminal)
};

struct SpawnOptions {
  int stdin_fd = kDevNull;
  int stdout_fd = kDevNull;
  int stderr_fd = kDevNull;
  // "KEY=VALUE" entries; nullopt: this process's environment.
  std::optional<std::vector<std::string>> env;
  // The child's working directory; empty: this process's.
  std::string cwd;
  // argv[0] without a '/' is looked up in this process's PATH.
  bool search_path = true;
  ProcessGroup group = ProcessGroup::kInherit;
  // An empty signal mask and the default action for SIGPIPE, SIGINT,
  // SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1 and SIGUSR2 (a blocked or
  // ignored signal would otherwise pass through exec). false: inherit both.
  bool reset_signals = true;
  // PR_SET_PDEATHSIG: the child gets this signal when the thread that
  // spawned it ends. If this process is gone before the child could ask for
  // it, the child exits with status 1 without running the program. 0: none.
  int parent_death_signal = 0;
  // The child becomes a small kiln process, a child subreaper, that runs
  // the program as its own child and then reaps every process orphaned
  // below it (a detached container's init, say) until none is left; it
  // reports each wait status (Subprocess::reaper_report) and exits. The
  // program gets the streams, working directory and environment above;
  // the options above apply to the subreaper (its group is the program's).
  bool subreaper = false;
  // When set, the program runs in a mount namespace of its own (propagation
  // private) in which this mount is detached: crun 1.8 mistakes a hybrid
  // cgroup host (v1 controllers plus an empty cgroup2 at
  // /sys/fs/cgroup/unified) for a v2 one unless that mount is hidden.
  // Done by the forked child with system calls, not by wrapping the
  // program in unshare(1) and a shell (three more programs per run).
  std::string hidden_mount;
};

// What a subreaper saw (SpawnOptions::subreaper).
struct ReaperReport {
  int program_status = 0;  // the program's wait status
  // Every orphan the subreaper collected: pid (as this process sees it) and wait status.
  std::vector<std::pair<pid_t, int>> orphans;
};

// A started child process. Destroying a Subprocess whose child has not been
// reaped waits for it (blocking); release() first to leave a child running.
class Subprocess {
 public:
  static Result<Subprocess> spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited (a pidfd); -1 if the kernel
  // has none (then call try_wait in a loop).
  int exit_fd() const { return pidfd_.get(); }
  // Non-blocking: true and the wait status once the child exited. (A child
  // someone else reaped counts as exited with status 0.)
  bool try_wait(int* status);
  // Blocks until the child exits; returns its wait status.
  int wait();
  // Waits up to `timeout`; the wait status, or nullopt if it still runs.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  bool reaped() const { return reaped_; }

  // Sends `sig` to the child (not to its descendants); nothing once reaped.
  void signal(int sig);
  // Sends `sig` to the child's whole process group (ProcessGroup::kNew or
  // kNewSession only); nothing once reaped.
  void signal_group(int sig);

  // Stops owning the child: no wait on destruction. Returns its pid.
  pid_t release();

  // SpawnOptions::subreaper only, after the child exited: what it reaped.
  ReaperReport reaper_report();

 private:
  Subprocess(pid_t pid, UniqueFd pidfd, bool own_group, UniqueFd report)
      : pid_(pid), pidfd_(std::move(pidfd)), own_group_(own_group), report_(std::move(report)) {}
  void reap_if_owned();

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool own_group_ = false;
  bool reaped_ = false;
  int status_ = 0;
  UniqueFd report_;  // subreaper: the read end of its status pipe
};

// Which of the child's output streams run_command collects into
// CommandOutput::output (in the order written when both); the others go
// where RunOptions::spawn says.
enum class Capture { kNone, kStdout, kStderr, kStdoutAndStderr };

struct RunOptions {
  SpawnOptions spawn;  // the captured streams' fds are ignored
  Capture capture = Capture::kStdoutAndStderr;
  // Keep at least the last `keep_bytes` of the captured output (at most
  // twice that): a command's last words are the useful ones.
  std::size_t keep_bytes = std::size_t{1} << 19;
  // Fed to the child's stdin (spawn.stdin_fd ignored) when set; a child
  // that stops reading does not fail the run.
  std::optional<std::string> stdin_data;
  // Kills the child (SIGKILL) and fails with kTimeout when it runs longer.
  std::optional<std::chrono::milliseconds> timeout;
};

struct CommandOutput {
  int wait_status = 0;  // as from waitpid
  std::string output;   // the captured stream(s)
  bool ok() const;      // exited with status 0
};

// Runs a command to completion: spawns it, feeds its stdin, collects its
// output until every writer closed it, and waits for it.
Result<CommandOutput> run_command(const std::vector<std::string>& argv, const RunOptions& options = {});

// "exited with status 2", "was killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int wait_status);

// "SIGKILL", "SIGTERM", ... or "signal 42".
std::string signal_name(int sig);

// The command line for messages: words joined by spaces, quoted when needed.
std::string format_command(const std::vector<std::string>& argv);

// write(2) to a pipe whose reader may be gone, without SIGPIPE killing the
// process: the signal is blocked for this thread and a pending one consumed.
// Returns what write returned (errno EPIPE when the reader is gone).
ssize_t write_without_sigpipe(int fd, const void* data, std::size_t size);

}  // namespace kiln
