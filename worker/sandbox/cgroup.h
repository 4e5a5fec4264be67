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
//   ... run ...
//   LimitHits hits = cg.limit_hits();
//   KILN_RETURN_IF_ERROR(cg.kill_and_remove(5s));
//
// <group> separates the containers of different state directories, so that
// a worker's leftover cleanup never touches another worker's steps.
// Thread safety: a StepCgroup is used by one thread; distinct ones are independent.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/error.h"
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
  ~StepCgroup();

  // The cgroupsPath for config.json (absolute, in the runtime's terms).
  std::string container_path() const { return "/" + relative_ + "/ctr"; }

  LimitHits limit_hits() const;

  // Every process in the step's cgroups (any hierarchy), pids as the host sees them.
  std::vector<pid_t> processes() const;

  // SIGKILLs anything left, waits up to `patience` for it to go, then
  // removes the directories. Fails (kBusy) naming the pids that survived.
  Status kill_and_remove(std::chrono::milliseconds patience);

  // Same for every leftover step under `group` (a crashed worker's);
  // returns the container ids whose cgroups were removed.
  static Result<std::vector<std::string>> remove_group_leftovers(const std::string& group);

 private:
  StepCgroup(std::string relative, std::vector<std::string> dirs)
      : relative_(std::move(relative)), dirs_(std::move(dirs)) {}
  void watch_v1_oom(const std::string& memory_dir);
  std::string relative_;           // "kiln/<group>/<id>"
  std::vector<std::string> dirs_;  // host directories kiln created (limits live here)
  // v1 only: an eventfd the kernel signals when the step's memory cgroup
  // runs out of memory (memory.oom_control via cgroup.event_control); v1
  // keeps no failure counter once swap is accounted.
  int oom_event_fd_ = -1;
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
