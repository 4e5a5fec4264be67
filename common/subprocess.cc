#include "common/subprocess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace kiln {
namespace {

// The signals reset_signals gives back their default action.
constexpr int kResetSignals[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};

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

// argv[0] as execve needs it: a path, found in PATH as execvp would.
std::string find_program(const std::string& name) {
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

// Why a forked child could not run the program, sent back through a
// close-on-exec pipe (which simply closes when the exec succeeds).
enum class Stage : int { kChdir = 1, kExec = 2, kFork = 3, kHideMount = 4 };
struct ChildFailure {
  Stage stage;
  int err;
};

[[noreturn]] void fail_in_child(int report_fd, Stage stage) {
  ChildFailure failure{stage, errno};
  write_all_raw(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Everything a forked child needs, prepared before the fork: between fork
// and exec it may only use async-signal-safe calls.
struct Prepared {
  const char* program;
  char* const* argv;
  char* const* envp;
  int sources[3];            // fd to put at 0, 1, 2; -1: leave it
  const char* cwd;           // nullptr: stay
  const char* hidden_mount;  // nullptr: none (SpawnOptions::hidden_mount)
};

// In the child: standard streams, working directory, exec.
[[noreturn]] void exec_in_child(const Prepared& p, int failure_fd) {
  // dup2 clears close-on-exec on the copy: the program keeps exactly these.
  // (No source is itself one of 0-2: see spawn().)
  for (int i = 0; i < 3; ++i)
    if (p.sources[i] >= 0) ::dup2(p.sources[i], i);
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) fail_in_child(failure_fd, Stage::kChdir);
  if (p.hidden_mount != nullptr &&
      (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
       ::umount2(p.hidden_mount, MNT_DETACH) != 0))
    fail_in_child(failure_fd, Stage::kHideMount);
  ::execve(p.program, p.argv, p.envp);
  fail_in_child(failure_fd, Stage::kExec);
}

// The subreaper's life after it started the program: report the program's
// wait status, then reap orphans until none is left.
[[noreturn]] void reap_in_child(pid_t program, int report_fd) {
  // It never execs, so it holds a copy of every fd this process had open
  // (other children's pipes too): keep only the report pipe.
  if (report_fd > 0) ::close_range(0, static_cast<unsigned>(report_fd) - 1, 0);
  ::close_range(static_cast<unsigned>(report_fd) + 1, ~0U, 0);
  int program_status = 0;
  while (::waitpid(program, &program_status, 0) < 0 && errno == EINTR) {
  }
  write_all_raw(report_fd, &program_status, sizeof program_status);
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

// The child fills fds 0-2 first; what it must still find afterwards (a
// source, the failure pipe) lives above them even when this process runs
// with some of 0-2 closed.
Result<UniqueFd> above_stdio(UniqueFd fd) {
  if (fd.get() > 2) return fd;
  UniqueFd high(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!high) return errno_error("cannot move an fd above the standard streams");
  return high;
}

std::unexpected<Error> start_error(const std::string& program, const SpawnOptions& options, int err) {
  if (options.cwd.empty()) return errno_error(fmt::format("cannot start {:?}", program), err);
  return errno_error(fmt::format("cannot start {:?} in {}", program, options.cwd), err);
}

}  // namespace

Result<Subprocess> Subprocess::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return make_error(ErrorKind::kInternal, "spawn: empty command");
  std::string program = argv[0];
  if (options.search_path && program.find('/') == std::string::npos) {
    program = find_program(argv[0]);
    if (program.empty())
      return make_error(ErrorKind::kNotFound,
                        fmt::format("cannot find {:?} in PATH: is it installed?", argv[0]));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env_entries;
  if (options.env) {
    for (const auto& e : *options.env) env_entries.push_back(const_cast<char*>(e.c_str()));
    env_entries.push_back(nullptr);
  }
  char* const* envp = options.env ? env_entries.data() : environ;

  // The fds to put at 0-2. A source that is itself one of 0-2 is copied
  // above them first, so that filling one target cannot clobber another's
  // source (and a close-on-exec fd at its own target is not lost).
  UniqueFd dev_null;
  UniqueFd moved[3];
  int sources[3] = {-1, -1, -1};
  const int wanted[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    int fd = wanted[i];
    if (fd == kInherit) continue;
    if (fd == kDevNull) {
      if (!dev_null) {
        UniqueFd opened(::open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!opened) return errno_error("cannot open /dev/null");
        KILN_ASSIGN_OR_RETURN(dev_null, above_stdio(std::move(opened)));
      }
      fd = dev_null.get();
    } else if (fd >= 0 && fd <= 2) {
      moved[i].reset(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
      if (!moved[i]) return errno_error(fmt::format("cannot copy fd {} for {:?}", fd, argv[0]));
      fd = moved[i].get();
    } else if (fd < 0) {
      return make_error(ErrorKind::kInternal,
                        fmt::format("spawn {:?}: bad fd {} for stream {}", argv[0], fd, i));
    }
    sources[i] = fd;
  }
  const bool own_group = options.group != ProcessGroup::kInherit;

  if (options.parent_death_signal == 0 && !options.subreaper && options.hidden_mount.empty()) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < 3; ++i)
      if (sources[i] >= 0) posix_spawn_file_actions_adddup2(&actions, sources[i], i);
    if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
    short flags = 0;
    if (options.reset_signals) {
      sigset_t empty, defaults;
      sigemptyset(&empty);
      sigemptyset(&defaults);
      for (int sig : kResetSignals) sigaddset(&defaults, sig);
      posix_spawnattr_setsigmask(&attr, &empty);
      posix_spawnattr_setsigdefault(&attr, &defaults);
      flags |= POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    }
    if (options.group == ProcessGroup::kNew) {
      posix_spawnattr_setpgroup(&attr, 0);
      flags |= POSIX_SPAWN_SETPGROUP;
    } else if (options.group == ProcessGroup::kNewSession) {
      flags |= POSIX_SPAWN_SETSID;
    }
    posix_spawnattr_setflags(&attr, flags);
    pid_t pid = -1;
    int err = ::posix_spawn(&pid, program.c_str(), &actions, &attr, args.data(), envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0) return start_error(argv[0], options, err);
    return Subprocess(pid, UniqueFd(pidfd_open(pid)), own_group, UniqueFd());
  }

  // fork + exec: the child has work to do before the program runs.
  KILN_ASSIGN_OR_RETURN(Pipe failure, make_pipe(O_CLOEXEC));
  KILN_ASSIGN_OR_RETURN(failure.write, above_stdio(std::move(failure.write)));
  Pipe report;
  if (options.subreaper) {
    KILN_ASSIGN_OR_RETURN(report, make_pipe(O_CLOEXEC));
  }
  sigset_t empty;
  sigemptyset(&empty);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  const Prepared prepared{program.c_str(),
                          args.data(),
                          envp,
                          {sources[0], sources[1], sources[2]},
                          options.cwd.empty() ? nullptr : options.cwd.c_str(),
                          options.hidden_mount.empty() ? nullptr : options.hidden_mount.c_str()};
  const int failure_fd = failure.write.get();
  const int report_fd = report.write.get();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return errno_error(fmt::format("cannot fork to start {:?}", argv[0]));
  if (pid == 0) {
    if (options.reset_signals) {
      ::sigprocmask(SIG_SETMASK, &empty, nullptr);
      for (int sig : kResetSignals) ::sigaction(sig, &default_action, nullptr);
    }
    if (options.group == ProcessGroup::kNew) ::setpgid(0, 0);
    if (options.group == ProcessGroup::kNewSession) ::setsid();
    if (options.subreaper) ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if (options.parent_death_signal != 0) {
      ::prctl(PR_SET_PDEATHSIG, options.parent_death_signal, 0, 0, 0);
      if (::getppid() != parent) ::_exit(1);  // the parent is already gone
    }
    if (!options.subreaper) exec_in_child(prepared, failure_fd);
    // vfork: the program's process borrows this one's memory until its exec
    // (exec_in_child makes only system calls), so the whole address space
    // is not copied a second time.
    pid_t program_pid = ::vfork();
    if (program_pid < 0) fail_in_child(failure_fd, Stage::kFork);
    if (program_pid == 0) exec_in_child(prepared, failure_fd);
    reap_in_child(program_pid, report_fd);
  }
  failure.write.reset();
  report.write.reset();
  Subprocess child(pid, UniqueFd(pidfd_open(pid)), own_group, std::move(report.read));
  // EOF: the program was executed (its copy closed on exec). Otherwise the
  // child says why not, and exits.
  ChildFailure why{};
  ssize_t n;
  do {
    n = ::read(failure.read.get(), &why, sizeof why);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof why)) {
    child.wait();
    if (why.stage == Stage::kFork)
      return errno_error(fmt::format("cannot fork to start {:?}", argv[0]), why.err);
    if (why.stage == Stage::kHideMount)
      return errno_error(fmt::format("cannot start {:?}: hiding {} in a mount namespace of its own", argv[0],
                                     options.hidden_mount),
                         why.err);
    return start_error(argv[0], options, why.err);
  }
  return child;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      own_group_(other.own_group_),
      reaped_(std::exchange(other.reaped_, true)),
      status_(other.status_),
      report_(std::move(other.report_)) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    reap_if_owned();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    own_group_ = other.own_group_;
    reaped_ = std::exchange(other.reaped_, true);
    status_ = other.status_;
    report_ = std::move(other.report_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  reap_if_owned();
}

void Subprocess::reap_if_owned() {
  if (pid_ > 0 && !reaped_) wait();
}

bool Subprocess::try_wait(int* status) {
  if (reaped_) {
    *status = status_;
    return true;
  }
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  reaped_ = true;
  // r < 0 (ECHILD): someone else reaped it (SIGCHLD ignored); nothing to wait for.
  status_ = r == pid_ ? st : 0;
  *status = status_;
  return true;
}

int Subprocess::wait() {
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

std::optional<int> Subprocess::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (!try_wait(&status)) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (pidfd_) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
  }
  return status;
}

void Subprocess::signal(int sig) {
  // A pid is only safe to signal until it is reaped (then it may be reused).
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void Subprocess::signal_group(int sig) {
  if (own_group_ && pid_ > 0 && !reaped_) ::kill(-pid_, sig);
}

pid_t Subprocess::release() {
  pid_t pid = std::exchange(pid_, -1);
  reaped_ = true;
  return pid;
}

ReaperReport Subprocess::reaper_report() {
  ReaperReport report;
  if (!report_) return report;
  std::string bytes;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(report_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  report_.reset();
  if (bytes.size() >= sizeof(int)) std::memcpy(&report.program_status, bytes.data(), sizeof(int));
  for (std::size_t at = sizeof(int); at + 2 * sizeof(int) <= bytes.size(); at += 2 * sizeof(int)) {
    int record[2];
    std::memcpy(record, bytes.data() + at, sizeof record);
    report.orphans.emplace_back(record[0], record[1]);
  }
  return report;
}

bool CommandOutput::ok() const {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

Result<CommandOutput> run_command(const std::vector<std::string>& argv, const RunOptions& options) {
  SpawnOptions spawn = options.spawn;
  Pipe output, input;
  if (options.capture != Capture::kNone) {
    KILN_ASSIGN_OR_RETURN(output, make_pipe(O_CLOEXEC));
    if (options.capture != Capture::kStderr) spawn.stdout_fd = output.write.get();
    if (options.capture != Capture::kStdout) spawn.stderr_fd = output.write.get();
  }
  if (options.stdin_data) {
    KILN_ASSIGN_OR_RETURN(input, make_pipe(O_CLOEXEC));
    spawn.stdin_fd = input.read.get();
    ::fcntl(input.write.get(), F_SETFL, O_NONBLOCK);
  }
  KILN_ASSIGN_OR_RETURN(Subprocess child, Subprocess::spawn(argv, spawn));
  output.write.reset();
  input.read.reset();
  if (options.stdin_data && options.stdin_data->empty()) input.write.reset();

  using Clock = std::chrono::steady_clock;
  const auto deadline = options.timeout ? Clock::now() + *options.timeout : Clock::time_point::max();
  auto left_ms = [&]() -> int {
    if (!options.timeout) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
  };
  CommandOutput out;
  bool timed_out = false;
  std::size_t written = 0;
  char buf[8192];
  while (output.read || input.write) {
    if (options.timeout && Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{output.read.get(), POLLIN, 0}, {input.write.get(), POLLOUT, 0}};
    int n = ::poll(fds, 2, left_ms());
    if (n <= 0) continue;  // EINTR, or the deadline (checked above)
    if (fds[0].revents != 0) {
      ssize_t got = ::read(output.read.get(), buf, sizeof buf);
      if (got > 0) {
        out.output.append(buf, static_cast<std::size_t>(got));
        std::size_t size = out.output.size();
        if (size > options.keep_bytes && size - options.keep_bytes > options.keep_bytes)
          out.output.erase(0, size - options.keep_bytes);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        output.read.reset();  // EOF: the command (and anything it started) closed its output
      }
    }
    if (fds[1].revents != 0) {
      const std::string& data = *options.stdin_data;
      ssize_t put = write_without_sigpipe(input.write.get(), data.data() + written, data.size() - written);
      if (put > 0) written += static_cast<std::size_t>(put);
      // EPIPE: the command closed its stdin; it did not want the rest.
      if ((put < 0 && errno != EINTR && errno != EAGAIN) || written == data.size()) input.write.reset();
    }
  }
  if (!timed_out && options.timeout) {
    std::optional<int> status = child.wait_for(std::chrono::milliseconds(left_ms()));
    if (status) out.wait_status = *status;
    timed_out = !status;
  }
  if (timed_out) {
    child.signal(SIGKILL);
    child.wait();
    return make_error(ErrorKind::kTimeout, fmt::format("{} did not finish within {} ms; it was killed",
                                                       format_command(argv), options.timeout->count()));
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

ssize_t write_without_sigpipe(int fd, const void* data, std::size_t size) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n = ::write(fd, data, size);
  int err = errno;
  if (n < 0 && err == EPIPE) {
    timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

}  // namespace kiln
