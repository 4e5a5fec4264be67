// The docker backend's Sandbox (docs/store.md, "Run steps"): each run step
// in a container `ws.container` made from `ws.base_image` by
// run_step_container (step_container.h), left stopped for the docker store
// to commit (or discard). Only run_in() works: there is no rootfs directory.
//
//   KILN_ASSIGN_OR_RETURN(auto sandbox, DockerSandbox::create({.host = host, .prefix = "kiln",
//                                                               .secrets_dir = home + "/docker-secrets",
//                                                               .state_dir = home + "/docker-sandbox"}));
//   builder::Builder builder(*store, *sandbox, *fetcher, options);
//
// Steps die with the process that owns the sandbox, however it dies (kill -9
// included): every step container gets a cgroup parent of this sandbox's own
// (cgroupfs driver: /kiln/docker-<12 hex of the state directory's real
// path>; systemd driver: kiln-docker<12 hex>.slice), and create() starts a
// StepWatchdog (worker/sandbox/step_watchdog.h) over that cgroup in every
// mounted hierarchy. When the owner dies the watchdog SIGKILLs the steps'
// processes; dockerd sees them exit, and the docker store's next open
// removes the stopped containers. The cgroup parent replaces dockerd's own
// (--cgroup-parent) for step containers.
//
// Errors: run_step_container's (sandbox.h's messages); run(spec, rootfs)
// is kUnsupported; create() fails kUnsupported for a cgroup driver other
// than cgroupfs or systemd, kBusy while another process's sandbox holds the
// state directory or an earlier owner's watchdog is still killing (waited
// for up to StepWatchdog::kPreviousWatchdogPatience), and with errno's when
// the secrets tmpfs cannot be mounted (not root). Thread safety: steps may
// run from several threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "worker/docker/docker_client.h"
#include "worker/sandbox/sandbox.h"
#include "worker/sandbox/step_watchdog.h"

namespace kiln::docker {

struct DockerSandboxOptions {
  std::string host = std::string(kDefaultDockerHost);
  std::string prefix = "kiln";  // the store's: labels kiln.store=PREFIX
  // Host directory (created if missing) where create() mounts a tmpfs of
  // the sandbox's own (sandbox/private_tmpfs.h) for the secrets' values,
  // unmounted by the destructor. Empty: a step with secrets fails.
  std::string secrets_dir;
  // Host directory of the sandbox's own (created if missing; required): the
  // watchdog's lock, and its real path names the steps' cgroup parent. One
  // owner at a time (the docker store's lock: use one per store).
  std::string state_dir;
};

class DockerSandbox final : public sandbox::Sandbox {
 public:
  static Result<std::unique_ptr<DockerSandbox>> create(DockerSandboxOptions options);

  Status run(const sandbox::RunSpec& spec, const std::string& rootfs, const sandbox::OutputSink& on_output,
             CancelToken& cancel) override;
  Status run_in(const sandbox::RunSpec& spec, const store::Workspace& ws,
                const sandbox::OutputSink& on_output, CancelToken& cancel) override;

  // How long the watchdog keeps killing after the owner died: dockerd
  // finishes starting a container whose client went away
  // (StepWatchdogTargets::keep_sweeping).
  static constexpr std::chrono::milliseconds kKeepSweeping{3000};

  // What step containers get as HostConfig.CgroupParent.
  const std::string& cgroup_parent() const { return cgroup_parent_; }
  // Stops the watchdog and removes the sandbox's (empty) cgroup directories.
  ~DockerSandbox() override;

 private:
  DockerSandbox(DockerSandboxOptions options, std::unique_ptr<DockerClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  DockerSandboxOptions options_;
  std::unique_ptr<DockerClient> client_;
  std::string volumes_dir_;  // dockerd's: cache copies are volumes there (StepContainer::volumes_dir)
  std::string cgroup_parent_;
  std::vector<std::string> cgroup_dirs_;  // the cgroup parent in every hierarchy (host paths)
  sandbox::StepWatchdog watchdog_;
  UniqueFd owner_lock_;  // flock on STATE/lock while this sandbox lives
};

}  // namespace kiln::docker
