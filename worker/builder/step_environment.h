// The user and the environment a build step runs with, derived from the
// image and the spec the way docker applies an image's configuration
// (docs/images.md, "What a step runs with").
//
//   KILN_ASSIGN_OR_RETURN(StepUser user, resolve_step_user(dir + "/rootfs", context.user));
//   run.uid = user.uid;
//   run.gid = user.gid;
//   run.env = step_environment(image_env, context.env, user, run.hostname);
//
// User: `(user (uid U) (gid G))` is taken as written; `(user (name N))` is
// the uid and primary gid of N's entry in the rootfs's /etc/passwd (docker's
// `USER N`; an error when there is none). HOME is the home directory of the
// first passwd entry with the step's uid, or "/" when there is none (runc's
// and docker's rule). /etc/passwd is read beneath the rootfs: symlinks are
// followed as the container would see them, never out of it.
//
// Environment, later rules replacing a name in place or appending it:
//   1. PATH=kDefaultPath and HOSTNAME=<the container's hostname>
//   2. the image config's Env
//   3. the spec's (env ...) bindings in effect
//   4. HOME=<the user's home> if no rule above set HOME
// None of this enters a step id: it is a function of the base image and the
// parent's tree, which the parent id already names (docs/step-ids.md).
// Thread safety: pure functions (resolve_step_user reads the filesystem).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/spec/spec.h"

namespace kiln::builder {

// The PATH docker, BuildKit and OBuilder give a container whose image sets none.
inline constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// An image config's Env: (name, value) pairs in the image's order.
using EnvList = std::vector<std::pair<std::string, std::string>>;

struct StepUser {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string home = "/";  // the passwd entry's home directory for uid, "/" when none

  bool operator==(const StepUser&) const = default;
};

// Resolves `user` against `rootfs`/etc/passwd. Errors: kInvalidArgument when
// a named user has no entry (or the image has no readable /etc/passwd), naming
// the user and what to do; kIo when the file cannot be read. A missing
// /etc/passwd is no error for the uid form (HOME is then "/").
Result<StepUser> resolve_step_user(const std::string& rootfs, const spec::User& user);
// The same from the text of /etc/passwd (nullopt: the image has none), for
// stores whose trees are not directories (the docker store keeps a copy of
// each result's /etc/passwd beside it).
Result<StepUser> resolve_step_user_in(const std::optional<std::string>& passwd, const spec::User& user);

// The step's environment as "NAME=VALUE" entries (rules 1-4 above).
std::vector<std::string> step_environment(const EnvList& image_env,
                                          const std::map<std::string, std::string>& spec_env,
                                          const StepUser& user, std::string_view hostname);

}  // namespace kiln::builder
