// The docker backend's Fetcher (docs/store.md, "From steps"): registry
// references are pulled by dockerd (POST /images/create: the daemon's own
// registry configuration and credentials); oci:, docker-archive: and
// oci-archive: go through kiln's own fetcher into a host directory beside
// the workspace, which is imported as a single-layer image. Either way a
// container of the image named `ws.container` is created (never started)
// for the docker store to commit, so every result carries the same labels.
//
//   auto fetcher = make_docker_fetcher(fetcher::make_fetcher(registry), client, "kiln");
//   auto config = fetcher->fetch_into(progress, ws, "oci:/images/busybox:latest", {});
//
// Only fetch_into() works (fetch() into a directory is kiln's own fetcher's
// job: kUnsupported). Thread safety: fetches may run from several threads.
#pragma once

#include <memory>
#include <string>

#include "worker/docker/docker_client.h"
#include "worker/fetcher/fetcher.h"

namespace kiln::docker {

// `local` fetches the non-registry references; `host` is dockerd's socket
// and `prefix` the docker store's.
Result<std::unique_ptr<fetcher::Fetcher>> make_docker_fetcher(std::unique_ptr<fetcher::Fetcher> local,
                                                              const std::string& host,
                                                              const std::string& prefix);

}  // namespace kiln::docker
