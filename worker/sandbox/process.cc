#include "worker/sandbox/process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace kiln::sandbox {
namespace {

// Closes a descriptor on every path out of a scope.
class FdGuard {
 public:
  explicit FdGuard(int fd = -1) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
#else
  (void)pid;
  return -1;
#endif
}

}  // namespace

Result<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv, const StdFds& fds) {
  if (argv.empty()) return make_error(ErrorKind::kInternal, "spawn: empty command");
  FdGuard dev_null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (dev_null.get() < 0) return errno_error("open /dev/null");

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  int targets[3] = {fds.stdin_fd, fds.stdout_fd, fds.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    // dup2 clears close-on-exec on the copy, so the child keeps exactly these.
    posix_spawn_file_actions_adddup2(&actions, targets[i] >= 0 ? targets[i] : dev_null.get(), i);
  }
  sigset_t empty, all_default;
  sigemptyset(&empty);
  sigemptyset(&all_default);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&all_default, sig);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all_default);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    return errno_error(fmt::format("cannot start {:?} (is it installed and in PATH?)", argv[0]), err);
  }
  return ChildProcess(pid, pidfd_open(pid));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), pidfd_(other.pidfd_), reaped_(other.reaped_), status_(other.status_) {
  other.pid_ = -1;
  other.pidfd_ = -1;
  other.reaped_ = true;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) wait();
  if (pidfd_ >= 0) ::close(pidfd_);
}

bool ChildProcess::try_wait(int* status) {
  if (reaped_) {
    *status = status_;
    return true;
  }
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    reaped_ = true;
    status_ = st;
    *status = st;
    return true;
  }
  if (r < 0) {
    // ECHILD: someone else reaped it (SIGCHLD ignored); nothing to wait for.
    reaped_ = true;
    status_ = 0;
    *status = 0;
    return true;
  }
  return false;
}

int ChildProcess::wait() {
  if (reaped_) return status_;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  status_ = r == pid_ ? st : 0;
  return status_;
}

void ChildProcess::signal(int sig) {
  // A pid is only safe to signal until it is reaped (then it may be reused).
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

namespace {

// argv[0] as execve needs it: a path, found in PATH like execvp would.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = (end > start ? dirs.substr(start, end - start) : ".") + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// Writes all of `data` or gives up; only async-signal-safe calls.
void write_all_raw(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

Result<DetachedRun> DetachedRun::start(const std::vector<std::string>& argv, const StdFds& fds) {
  if (argv.empty()) return make_error(ErrorKind::kInternal, "DetachedRun: empty command");
  // Everything the child needs is prepared here: between fork and exit it
  // may only use async-signal-safe calls (kiln is multi-threaded).
  std::string program = find_program(argv[0]);
  if (program.empty())
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("cannot find {:?} in PATH: is it installed?", argv[0]));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  FdGuard dev_null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (dev_null.get() < 0) return errno_error("open /dev/null");
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) return errno_error("create a status pipe");
  FdGuard status_r(status_pipe[0]), status_w(status_pipe[1]);
  int in = fds.stdin_fd >= 0 ? fds.stdin_fd : dev_null.get();
  int out = fds.stdout_fd >= 0 ? fds.stdout_fd : dev_null.get();
  int err = fds.stderr_fd >= 0 ? fds.stderr_fd : dev_null.get();
  int report_fd = status_w.get();

  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork the sandbox's reaper process");
  if (pid == 0) {
    // The reaper. Orphans among its descendants (the detached container's
    // init) are re-parented to it instead of to PID 1.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    pid_t runtime = ::fork();
    if (runtime < 0) ::_exit(126);
    if (runtime == 0) {
      // dup2 clears close-on-exec on the copies: the runtime keeps exactly 0-2.
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execve(program.c_str(), args.data(), environ);
      ::_exit(127);
    }
    // The reaper never execs, so it holds a copy of every fd kiln had open
    // (other steps' output pipes too): keep only the status pipe.
    if (report_fd > 0) ::close_range(0, static_cast<unsigned>(report_fd) - 1, 0);
    ::close_range(static_cast<unsigned>(report_fd) + 1, ~0U, 0);
    int runtime_status = 0;
    while (::waitpid(runtime, &runtime_status, 0) < 0 && errno == EINTR) {
    }
    write_all_raw(report_fd, &runtime_status, sizeof runtime_status);
    for (;;) {
      int st = 0;
      pid_t child = ::waitpid(-1, &st, 0);
      if (child < 0 && errno == EINTR) continue;
      if (child < 0) break;  // ECHILD: nothing left
      int record[2] = {child, st};
      write_all_raw(report_fd, record, sizeof record);
    }
    ::_exit(0);
  }
  status_w.reset();
  return DetachedRun(ChildProcess(pid, pidfd_open(pid)), status_r.release());
}

DetachedRun::DetachedRun(DetachedRun&& other) noexcept
    : reaper_(std::move(other.reaper_)), status_fd_(other.status_fd_) {
  other.status_fd_ = -1;
}

DetachedRun::~DetachedRun() {
  if (status_fd_ >= 0) ::close(status_fd_);
}

void DetachedRun::kill() {
  if (reaper_.pid() > 0 && !reaper_.reaped()) ::kill(-reaper_.pid(), SIGKILL);
}

DetachedRun::Outcome DetachedRun::outcome() {
  Outcome o;
  if (status_fd_ < 0) return o;
  std::string bytes;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(status_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  if (bytes.size() >= sizeof(int)) std::memcpy(&o.runtime_status, bytes.data(), sizeof(int));
  for (std::size_t at = sizeof(int); at + 2 * sizeof(int) <= bytes.size(); at += 2 * sizeof(int)) {
    int record[2];
    std::memcpy(record, bytes.data() + at, sizeof record);
    o.reaped.emplace_back(record[0], record[1]);
  }
  ::close(status_fd_);
  status_fd_ = -1;
  return o;
}

bool CommandOutput::ok() const {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

Result<CommandOutput> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return errno_error("pipe");
  FdGuard read_end(pipe_fds[0]);
  FdGuard write_end(pipe_fds[1]);
  KILN_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::spawn(argv, {.stdout_fd = write_end.get(),
                                                                       .stderr_fd = write_end.get()}));
  write_end.reset();

  CommandOutput out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[8192];
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t got = ::read(read_end.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the command (and anything it started) closed its output
    // Helper commands print little; keep a bounded tail in case one does not.
    out.output.append(buf, static_cast<std::size_t>(got));
    if (out.output.size() > (1 << 20)) out.output.erase(0, out.output.size() - (1 << 19));
  }
  if (timed_out) {
    child.signal(SIGKILL);
    child.wait();
    return make_error(ErrorKind::kTimeout, fmt::format("{} did not finish within {} ms; it was killed",
                                                       format_command(argv), timeout.count()));
  }
  out.wait_status = child.wait();
  return out;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  if (abbrev == nullptr) return fmt::format("signal {}", sig);
  return fmt::format("SIG{}", abbrev);
}

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(wait_status),
                       signal_name(WTERMSIG(wait_status)));
  return fmt::format("ended with wait status {}", wait_status);
}

std::string format_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`*?&;|<>()") == std::string::npos;
    out += plain ? a : fmt::format("{:?}", a);
  }
  return out;
}

}  // namespace kiln::sandbox
