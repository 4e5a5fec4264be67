// Where the sandboxes keep secret values while a step runs: a tmpfs of the
// sandbox's own, so that a value never touches a disk (sandbox.h, "secrets").
// RuncSandbox mounts one at STATE/secrets, DockerSandbox at its secrets
// directory, from which dockerd bind-mounts each value into the step.
// RuncSandbox's other tmpfs mounts (bundles, the runtime's state) use
// is_tmpfs_mount too.
//
//   KILN_RETURN_IF_ERROR(mount_secrets_tmpfs(dir));  // at create(), after taking the state lock
//   ...
//   unmount_secrets_tmpfs(dir);                      // in the destructor, once no step runs
//
// Needs root (CAP_SYS_ADMIN). Not thread-safe for one directory: the
// sandbox that owns it (its state lock) mounts and unmounts it.
#pragma once

#include <string>

#include "common/error.h"

namespace kiln::sandbox {

// True when `path` is the root of a mount (its device differs from its parent's).
bool is_mount_point(const std::string& path);
// True when a tmpfs is mounted at `path` itself (not only somewhere above it).
bool is_tmpfs_mount(const std::string& path);

// Mounts a tmpfs at `dir` (an existing directory): nosuid, nodev, noexec,
// mode 0700, at most 64 MiB. A tmpfs already mounted there (left by an
// earlier owner that died) is kept as it is. Errors: errno's, saying the
// sandbox must run as root.
Status mount_secrets_tmpfs(const std::string& dir);

// Detaches the tmpfs at `dir`, if one is mounted there; what it held is gone.
void unmount_secrets_tmpfs(const std::string& dir);

}  // namespace kiln::sandbox
