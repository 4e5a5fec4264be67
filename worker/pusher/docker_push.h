// Internal to worker/pusher: `--push` of a result that a docker store keeps
// as an image (docs/store.md, "Pushing a docker store's result"). dockerd
// pushes it, with its own registry configuration (insecure registries and
// certificates are the daemon's), as `docker push` would:
//
//   1. a container is created (never started) from the result image and
//      committed as REGISTRY/REPO:TAG with the spec's final env, workdir and
//      user and kiln's labels emptied (an unchanged container adds no layer),
//      so that the pushed config is the one the spec leaves and a container
//      run from the pushed image is not taken for one of the store's own.
//      The config is new at each push (docker's commit dates it), so the
//      same result pushed twice has the same layers but not the same digest;
//   2. POST /images/NAME/push with the login (PushOptions::login, else the
//      docker config's for that registry) as X-Registry-Auth;
//   3. the pushed name is removed again and the container with it, however
//      the push ended: the store's images stay the store's.
//
// Errors name the registry and what to do; a refused login is
// kPermissionDenied. Thread safety: a function.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "worker/fetcher/registry_reference.h"
#include "worker/pusher/image_pusher.h"

namespace kiln::pusher::internal {

// What the spec's main stage leaves set, applied over the result's config.
struct FinalSettings {
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<std::string> workdir;
  std::optional<std::string> user;
};

// `env` ("NAME=VALUE", in order) with `settings` applied over it: a name it
// has takes the new value in place, a new one goes at the end. (The other
// stores' pushed config applies the spec's env the same way.)
std::vector<std::string> merged_env(std::vector<std::string> env,
                                    const std::vector<std::pair<std::string, std::string>>& settings);

// The X-Registry-Auth value dockerd reads: base64url of
// {"username","password","serveraddress"}.
std::string docker_registry_auth(const std::string& username, const std::string& password,
                                 const std::string& registry);

Result<PushResult> push_docker_image(const std::string& image, const std::string& id,
                                     const fetcher::RegistryReference& ref, const FinalSettings& settings,
                                     const PushOptions& options, const PushProgress& progress);

}  // namespace kiln::pusher::internal
