// `--push REF`: a build result as an OCI image in a registry (docs/images.md,
// "Results out"). The image is the result's chain of snapshots: the base
// image's own layers (reused by digest: already in the repository, mounted
// from the base's repository on the same registry, or uploaded from the
// worker's blob cache or the OCI layout the base came from), then one layer
// per kiln step above it (layer_diff.h: the step's rootfs against its
// parent's). The config is the base's with the spec's env, workdir and user
// applied, rootfs.diff_ids and history extended; the manifest is an OCI image
// manifest PUT under REF's tag.
//
//   PushOptions options{.reference = "127.0.0.1:5000/team/app:1", .registry = registry_options,
//                       .tmp_dir = home + "/tmp"};
//   KILN_ASSIGN_OR_RETURN(PushResult pushed, push_result(store, id, spec, options, note));
//   // pushed.digest: "sha256:…" of the manifest
//
// When the base's layers cannot be found again (a docker-archive base, or
// blobs no longer in the cache), the base's rootfs goes up as one layer and
// the config is made from its image.json. Login and TLS are the registry
// client's (bearer token with scope repository:REPO:push,pull, basic, the
// docker config, --registry-ca, --insecure-registry). Errors name the
// registry, the repository and what to do; kPermissionDenied for refused
// credentials. `progress` gets one line per layer and the manifest.
// Thread safety: a function; results of `store` must not be deleted while it
// runs (the caller pins them or runs nothing else).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"
#include "common/spec/spec.h"
#include "worker/fetcher/fetcher.h"
#include "worker/store/store.h"

namespace kiln::pusher {

struct PushOptions {
  std::string reference;              // [HOST[:PORT]/]PATH[:TAG]; no digest
  fetcher::RegistryOptions registry;  // cache_dir: where registry bases' blobs are; TLS and login
  std::string tmp_dir;                // layer files are written here, removed after
  // USER and PASSWORD to log in with instead of the docker config's (a farm
  // job's login, sent with it as a secret); both empty: the docker config.
  std::pair<std::string, std::string> login;
  // A docker store's results are pushed by this dockerd (its own registry
  // configuration: insecure registries, certificates; `registry`'s TLS
  // options do not apply), with the login above or the docker config's.
  std::string docker_host = "unix:///var/run/docker.sock";
};

struct PushResult {
  std::string reference;  // canonical REGISTRY/REPOSITORY:TAG
  std::string digest;     // of the manifest pushed
  std::size_t layers = 0;
  std::size_t layers_uploaded = 0;  // the others were there already or mounted
};

using PushProgress = std::function<void(std::string_view line)>;

Result<PushResult> push_result(store::Store& store, const std::string& id, const spec::Spec& spec,
                               const PushOptions& options, const PushProgress& progress);

}  // namespace kiln::pusher
