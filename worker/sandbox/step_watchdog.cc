#include "worker/sandbox/step_watchdog.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>
#include <utility>

namespace kiln::sandbox {
namespace {

// Everything the child uses, prepared before the fork: after it, the child
// may not allocate (another thread may have held the allocator's lock).
struct Plan {
  std::vector<std::string> cgroup_dirs;
  // The runtime's --root as it appears in /proc/PID/cmdline (NUL-separated
  // words): "\0--root\0DIR\0" for runc, "--root=DIR\0" for crun.
  std::string runc_root_words;
  std::string crun_root_word;
  // StepWatchdogTargets::keep_sweeping, in rounds.
  int keep_sweeping_rounds = 0;
};

constexpr std::size_t kPathBuffer = 4096;
// Rounds of killing end after this many in a row found nothing: one round
// can run while a runtime is between creating a process and listing it.
constexpr int kQuietRoundsToStop = 2;
constexpr int kMaxRounds = 500;  // 5 s of 10 ms rounds, then give up
constexpr long kRoundPauseNs = 10'000'000;

// ---- async-signal-safe helpers: only system calls and plain loops ----

struct LinuxDirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[256];
};

bool is_dot_or_dotdot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

bool all_digits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

// Appends `s` to the NUL-terminated path in buf (length *len); false if it does not fit.
bool append(char* buf, std::size_t* len, const char* s) {
  std::size_t n = std::strlen(s);
  if (*len + n + 1 > kPathBuffer) return false;
  std::memcpy(buf + *len, s, n + 1);
  *len += n;
  return true;
}

bool contains(const char* hay, std::size_t hay_len, const std::string& needle) {
  const std::size_t n = needle.size();
  if (n == 0 || n > hay_len) return false;
  for (std::size_t i = 0; i + n <= hay_len; ++i)
    if (std::memcmp(hay + i, needle.data(), n) == 0) return true;
  return false;
}

// SIGKILLs every pid listed in PATH/cgroup.procs, then does the same in
// each child cgroup. Returns how many processes it signalled.
int kill_cgroup_tree(char* path, std::size_t len, pid_t self, int depth) {
  if (depth > 16) return 0;
  int signalled = 0;
  std::size_t procs_len = len;
  if (append(path, &procs_len, "/cgroup.procs")) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[4096];
      long pid = 0;
      bool in_number = false;
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) {
          if (buf[i] >= '0' && buf[i] <= '9') {
            pid = pid * 10 + (buf[i] - '0');
            in_number = true;
          } else if (in_number) {
            if (pid > 1 && pid != self) {
              ::kill(static_cast<pid_t>(pid), SIGKILL);
              ++signalled;
            }
            pid = 0;
            in_number = false;
          }
        }
      }
      if (in_number && pid > 1 && pid != self) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        ++signalled;
      }
      ::close(fd);
    }
  }
  path[len] = '\0';
  int dir = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return signalled;
  alignas(8) char entries[4096];
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir, entries, sizeof entries);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const LinuxDirent64*>(entries + at);
      at += e->d_reclen;
      if (e->d_type != DT_DIR || is_dot_or_dotdot(e->d_name)) continue;
      std::size_t child_len = len;
      if (append(path, &child_len, "/") && append(path, &child_len, e->d_name))
        signalled += kill_cgroup_tree(path, child_len, self, depth + 1);
      path[len] = '\0';
    }
  }
  ::close(dir);
  return signalled;
}

// SIGKILLs every process whose command line passes the runtime root as --root.
int kill_runtime_processes(const Plan& plan, pid_t self) {
  if (plan.runc_root_words.empty()) return 0;  // no runtime of ours (the docker sandbox)
  int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return 0;
  int signalled = 0;
  alignas(8) char entries[4096];
  char path[64];
  // cmdline, after a NUL of our own so that the first word matches "\0word\0" too
  char cmdline[8193];
  for (;;) {
    long n = ::syscall(SYS_getdents64, proc, entries, sizeof entries);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const LinuxDirent64*>(entries + at);
      at += e->d_reclen;
      if (!all_digits(e->d_name) || std::strlen(e->d_name) > 20) continue;
      std::size_t len = 0;
      path[0] = '\0';
      if (!append(path, &len, "/proc/") || !append(path, &len, e->d_name) || !append(path, &len, "/cmdline"))
        continue;
      int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      std::size_t got = 0;
      cmdline[0] = '\0';
      while (got < sizeof cmdline - 1) {
        ssize_t r = ::read(fd, cmdline + 1 + got, sizeof cmdline - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
      }
      ::close(fd);
      if (!contains(cmdline, got + 1, plan.runc_root_words) &&
          !contains(cmdline, got + 1, plan.crun_root_word))
        continue;
      long pid = 0;
      for (const char* c = e->d_name; *c != '\0'; ++c) pid = pid * 10 + (*c - '0');
      if (pid > 1 && pid != self) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        ++signalled;
      }
    }
  }
  ::close(proc);
  return signalled;
}

