#include "worker/builder/step_files.h"

#include <fmt/format.h>

#include "common/fs.h"
#include "worker/docker/container_files.h"

namespace kiln::builder {

namespace {

class RootfsStepFiles final : public StepFiles {
 public:
  Status copy_in(const store::Workspace& ws, const std::vector<CopySourceTree>& sources, const std::string& dst,
                 const spec::UnixUser& owner, const CancelToken& cancel) override {
    if (!ws.has_rootfs())
      return make_error(ErrorKind::kUnsupported,
                        "this store's workspace has no rootfs directory to copy into; the docker store "
                        "needs the builder's docker step files (BuilderOptions::step_files)");
    return copy_into_rootfs(ws.rootfs, sources, dst, owner, cancel);
  }
};

class DockerStepFiles final : public StepFiles {
 public:
  DockerStepFiles(std::shared_ptr<docker::DockerClient> client, std::string prefix)
      : client_(std::move(client)), prefix_(std::move(prefix)) {}

  Status copy_in(const store::Workspace& ws, const std::vector<CopySourceTree>& sources, const std::string& dst,
                 const spec::UnixUser& owner, const CancelToken& cancel) override {
    if (ws.container.empty() || ws.base_image.empty())
      return make_error(ErrorKind::kInvalidArgument,
                        "a copy on the docker store needs a workspace with a base image and a container name");
    std::string staging = ws.dir + "/copy";
    KILN_RETURN_IF_ERROR(remove_tree(staging));
    KILN_RETURN_IF_ERROR(ensure_dir(staging));
    Status status = copy_into_rootfs(staging, sources, dst, owner, cancel);
    if (status) status = put(ws, staging, dst);
    Status removed = remove_tree(staging);
    KILN_RETURN_IF_ERROR(status);
    return removed;
  }

 private:
  Status put(const store::Workspace& ws, const std::string& staging, const std::string& dst) {
    std::string step_id = ws.dir.substr(ws.dir.rfind('/') + 1);
    // Never started: the command only satisfies dockerd (an image may have
    // none); the store's commit sets the base's Entrypoint and Cmd back.
    docker::ContainerSpec container{
        .image = ws.base_image,
        .entrypoint = std::vector<std::string>{"/bin/sh"},
        .labels = {{"kiln.store", prefix_}, {"kiln.kind", "step"}, {"kiln.step", step_id}}};
    KILN_RETURN_IF_ERROR_CONTEXT(client_->create_container(container, ws.container),
                                 "creating the copy step's container from " + ws.base_image);
    return docker::put_staged_tree(*client_, ws.container, staging, dst);
  }

  std::shared_ptr<docker::DockerClient> client_;
  const std::string prefix_;
};

}  // namespace

StepFiles& rootfs_step_files() {
  static RootfsStepFiles files;
  return files;
}

std::shared_ptr<StepFiles> make_docker_step_files(std::shared_ptr<docker::DockerClient> client,
                                                  std::string prefix) {
  return std::make_shared<DockerStepFiles>(std::move(client), std::move(prefix));
}

}  // namespace kiln::builder
