#include "worker/docker/docker_sandbox.h"

#include <fmt/format.h>

#include "common/fs.h"
#include "worker/docker/step_container.h"

namespace kiln::docker {

Result<std::unique_ptr<DockerSandbox>> DockerSandbox::create(DockerSandboxOptions options) {
  KILN_ASSIGN_OR_RETURN(auto client, DockerClient::create({.host = options.host}));
  if (!options.secrets_dir.empty()) KILN_RETURN_IF_ERROR(ensure_dirs(options.secrets_dir, 0700));
  KILN_ASSIGN_OR_RETURN(DaemonInfo info, client->info());
  auto sandbox = std::unique_ptr<DockerSandbox>(new DockerSandbox(std::move(options), std::move(client)));
  sandbox->volumes_dir_ = info.root_dir + "/volumes";
  return sandbox;
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
      .volumes_dir = volumes_dir_};
  return run_step_container(*client_, step, spec, on_output, cancel);
}

}  // namespace kiln::docker
