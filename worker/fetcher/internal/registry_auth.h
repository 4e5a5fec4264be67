// Internal to worker/fetcher: what the registry client needs to log in —
// the challenge of a 401 answer (`WWW-Authenticate: Bearer realm="…",
// service="…",scope="…"` or `Basic realm="…"`) and the user's credentials
// from a docker config file (`docker login` writes them: `auths` →
// registry → base64 `auth` of "USER:PASSWORD", or `username`/`password`).
//
//   KILN_ASSIGN_OR_RETURN(AuthChallenge c, parse_www_authenticate(header));
//   KILN_ASSIGN_OR_RETURN(auto creds, docker_config_credentials(docker_config_path(""), "ghcr.io"));
//
// Contract: pure functions but for reading the config file; a missing config
// file means no credentials (not an error), a malformed one is
// kInvalidArgument naming it. Credential helpers (`credsStore`,
// `credHelpers`) are not run. Thread safety: functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/base64.h"
#include "common/error.h"

namespace kiln::fetcher::internal {

struct AuthChallenge {
  std::string scheme;                         // "bearer" or "basic", lowercased
  std::map<std::string, std::string> params;  // realm, service, scope (keys lowercased)
};

// The first challenge of a WWW-Authenticate header value.
Result<AuthChallenge> parse_www_authenticate(std::string_view header);

struct Credentials {
  std::string username;
  std::string password;
};

// `explicit_path` if given, else $DOCKER_CONFIG/config.json, else
// $HOME/.docker/config.json ("" when none of these can be formed).
std::string docker_config_path(const std::string& explicit_path);

// The credentials the config holds for `registry` (HOST[:PORT]; docker.io also
// matches the legacy key https://index.docker.io/v1/), if any.
Result<std::optional<Credentials>> docker_config_credentials(const std::string& config_path,
                                                             const std::string& registry);

}  // namespace kiln::fetcher::internal
