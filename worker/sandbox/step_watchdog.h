// A sandbox's watchdog (used by worker/sandbox and worker/docker): a small
// process that kills every step of one RuncSandbox or DockerSandbox as soon
// as the process that owns the sandbox dies, however it dies (kill -9
// included), so that no step outlives its worker and runs twice once the
// scheduler has moved the job elsewhere.
//
//   KILN_ASSIGN_OR_RETURN(StepWatchdog watchdog,
//       StepWatchdog::start({.cgroup_dirs = {"/sys/fs/cgroup/pids/kiln/3fa2", ...},
//                            .runtime_root = "/var/lib/kiln/w1/sandbox/runtime"}));
//   ... steps run ...
//   // destroying `watchdog` (the sandbox's destructor) ends it as well
//
// How: start() forks a child that holds one end of a socket pair whose other
// end only this process keeps (close-on-exec, so no other program inherits
// it). When this process ends, the kernel closes that end and the child's
// read returns end-of-file. The child then SIGKILLs, round after round (10 ms
// apart) until two rounds in a row find nothing, every process in the cgroups beneath
// `cgroup_dirs` (the step containers) and every process whose command line
// passes `runtime_root` as the runtime's --root (a runc or crun still
// starting a container, which would otherwise finish starting it), and exits.
// The runtime's state, bundles and cgroup directories stay for the next
// owner's leftover cleanup (RuncSandbox::create).
//
// The child holds an exclusive flock on `lock_path` until it exits, and
// start() first takes that lock: a new owner of the same state directory
// (a worker restarted at once) waits until the previous owner's watchdog has
// finished killing, instead of having its own runtime commands and steps
// killed by it.
//
// The child runs in its own process group (a signal to the worker's group does
// not take it along), is named "kiln-watchdog" (comm), and after the fork
// makes only async-signal-safe system calls: this process is multi-threaded.
// Only one of its threads is needed at fork time; none is disturbed.
// Thread safety: a StepWatchdog is owned by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace kiln::sandbox {

struct StepWatchdogTargets {
  // Host directories whose cgroups (each, recursively) hold the steps: the
  // sandbox's group in every mounted hierarchy. Missing ones are skipped.
  std::vector<std::string> cgroup_dirs;
  // The runtime's state root (runc --root DIR, crun --root=DIR); empty when
  // the owner drives no runtime itself (DockerSandbox: dockerd does).
  std::string runtime_root;
  // Held by the watchdog while it lives (created if missing).
  std::string lock_path;
  // After the owner died, sweep at least this long (rounds 10 ms apart), not
  // only until two rounds find nothing: a daemon that runs the steps for the
  // owner (dockerd) may still be starting one the owner asked for just before
  // it died. Not after an orderly stop. Zero for RuncSandbox: its runtime
  // processes are found by their --root instead.
  std::chrono::milliseconds keep_sweeping{0};
};

class StepWatchdog {
 public:
  // Waits up to kPreviousWatchdogPatience for an earlier watchdog holding
  // the lock to finish (kBusy after that), then starts this one. kIo when
  // the lock file, the pipe or the fork fails.
  static Result<StepWatchdog> start(const StepWatchdogTargets& targets);
  static constexpr std::chrono::seconds kPreviousWatchdogPatience{30};

  StepWatchdog() = default;
  StepWatchdog(StepWatchdog&& other) noexcept;
  StepWatchdog& operator=(StepWatchdog&& other) noexcept;
  StepWatchdog(const StepWatchdog&) = delete;
  StepWatchdog& operator=(const StepWatchdog&) = delete;
  // Sends the child a goodbye byte, closes the socket and waits for the
  // child: it sweeps once, without pauses (finding nothing when every step
  // has ended), and exits.
  ~StepWatchdog();

  // The child's pid (-1 when none), for tests and diagnostics.
  pid_t pid() const { return pid_; }

 private:
  void stop();
  pid_t pid_ = -1;
  UniqueFd alive_;  // our end of the socket pair: open while this process lives
};

}  // namespace kiln::sandbox
