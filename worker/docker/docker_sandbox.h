// The docker backend's Sandbox (docs/store.md, "Run steps"): each run step
// in a container `ws.container` made from `ws.base_image` by
// run_step_container (step_container.h), left stopped for the docker store
// to commit (or discard). Only run_in() works: there is no rootfs directory.
//
//   KILN_ASSIGN_OR_RETURN(auto sandbox, DockerSandbox::create({.host = host, .prefix = "kiln",
//                                                               .secrets_dir = home + "/docker-secrets"}));
//   builder::Builder builder(*store, *sandbox, *fetcher, options);
//
// Errors: run_step_container's (sandbox.h's messages); run(spec, rootfs)
// is kUnsupported. Thread safety: steps may run from several threads.
// Not done yet: a watchdog that kills a running step container when the
// worker dies (the store removes it at the next open).
#pragma once

#include <memory>
#include <string>

#include "common/error.h"
#include "worker/docker/docker_client.h"
#include "worker/sandbox/sandbox.h"

namespace kiln::docker {

struct DockerSandboxOptions {
  std::string host = std::string(kDefaultDockerHost);
  std::string prefix = "kiln";  // the store's: labels kiln.store=PREFIX
  std::string secrets_dir;      // host directory for secrets' files (created if missing)
};

class DockerSandbox final : public sandbox::Sandbox {
 public:
  static Result<std::unique_ptr<DockerSandbox>> create(DockerSandboxOptions options);

  Status run(const sandbox::RunSpec& spec, const std::string& rootfs, const sandbox::OutputSink& on_output,
             CancelToken& cancel) override;
  Status run_in(const sandbox::RunSpec& spec, const store::Workspace& ws,
                const sandbox::OutputSink& on_output, CancelToken& cancel) override;

 private:
  DockerSandbox(DockerSandboxOptions options, std::unique_ptr<DockerClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  DockerSandboxOptions options_;
  std::unique_ptr<DockerClient> client_;
  std::string volumes_dir_;  // dockerd's: cache copies are volumes there (StepContainer::volumes_dir)
};

}  // namespace kiln::docker
