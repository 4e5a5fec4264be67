#include "tests/support/local_dockerd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace kiln::testing {
namespace {

// The guardian (run by /bin/sh). Its inputs come through the environment, not
// its command line, so that the one rule "a process whose command line names
// DIR/ belongs to this daemon" never matches the guardian itself. fd 3 is the
// read end of a pipe whose only writer is the test: EOF means "clean up now".
constexpr const char* kGuardian = R"sh(
dir=$KILN_DOCKERD_DIR
cg=$KILN_DOCKERD_CGROUP
( status=0
  /usr/sbin/dockerd --iptables=false --ip-forward=false --bridge=none \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/pid" \
    -H "unix://$dir/docker.sock" --config-file "$dir/daemon.json" \
    --cgroup-parent "/$cg" --exec-opt native.cgroupdriver=cgroupfs \
    --storage-driver overlay2 --shutdown-timeout 5 $KILN_DOCKERD_EXTRA || status=$?
  echo $status > "$dir/dockerd.exit" ) 3<&- &
read -r _ <&3 || true
exec 3<&-
printf '%s/\n' "$dir" > "$dir.pattern"

kill_containers() {
  for f in /sys/fs/cgroup/*/"$cg"/cgroup.procs /sys/fs/cgroup/*/"$cg"/*/cgroup.procs; do
    [ -f "$f" ] || continue
    for p in $(cat "$f" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
}
kill_everything() {
  kill_containers
  # The pattern comes from a file beside the directory, so grep's own
  # command line does not match it.
  for f in $(grep -lsaFf "$dir.pattern" /proc/[0-9]*/cmdline); do
    p=${f#/proc/}
    kill -KILL "${p%/cmdline}" 2>/dev/null
  done
}
# The containers first (a test has no use for their graceful stop, which
# would cost dockerd's shutdown timeout), then the daemon, gracefully.
kill_containers
# Without a pid file (dockerd not started yet) the command-line rule below finds it.
pid=$(cat "$dir/pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
fi
for round in 1 2 3; do kill_everything; sleep 0.2; done
awk -v d="$dir/" 'index($5, d) == 1 { print length($5), $5 }' /proc/self/mountinfo | sort -rn |
  while read -r _ m; do umount -l "$m" 2>/dev/null; done
for round in 1 2 3 4 5 6 7 8 9 10; do
  left=0
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$cg" ] || continue
    find "$h$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$h$cg" ] && left=1
  done
  [ $left -eq 0 ] && break
  kill_everything
  sleep 0.2
done
rm -rf "$dir" "$dir.pattern"
)sh";

std::string tail_of(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

}  // namespace

LocalDockerd::LocalDockerd(LocalDockerdOptions options) : options_(std::move(options)) {
  std::string pattern = "/tmp/kiln-dockerd-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    start_error_ = std::string("mkdtemp: ") + std::strerror(errno);
    ADD_FAILURE() << start_error_;
    return;
  }
  dir_ = pattern;
  cgroup_parent_ =
      "/" + dir_.substr(std::strlen("/tmp/")).replace(0, std::strlen("kiln-dockerd"), "kiln-test");
  std::ofstream(dir_ + "/daemon.json") << "{}\n";

  std::string extra;
  for (const std::string& arg : options_.extra_args) extra += (extra.empty() ? "" : " ") + arg;
  // Prepared before fork: the child only makes async-signal-safe calls.
  std::vector<std::string> env_strings = {
      "KILN_DOCKERD_DIR=" + dir_, "KILN_DOCKERD_CGROUP=" + cgroup_parent_.substr(1),
      "KILN_DOCKERD_EXTRA=" + extra, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", script = kGuardian, name = "kiln-dockerd-guardian";
  std::vector<char*> argv = {sh.data(), dash_c.data(), script.data(), name.data(), nullptr};
  std::string log_path = dir_ + "/dockerd.log";

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    start_error_ = std::string("pipe2: ") + std::strerror(errno);
    ADD_FAILURE() << start_error_;
    return;
  }
  guardian_ = ::fork();
  if (guardian_ == 0) {
    // Its own session: a signal to the test's process group (a ctest
    // timeout) must not reach the one process that cleans up after it.
    ::setsid();
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) _exit(127);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    if (fds[0] == 3) {
      ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would leave close-on-exec set
    } else {
      ::dup2(fds[0], 3);
    }
    ::close_range(4, ~0U, 0);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(fds[0]);
  guardian_pipe_ = fds[1];
  if (guardian_ < 0) {
    start_error_ = std::string("fork: ") + std::strerror(errno);
    ADD_FAILURE() << start_error_;
    return;
  }

  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  for (;;) {
    if (answers_version()) return;
    std::ifstream exited(dir_ + "/dockerd.exit");
    int status = 0;
    if (exited >> status) {
      start_error_ = "dockerd exited with status " + std::to_string(status) + " before it answered on " +
                     socket_path() + "; the end of its log:\n" + tail_of(log(), 20);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      start_error_ = "dockerd did not answer GET /version on " + socket_path() + " within " +
                     std::to_string(options_.ready_timeout.count()) + " ms; the end of its log:\n" +
                     tail_of(log(), 20);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << start_error_;
}

LocalDockerd::~LocalDockerd() {
  if (guardian_pipe_ >= 0) ::close(guardian_pipe_);
  if (guardian_ <= 0) return;
  // The guardian stops the daemon and removes everything; a bounded wait.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(guardian_, &status, WNOHANG);
    if (r == guardian_ || r < 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "the dockerd guardian (pid " << guardian_ << ") did not finish cleaning " << dir_
                << " within 90 s";
}

pid_t LocalDockerd::dockerd_pid() const {
  std::ifstream in(dir_ + "/pid");
  pid_t pid = -1;
  if (!(in >> pid)) return -1;
  return pid;
}

std::string LocalDockerd::log() const {
  std::ifstream in(dir_ + "/dockerd.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool LocalDockerd::answers_version() const {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = socket_path();
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET /version HTTP/1.0\r\nHost: dockerd\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[32] = {};
      ssize_t n = ::recv(fd, buffer, sizeof buffer - 1, 0);
      std::string head(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
      ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
    }
  }
  ::close(fd);
  return ok;
}

std::string LocalDockerd::load_image(const std::string& source, const std::string& name) {
  ProcessResult r = run_process(
      {"/usr/bin/skopeo", "copy", "--quiet", source, "docker-daemon:" + name, "--dest-daemon-host", host()});
  return r.exit_code == 0 ? ""
                          : "skopeo copy " + source + " docker-daemon:" + name + " failed: " + r.out + r.err;
}

ProcessResult LocalDockerd::docker(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/docker", "-H", host()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

}  // namespace kiln::testing
