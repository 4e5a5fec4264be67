// Where a copy step's files go (docs/store.md, "The builder: a step works on
// a Workspace"): the snapshot stores' workspaces have a rootfs directory the
// copy writes into; the docker store's have a container to create and fill.
// Either way the files are laid out by copy_into_rootfs (copy_files.h), the
// one implementation of the copy semantics.
//
//   BuilderOptions options;
//   options.step_files = make_docker_step_files(client, "kiln");  // unset: the rootfs
//   ...
//   KILN_RETURN_IF_ERROR(files.copy_in(ws, trees, "/app/", owner, cancel));
//
// Thread safety: copy_in may run from several threads at once (one per step).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "common/spec/spec.h"
#include "worker/builder/copy_files.h"
#include "worker/docker/docker_client.h"
#include "worker/store/workspace.h"

namespace kiln::builder {

class StepFiles {
 public:
  virtual ~StepFiles() = default;
  // Writes the copy of `sources` to `dst` (as copy_into_rootfs) into the
  // step's tree: `ws.rootfs`, or the container `ws.container` made from
  // `ws.base_image` and left, never started, for the store to commit.
  virtual Status copy_in(const store::Workspace& ws, const std::vector<CopySourceTree>& sources,
                         const std::string& dst, const spec::UnixUser& owner, const CancelToken& cancel) = 0;
  // For a copy from a build stage on a store whose results have no rootfs:
  // a host directory beside `ws` (the caller removes it) holding the paths
  // `sources` (normalised, relative to `/`) of result `result_id`, owners,
  // modes and mtimes kept. Default: kUnsupported.
  virtual Result<std::string> open_tree(const store::Workspace& ws, const std::string& result_id,
                                        const std::vector<std::string>& sources, const CancelToken& cancel);
};

// The snapshot stores': copy_into_rootfs(ws.rootfs, ...).
StepFiles& rootfs_step_files();

// The docker store's: the copy is laid out in a staging directory beside
// the workspace (`ws.dir + "/copy"`, removed afterwards) and put into the
// step container with put_staged_tree (container_files.h). `prefix` is the
// store's (the container's kiln.store label).
std::shared_ptr<StepFiles> make_docker_step_files(std::shared_ptr<docker::DockerClient> client,
                                                  std::string prefix);

}  // namespace kiln::builder
