// The processes of a `kiln up` farm and their supervision: starting each
// daemon with its log, telling whether it still runs (by pid and start
// time, also for a farm found in DIR/farm.json), restarting one that died
// with a backoff while the rest keep running, stopping them in order, and
// the state file `kiln down` reads.
//
//   std::vector<Daemon> daemons = {{.name = "scheduler", .binary = bin, .log = dir + "/scheduler.log",
//                                   .args = {...}}};
//   KILN_RETURN_IF_ERROR(spawn(daemons[0], /*detach=*/false));
//   supervise(daemons, signals, [&] { write_state(...); });   // until SIGINT/SIGTERM
//   stop_farm(daemons);
//
// Thread safety: one thread (kiln up's, or its supervisor's).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/proto/client.h"
#include "common/subprocess.h"

namespace kiln::cli {

// One daemon of the farm.
struct Daemon {
  std::string name;  // "scheduler", "worker-1"
  std::string binary;
  std::string log;
  std::vector<std::string> args;  // what it runs with (again, when restarted)
  pid_t pid = -1;
  std::string started;  // start_time(pid)
  // Set when it is our child, ours to wait for (not for one found in farm.json).
  std::optional<Subprocess> process;
  bool exited = false;
  int status = 0;
  // Supervision: restarts in a row, and when the current run began.
  int restarts = 0;
  std::chrono::steady_clock::time_point run_began{};
  std::optional<std::chrono::steady_clock::time_point> restart_at;

  // True while it runs; reaps it when it is our child.
  bool alive();
  std::string how_it_ended() const;
};

// /proc/PID/stat's start time: with the pid, names one process for good.
std::string start_time(pid_t pid);
// The last `lines` lines of a log, indented, to show why a daemon died.
std::string log_tail(const std::string& path, std::size_t lines = 8);

// Starts the daemon (daemon.args) with stdin from /dev/null and
// stdout/stderr appended to daemon.log. Daemons get their own process group
// (a terminal's Ctrl-C reaches only kiln up, which stops them in order) and
// die with their supervisor (SIGTERM); `detach` starts them in a session of
// their own instead, outliving the caller.
Status spawn(Daemon& daemon, bool detach);

// Workers first (they report their running jobs cancelled to a scheduler
// still there), then the scheduler: SIGTERM, SIGKILL after 10 s.
void stop_farm(std::vector<Daemon>& daemons);

// Keeps the farm running until one of `signals` (blocked by the caller:
// SIGINT, SIGTERM) arrives, which it returns. A daemon that dies is started
// again after 1 s, doubling up to 30 s while it keeps dying (a daemon that
// ran a minute starts over at 1 s); each death and restart is said on
// stderr and `changed` is called after each restart (to rewrite the state).
int supervise(std::vector<Daemon>& daemons, const sigset_t& signals, const std::function<void()>& changed);

// DIR/farm.json: the scheduler's address, the supervisor's pid (0: none)
// and every daemon's pid, start time, binary and log.
Status write_state(const std::string& dir, const std::vector<Daemon>& daemons, const std::string& address,
                   pid_t supervisor);
struct FarmState {
  std::vector<Daemon> daemons;
  pid_t supervisor = 0;
  std::string supervisor_started;
};
// nullopt when there is no state file.
Result<std::optional<FarmState>> read_state(const std::string& dir);

// Waits until the scheduler answers and lists every one of `names` as
// connected, while all daemons live. kUnavailable on timeout,
// kFailedPrecondition naming a daemon that died, kCancelled on SIGINT/SIGTERM.
Status wait_until_up(std::vector<Daemon>& daemons, const std::string& address,
                     const std::set<std::string>& names, double wait_seconds,
                     const proto::ClientOptions& admin);

inline constexpr const char* kStateFile = "farm.json";

}  // namespace kiln::cli
