#include "cli/farm_supervisor.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/unique_fd.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kStopGrace = std::chrono::seconds(10);

bool is_zombie_or_gone(pid_t pid);

}  // namespace

// /proc/PID/stat's start time: with the pid, names one process for good.
std::string start_time(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  std::getline(in, stat);
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  // Fields after the command: state is the 3rd of the line, starttime the 22nd.
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return field;
  return "";
}

namespace {
bool is_zombie_or_gone(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return true;
  std::size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z';
}
}  // namespace

bool Daemon::alive() {
  if (exited) return false;
  if (process) {
    int st = 0;
    if (!process->try_wait(&st)) return true;
    exited = true;
    status = st;
    return false;
  }
  if (is_zombie_or_gone(pid) || start_time(pid) != started) {
    exited = true;
    return false;
  }
  return true;
}

std::string Daemon::how_it_ended() const {
  return describe_wait_status(status);
}

// The last `lines` lines of a log, indented, to show why a daemon died.
std::string log_tail(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    " + all[i] + "\n";
  return out;
}

// Starts the daemon with stdin from /dev/null and stdout/stderr to
// `daemon.log`. A foreground farm's daemons get their own process group (so
// a terminal's Ctrl-C reaches only `kiln up`, which stops them in order) and
// die with it (SIGTERM); a detached farm's daemons get their own session and
// outlive it.
Status spawn(Daemon& daemon, bool detach) {
  const std::vector<std::string>& args = daemon.args;
  UniqueFd log(::open(daemon.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log) return errno_error("cannot open log " + daemon.log);
  std::vector<std::string> argv = {daemon.binary};
  argv.insert(argv.end(), args.begin(), args.end());
  KILN_ASSIGN_OR_RETURN(
      Subprocess process,
      Subprocess::spawn(argv, {.stdout_fd = log.get(),
                               .stderr_fd = log.get(),
                               .search_path = false,
                               .group = detach ? ProcessGroup::kNewSession : ProcessGroup::kNew,
                               .parent_death_signal = detach ? 0 : SIGTERM}));
  daemon.pid = process.pid();
  daemon.process = std::move(process);
  daemon.exited = false;
  daemon.status = 0;
  // Once started, a pid and its start time name one process for good.
  daemon.started = start_time(daemon.pid);
  return {};
}

namespace {

// SIGTERM to all, wait up to kStopGrace, then SIGKILL the rest.
void stop_group(std::vector<Daemon*> group) {
  for (Daemon* d : group)
    if (d->alive()) ::kill(d->pid, SIGTERM);
  auto deadline = Clock::now() + kStopGrace;
  for (;;) {
    bool any = false;
    for (Daemon* d : group) any = d->alive() || any;
    if (!any) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  for (Daemon* d : group)
    if (d->alive()) {
      std::cerr << fmt::format("kiln: {} (pid {}) did not stop within {} s; killing it\n", d->name, d->pid,
                               kStopGrace.count());
      ::kill(d->pid, SIGKILL);
    }
  auto kill_deadline = Clock::now() + std::chrono::seconds(5);
  for (Daemon* d : group)
    while (d->alive() && Clock::now() < kill_deadline) std::this_thread::sleep_for(milliseconds(20));
  // One that survives SIGKILL (stuck in the kernel) is not waited for.
  for (Daemon* d : group)
    if (d->alive() && d->process) d->process->release();
}

}  // namespace

// Workers first (they report their running jobs cancelled to a scheduler
// still there), then the scheduler.
void stop_farm(std::vector<Daemon>& daemons) {
  std::vector<Daemon*> workers;
  std::vector<Daemon*> scheduler;
  for (Daemon& d : daemons) (d.name == "scheduler" ? scheduler : workers).push_back(&d);
  stop_group(workers);
  stop_group(scheduler);
}

Status write_state(const std::string& dir, const std::vector<Daemon>& daemons, const std::string& address,
                   pid_t supervisor) {
  nlohmann::ordered_json state{{"scheduler_address", address},
                               {"supervisor", supervisor},
                               {"supervisor_started", supervisor > 0 ? start_time(supervisor) : ""},
                               {"daemons", nlohmann::ordered_json::array()}};
  for (const Daemon& d : daemons)
    state["daemons"].push_back(
        {{"name", d.name}, {"pid", d.pid}, {"started", d.started}, {"binary", d.binary}, {"log", d.log}});
  return write_file_atomically(dir + "/" + kStateFile, state.dump(2) + "\n");
}

Result<std::optional<FarmState>> read_state(const std::string& dir) {
  std::string path = dir + "/" + kStateFile;
  auto text = read_file(path);
  if (!text) return std::optional<FarmState>();
  auto state = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded() || !state.contains("daemons") || !state["daemons"].is_array())
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{} is not a kiln farm state file; stop its processes by hand and remove it", path));
  FarmState farm{.supervisor = state.value("supervisor", 0),
                 .supervisor_started = state.value("supervisor_started", "")};
  std::vector<Daemon>& daemons = farm.daemons;
  for (const auto& d : state["daemons"]) {
    Daemon daemon;
    daemon.name = d.value("name", "");
    daemon.binary = d.value("binary", "");
    daemon.log = d.value("log", "");
    daemon.pid = d.value("pid", -1);
    daemon.started = d.value("started", "");
    if (daemon.pid > 0) daemons.push_back(std::move(daemon));
  }
  return std::optional<FarmState>(std::move(farm));
}

Status wait_until_up(std::vector<Daemon>& daemons, const std::string& address,
                     const std::set<std::string>& names, double wait_seconds,
                     const proto::ClientOptions& admin) {
  auto deadline = Clock::now() + milliseconds(static_cast<long>(wait_seconds * 1000));
  std::unique_ptr<proto::Client> client;
  std::string last_problem = "the scheduler has not answered";
  for (;;) {
    sigset_t pending;
    ::sigpending(&pending);
    if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM))
      return make_error(ErrorKind::kCancelled, "interrupted while the farm was starting");
    for (Daemon& d : daemons)
      if (!d.alive())
        return make_error(ErrorKind::kFailedPrecondition,
                          fmt::format("{} (pid {}) {} while the farm was starting; its log {} ends with:\n{}",
                                      d.name, d.pid, d.how_it_ended(), d.log, log_tail(d.log)));
    if (Clock::now() >= deadline)
      return make_error(
          ErrorKind::kUnavailable,
          fmt::format("the farm did not come up within {} s ({}); see the logs in {}", wait_seconds,
                      last_problem, fs::path(daemons.front().log).parent_path().string()));
    if (!client) {
      auto fresh = proto::Client::connect(address, "kiln-up", milliseconds(500), admin);
      if (fresh) client = std::move(*fresh);
    }
    if (client) {
      auto workers = client->call<proto::Workers>(proto::ListWorkers{}, milliseconds(1000));
      if (workers) {
        std::size_t ready = 0;
        for (const auto& w : workers->workers) ready += names.contains(w.name) && w.connected ? 1 : 0;
        if (ready == names.size()) return {};
        last_problem = fmt::format("{} of {} workers registered", ready, names.size());
      } else {
        client.reset();
      }
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
}

int supervise(std::vector<Daemon>& daemons, const sigset_t& signals, const std::function<void()>& changed) {
  constexpr auto kFirstDelay = std::chrono::seconds(1);
  constexpr auto kMaxDelay = std::chrono::seconds(30);
  constexpr auto kSteadyRun = std::chrono::seconds(60);
  for (Daemon& d : daemons) d.run_began = Clock::now();
  for (;;) {
    timespec tick{.tv_sec = 0, .tv_nsec = 200'000'000};
    int sig = ::sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) return sig;
    const auto now = Clock::now();
    for (Daemon& d : daemons) {
      if (d.restart_at) {
        if (now < *d.restart_at) continue;
        d.restart_at.reset();
        if (auto s = spawn(d, /*detach=*/false); !s) {
          std::cerr << fmt::format("kiln: cannot restart {}: {}\n", d.name, s.error().to_string());
          d.exited = true;  // try again after the next delay
        } else {
          d.run_began = Clock::now();
          std::cerr << fmt::format("kiln: {} restarted (pid {}, restart {})\n", d.name, d.pid, d.restarts);
          changed();
          continue;
        }
      } else if (d.alive()) {
        continue;
      }
      // Died (or could not be started): again after a delay that doubles
      // while it keeps dying.
      if (now - d.run_began >= kSteadyRun) d.restarts = 0;
      auto delay = kFirstDelay * (1 << std::min(d.restarts, 5));
      if (delay > kMaxDelay) delay = kMaxDelay;
      ++d.restarts;
      d.restart_at = now + delay;
      std::cerr << fmt::format("kiln: {} (pid {}) {}; restarting it in {} s; its log {} ends with:\n{}",
                               d.name, d.pid, d.how_it_ended(),
                               std::chrono::duration_cast<std::chrono::seconds>(delay).count(), d.log,
                               log_tail(d.log));
    }
  }
}

}  // namespace kiln::cli
