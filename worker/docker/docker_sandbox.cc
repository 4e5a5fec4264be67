#include "worker/docker/docker_sandbox.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "common/fs.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "worker/docker/step_container.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/private_tmpfs.h"

namespace kiln::docker {
namespace {

// The steps' cgroup parent for dockerd's cgroup driver, and where it lies
// beneath each hierarchy's root.
struct StepCgroupParent {
  std::string parent;    // HostConfig.CgroupParent
  std::string relative;  // below a hierarchy's mount point
};

Result<StepCgroupParent> step_cgroup_parent(const std::string& driver, const std::string& key) {
  if (driver == "cgroupfs") return StepCgroupParent{"/kiln/docker-" + key, "kiln/docker-" + key};
  // systemd nests a slice "a-b.slice" in "a.slice".
  if (driver == "systemd")
    return StepCgroupParent{"kiln-docker" + key + ".slice", "kiln.slice/kiln-docker" + key + ".slice"};
  return make_error(ErrorKind::kUnsupported,
                    fmt::format("dockerd uses the cgroup driver \"{}\"; kiln's docker sandbox knows cgroupfs "
                                "and systemd (dockerd --exec-opt native.cgroupdriver=cgroupfs)",
                                driver));
}

}  // namespace

Result<std::unique_ptr<DockerSandbox>> DockerSandbox::create(DockerSandboxOptions options) {
  if (options.state_dir.empty())
    return make_error(ErrorKind::kInvalidArgument, "the docker sandbox needs a state directory");
  KILN_ASSIGN_OR_RETURN(auto client, DockerClient::create({.host = options.host}));
  if (!options.secrets_dir.empty()) KILN_RETURN_IF_ERROR(ensure_dirs(options.secrets_dir, 0700));
  KILN_RETURN_IF_ERROR(ensure_dirs(options.state_dir, 0700));
  char real[PATH_MAX];
  if (::realpath(options.state_dir.c_str(), real) == nullptr)
    return errno_error(fmt::format("resolve the docker sandbox's state directory {}", options.state_dir));
  const std::string state = real;
  // Two owners would kill each other's steps (one watchdog's cgroup is the other's).
  UniqueFd owner(::open((state + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!owner) return errno_error(fmt::format("create the lock file in {}", state));
  if (::flock(owner.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK)
      return make_error(
          ErrorKind::kBusy,
          fmt::format("the docker sandbox's state directory {} is in use by another kiln process "
                      "running steps on the same docker store; wait for it, or give each its own "
                      "store (--store docker:PREFIX) or home",
                      state));
    return errno_error(fmt::format("lock {}/lock", state), err);
  }
  KILN_ASSIGN_OR_RETURN(DaemonInfo info, client->info());
  KILN_ASSIGN_OR_RETURN(StepCgroupParent cgroup,
                        step_cgroup_parent(info.cgroup_driver, sha256_hex(state).substr(0, 12)));
  auto sandbox = std::unique_ptr<DockerSandbox>(new DockerSandbox(std::move(options), std::move(client)));
  sandbox->owner_lock_ = std::move(owner);
  sandbox->volumes_dir_ = info.root_dir + "/volumes";
  sandbox->cgroup_parent_ = cgroup.parent;
  // Values reach dockerd as bind sources in a tmpfs of the sandbox's own, so
  // they never touch a disk (the mounts are in the step container only).
  if (!sandbox->options_.secrets_dir.empty())
    KILN_RETURN_IF_ERROR(sandbox::mount_private_tmpfs(sandbox->options_.secrets_dir, "secrets"));
  KILN_ASSIGN_OR_RETURN(auto hierarchies, sandbox::cgroup_mounts());
  for (const auto& h : hierarchies) sandbox->cgroup_dirs_.push_back(h.path + "/" + cgroup.relative);
  // Before any step: from here on whatever the sandbox starts dies with this
  // process (and an earlier owner's watchdog has finished killing its steps).
  KILN_ASSIGN_OR_RETURN(sandbox->watchdog_,
                        sandbox::StepWatchdog::start({.cgroup_dirs = sandbox->cgroup_dirs_,
                                                      .runtime_root = "",
                                                      .lock_path = state + "/watchdog.lock",
                                                      .keep_sweeping = kKeepSweeping}));
  return sandbox;
}

DockerSandbox::~DockerSandbox() {
  watchdog_ = {};
  // It only holds values of running steps; none run now.
  if (owner_lock_) sandbox::unmount_private_tmpfs(options_.secrets_dir);
  // Only cgroups without processes go (rmdir refuses the others). A step's
  // own is normally removed by dockerd's runtime, but not when dockerd went
  // away first.
  for (const std::string& dir : cgroup_dirs_) {
    std::error_code ec;
    std::vector<std::string> steps;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.is_directory(ec)) steps.push_back(e.path());
    for (const std::string& step : steps) ::rmdir(step.c_str());
    ::rmdir(dir.c_str());
  }
}

Status DockerSandbox::run(const sandbox::RunSpec&, const std::string& rootfs, const sandbox::OutputSink&,
                          CancelToken&) {
  return make_error(ErrorKind::kUnsupported,
                    fmt::format("the docker sandbox runs steps in containers, not in a directory ({}); "
                                "use it with the docker store",
                                rootfs));
}

Status DockerSandbox::run_in(const sandbox::RunSpec& spec, const store::Workspace& ws,
                             const sandbox::OutputSink& on_output, CancelToken& cancel) {
  if (ws.container.empty() || ws.base_image.empty())
    return make_error(
        ErrorKind::kInvalidArgument,
        "the docker sandbox needs a docker store's workspace (a base image and a container name)");
  std::string step_id = ws.dir.substr(ws.dir.rfind('/') + 1);
  StepContainer step{
      .image = ws.base_image,
      .name = ws.container,
      .labels = {{"kiln.store", options_.prefix}, {"kiln.kind", "step"}, {"kiln.step", step_id}},
      .secrets_dir = options_.secrets_dir,
      .volumes_dir = volumes_dir_,
      .cgroup_parent = cgroup_parent_};
  return run_step_container(*client_, step, spec, on_output, cancel);
}

}  // namespace kiln::docker
