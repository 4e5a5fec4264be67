// The default Sandbox: each step runs in a fresh OCI container started by
// runc (or crun) from a generated config.json (oci_config.h). What the
// container gets, and why, is in docs/sandbox.md.
//
//   KILN_ASSIGN_OR_RETURN(auto sandbox, RuncSandbox::create({.state_dir = "/var/lib/kiln/sandbox"}));
//   if (sandbox->leftovers().removed_anything()) spdlog::warn("{}", sandbox->leftovers().to_string());
//   CancelToken cancel;
//   KILN_RETURN_IF_ERROR(sandbox->run(spec, rootfs, on_output, cancel));
//
// The state directory belongs to one RuncSandbox at a time (a lock file
// enforces it, also across processes). It holds the
// runtime's state (`runtime/`, runc's --root), one bundle per running step
// (`bundles/<container id>/`: config.json, hosts, the runtime's log) and a
// tmpfs (`secrets/`) where secret values live during their step. Containers
// are named `kiln-<random hex>`; create() removes every `kiln-` container,
// bundle, secret and step cgroup a previous (crashed) owner of the same
// state directory left, and reports what it removed.
//
// Steps die with the process that owns the sandbox: create() starts a
// watchdog process (step_watchdog.h) that SIGKILLs every step's processes,
// and a runtime still starting one, as soon as this process is gone, kill -9
// included; what they leave on disk is removed by the next create().
//
// Needs root (runc creates namespaces and cgroups; the secrets tmpfs is
// mounted). Thread safety: run() may be called from several threads at
// once; each call is its own container.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "worker/sandbox/oci_config.h"
#include "worker/sandbox/sandbox.h"
#include "worker/sandbox/step_watchdog.h"

namespace kiln::sandbox {

enum class OciRuntime { kRunc, kCrun };

// "runc" or "crun" (the `--oci-runtime` flag); kInvalidArgument otherwise.
Result<OciRuntime> parse_oci_runtime(std::string_view name);
std::string_view oci_runtime_name(OciRuntime runtime);

struct RuncSandboxOptions {
  std::string state_dir;  // created if missing
  OciRuntime runtime = OciRuntime::kRunc;
  // Configuration choices: no_new_privileges, seccomp, and user_namespace
  // (steps as an unprivileged host uid range; the store's filesystem must
  // support idmapped mounts: btrfs, xfs, ext4, not overlayfs).
  OciOptions oci = {};
};

// What create() removed from a crashed owner of the state directory.
struct LeftoverReport {
  std::vector<std::string> containers;  // runtime containers deleted (with their processes)
  std::vector<std::string> cgroups;     // step cgroups emptied and removed
  int bundles = 0;                      // bundle directories removed
  int secret_dirs = 0;                  // per-step secret directories wiped
  int mounts = 0;                       // idmapped mounts of user-namespaced steps detached
  bool removed_anything() const;
  // "removed leftovers of an earlier run: containers kiln-1f.., kiln-2a..; 1 bundle directories" or "no
  // leftovers"
  std::string to_string() const;
};

class RuncSandbox final : public Sandbox {
 public:
  // Checks the runtime runs, mounts the secrets tmpfs and removes leftovers.
  // Errors: kUnavailable when the runtime is missing (says which package to
  // install), kBusy when another sandbox owns the state directory, kIo when
  // it cannot be used.
  static Result<std::unique_ptr<RuncSandbox>> create(RuncSandboxOptions options);
  ~RuncSandbox() override;  // unmounts the secrets tmpfs

  Status run(const RunSpec& spec, const std::string& rootfs, const OutputSink& on_output,
             CancelToken& cancel) override;

  const LeftoverReport& leftovers() const { return leftovers_; }
  OciRuntime runtime() const { return options_.runtime; }
  // The canonical state directory.
  const std::string& state_dir() const { return options_.state_dir; }
  // The full command line for a runtime subcommand, e.g. {"list"} ->
  // {"runc", "--root", STATE/runtime, "list"}, to be started with
  // runtime_hidden_mount(). For diagnostics and tests.
  std::vector<std::string> runtime_command(const std::vector<std::string>& args) const;
  // SpawnOptions::hidden_mount for every runtime process ("" for none).
  std::string runtime_hidden_mount() const;
  // Relative cgroup path under which this sandbox's steps live ("kiln/<hash>").
  const std::string& cgroup_group() const { return cgroup_group_; }
  // The watchdog process that kills the steps if this process dies (tests, diagnostics).
  pid_t watchdog_pid() const { return watchdog_.pid(); }

 private:
  explicit RuncSandbox(RuncSandboxOptions options);
  Status remove_leftovers();

  RuncSandboxOptions options_;
  std::string runtime_root_;  // STATE/runtime
  std::string bundles_dir_;   // STATE/bundles
  std::string secrets_dir_;   // STATE/secrets (a tmpfs)
  std::string cgroup_group_;
  // --userns: a tmpfs (/run/kiln/<hash>) holding each step's view, and the
  // user namespace its idmapped mounts use.
  std::string views_dir_;
  bool views_mounted_ = false;
  UniqueFd userns_fd_;
  bool crun_needs_private_cgroup_ns_ = false;
  UniqueFd lock_fd_;  // flock on STATE/lock: one owner per state directory
  LeftoverReport leftovers_;
  StepWatchdog watchdog_;  // started last in create(): from then on steps die with this process
};

}  // namespace kiln::sandbox