// The child: wait for the owner to die (end-of-file), then kill its steps.
// `lock_fd` stays open (and locked) until it exits.
[[noreturn]] void watch(int alive_fd, int lock_fd, const Plan& plan) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_NAME, "kiln-watchdog", 0, 0, 0);
  // The owner may block signals for its threads (the worker blocks SIGTERM
  // for its signal thread): the watchdog must stay stoppable by them.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(sig, &default_action, nullptr);
  // Holding the owner's other fds (another watchdog's write end, a step's
  // output pipe) would keep them open after the owner died.
  const int low = std::min(alive_fd, lock_fd), high = std::max(alive_fd, lock_fd);
  if (low > 0) ::close_range(0, static_cast<unsigned>(low) - 1, 0);
  if (high > low + 1) ::close_range(static_cast<unsigned>(low) + 1, static_cast<unsigned>(high) - 1, 0);
  ::close_range(static_cast<unsigned>(high) + 1, ~0U, 0);

  // A byte before the end means an orderly stop (StepWatchdog::stop): the
  // owner has ended its steps, one sweep without pauses is enough.
  char byte;
  bool orderly = false;
  for (;;) {
    ssize_t n = ::read(alive_fd, &byte, 1);
    if (n == 1) orderly = true;
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  const pid_t self = ::getpid();
  const int quiet_rounds_to_stop = orderly ? 1 : kQuietRoundsToStop;
  char path[kPathBuffer];
  int quiet = 0;
  const int keep_sweeping_rounds = orderly ? 0 : plan.keep_sweeping_rounds;
  for (int round = 0; round < kMaxRounds + keep_sweeping_rounds; ++round) {
    int signalled = kill_runtime_processes(plan, self);
    for (const std::string& dir : plan.cgroup_dirs) {
      if (dir.size() + 1 > kPathBuffer) continue;
      std::memcpy(path, dir.c_str(), dir.size() + 1);
      signalled += kill_cgroup_tree(path, dir.size(), self, 0);
    }
    quiet = signalled == 0 ? quiet + 1 : 0;
    if (quiet >= quiet_rounds_to_stop && round + 1 >= keep_sweeping_rounds) break;
    timespec pause{0, kRoundPauseNs};
    ::nanosleep(&pause, nullptr);
  }
  ::_exit(0);
}

}  // namespace

Result<StepWatchdog> StepWatchdog::start(const StepWatchdogTargets& targets) {
  Plan plan;
  plan.cgroup_dirs = targets.cgroup_dirs;
  plan.keep_sweeping_rounds =
      static_cast<int>(targets.keep_sweeping / std::chrono::nanoseconds(kRoundPauseNs));
  if (!targets.runtime_root.empty()) {
    plan.runc_root_words = std::string("\0--root\0", 8) + targets.runtime_root + std::string(1, '\0');
    plan.crun_root_word = "--root=" + targets.runtime_root + std::string(1, '\0');
  }
  UniqueFd lock(::open(targets.lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) return errno_error(fmt::format("create the watchdog's lock file {}", targets.lock_path));
  // An earlier owner's watchdog may still be killing that owner's steps.
  auto deadline = std::chrono::steady_clock::now() + kPreviousWatchdogPatience;
  while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return errno_error(fmt::format("lock {}", targets.lock_path));
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(
          ErrorKind::kBusy,
          fmt::format("the watchdog of an earlier owner of {} is still killing that owner's "
                      "steps after {} s; look for a kiln-watchdog process (ps -C kiln-watchdog)",
                      targets.lock_path, kPreviousWatchdogPatience.count()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // A socket pair rather than a pipe: stop() can send its goodbye byte with
  // MSG_NOSIGNAL (no SIGPIPE should the child be gone).
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return errno_error("create the sandbox watchdog's socket pair");
  struct {
    UniqueFd read, write;
  } alive{UniqueFd(pair[0]), UniqueFd(pair[1])};
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork the sandbox's watchdog process");
  if (pid == 0) watch(alive.read.get(), lock.get(), plan);
  // The child's copy of `lock` keeps the lock (it belongs to the open file,
  // which both share); ours closes with this scope.
  StepWatchdog watchdog;
  watchdog.pid_ = pid;
  watchdog.alive_ = std::move(alive.write);
  return watchdog;
}

StepWatchdog::StepWatchdog(StepWatchdog&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), alive_(std::move(other.alive_)) {}

StepWatchdog& StepWatchdog::operator=(StepWatchdog&& other) noexcept {
  if (this != &other) {
    stop();
    pid_ = std::exchange(other.pid_, -1);
    alive_ = std::move(other.alive_);
  }
  return *this;
}

StepWatchdog::~StepWatchdog() {
  stop();
}

void StepWatchdog::stop() {
  if (alive_) {
    const char goodbye = 0;
    (void)::send(alive_.get(), &goodbye, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  alive_.reset();
  if (pid_ <= 0) return;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace kiln::sandbox
