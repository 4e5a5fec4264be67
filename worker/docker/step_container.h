// One build step's command in a docker container: the core of the docker
// backend's Sandbox (docs/store.md, "The docker backend"), kept apart from
// the store so that it is tested on its own against a real dockerd.
//
//   StepContainer step{.image = "kiln:" + base_id, .name = "kiln-step-" + id,
//                      .labels = {{"kiln.store", "kiln"}}, .secrets_dir = "/run/kiln/secrets"};
//   Status s = run_step_container(client, step, run_spec, on_output, cancel);
//   // then commit the (stopped) container, or remove it
//
// What the container gets from the RunSpec: argv as its Entrypoint (the
// image's Entrypoint and Cmd are not used), env, uid:gid, cwd, hostname;
// network `none`, or `host` for {"host"}; the bind mounts; each secret as a
// read-only bind of a file written (0400, owned by the step's user) in
// `secrets_dir` — which should be a tmpfs — and removed when the step ends,
// so it never reaches the container's writable layer; memory (no swap), pids
// and cpu limits; nofile and nproc ulimits of 1024; log driver `none` (the
// output is attached before the container starts). Stdin is not supported
// (kUnsupported): no builder step uses it.
//
// On return the container exists and is stopped (unless creating it failed):
// the caller commits or removes it. Errors are those of sandbox.h's Sandbox::run:
// kCancelled, kTimeout ("timed out after 5s ..."), kFailedPrecondition
// ("command exited with status 3", "killed: memory limit of 16.0 MiB reached
// (...)", "could not start the command ...: dockerd's message"), kInternal
// when the output sink throws, and the client's errors otherwise. Thread
// safety: calls for different containers may run at once.
#pragma once

#include <string>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/docker/docker_client.h"
#include "worker/sandbox/sandbox.h"

namespace kiln::docker {

struct StepContainer {
  std::string image;        // what the step starts from
  std::string name;         // the container's name
  Labels labels;            // on the container (and so on its commit)
  std::string secrets_dir;  // host directory for the secrets' files (a tmpfs); needed only with secrets
  // dockerd's volumes directory (DockerRootDir/volumes): a bind mount whose
  // source is VOLUMES_DIR/NAME/_data (a docker store's cache copy) becomes a
  // mount of the volume NAME, since dockerd refuses binds from inside its
  // root. Empty: every mount is a bind.
  std::string volumes_dir;
  // ContainerSpec::cgroup_parent: where the step's processes go (the
  // sandbox's watchdog kills what is there when the worker dies). "" = the daemon's.
  std::string cgroup_parent;
};

Status run_step_container(DockerClient& client, const StepContainer& step, const sandbox::RunSpec& spec,
                          const sandbox::OutputSink& on_output, CancelToken& cancel);

}  // namespace kiln::docker
