// The cgroup that holds one step's container (internal to worker/sandbox).
//
// kiln creates a cgroup per step, `/kiln/<group>/<container id>`, in every
// hierarchy it sets limits in (cgroup v1: memory, pids, cpu; v2: the unified
// tree), writes the step's limits there, and tells the OCI runtime to put
// the container in a child of it (`.../<container id>/ctr`). The runtime
// removes its own child when the container ends, but the limits and their
// counters stay on kiln's parent, so afterwards kiln can say *which* limit
// was hit, check that no process is left, and remove the cgroup.
//
//   KILN_ASSIGN_OR_RETURN(StepCgroup cg, StepCgroup::create("kiln/3fa2", "kiln-9c1d", limits));
//   config["linux"]["cgroupsPath"] = cg.container_path();
//   ... run ...                          // any early return removes the cgroup too
//   LimitHits hits = cg.limit_hits();
//   KILN_RETURN_IF_ERROR(cg.kill_and_remove(5s));
//
// A StepCgroup owns its directories: unless kill_and_remove() was called,
// the destructor kills what is left in them and removes them (logging what
// it cannot remove), so no path out of a step leaves a cgroup behind.
// <group> separates the containers of different state directories, so that
// a worker's leftover cleanup never touches another worker's steps.
// Thread safety: a StepCgroup is used by one thread; distinct ones are independent.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "worker/sandbox/sandbox.h"

namespace kiln::sandbox {

struct LimitHits {
  bool memory = false;  // the memory limit was reached (allocation failed or OOM kill)
  bool pids = false;    // a fork/clone failed on the pids limit
};

class StepCgroup {
 public:
  // `group` is "kiln/<something>" relative to the hierarchies' roots.
  static Result<StepCgroup> create(const std::string& group, const std::string& id, const Limits& limits);

  StepCgroup(StepCgroup&& other) noexcept;
  StepCgroup& operator=(StepCgroup&&) = delete;
  StepCgroup(const StepCgroup&) = delete;
  StepCgroup& operator=(const StepCgroup&) = delete;
  // kill_and_remove(kDestructorPatience) unless it was called already.
  ~StepCgroup();
  static constexpr std::chrono::milliseconds kDestructorPatience{5000};

  // The cgroupsPath for config.json (absolute, in the runtime's terms).
  std::string container_path() const { return "/" + relative_ + "/ctr"; }

  LimitHits limit_hits() const;

  // Every process in the step's cgroups (any hierarchy), pids as the host sees them.
  std::vector<pid_t> processes() const;

  // SIGKILLs anything left, waits up to `patience` for it to go, then
  // removes the directories. Fails (kBusy) naming the pids that survived.
  // Once called, the destructor leaves the cgroup alone (call again to retry).
  Status kill_and_remove(std::chrono::milliseconds patience);

  // Same for every leftover step under `group` (a crashed worker's);
  // returns the container ids whose cgroups were removed.
  static Result<std::vector<std::string>> remove_group_leftovers(const std::string& group);

 private:
  explicit StepCgroup(std::string relative) : relative_(std::move(relative)) {}
  // Removes the container's and the step's directory in every hierarchy,
  // deepest first; false at the first one that is refused (not empty).
  bool remove_if_empty() const;
  void watch_v1_oom(const std::string& memory_dir);
  std::string relative_;           // "kiln/<group>/<id>"; empty once moved from
  std::vector<std::string> dirs_;  // host directories kiln created (limits live here)
  bool removal_tried_ = false;     // kill_and_remove() ran: the destructor does nothing
  // v1 only: an eventfd the kernel signals when the step's memory cgroup
  // runs out of memory (memory.oom_control via cgroup.event_control); v1
  // keeps no failure counter once swap is accounted.
  UniqueFd oom_event_fd_;
};

// The mount points of the cgroup hierarchies (v1 ones and the v2 one), from
// /proc/self/mountinfo.
struct CgroupMount {
  std::string path;
  bool v2 = false;
  std::vector<std::string> controllers;  // v1 only ("memory", "pids", "cpu", ...)
};
Result<std::vector<CgroupMount>> cgroup_mounts();

}  // namespace kiln::sandbox
