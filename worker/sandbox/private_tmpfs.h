// The sandboxes' own tmpfs mounts: where secret values wait for a step (so
// that a value never touches a disk), and RuncSandbox's bundles and runtime
// state (files that live as long as one step, which a disk filesystem
// mounted with `discard` makes slow to remove). RuncSandbox mounts them at
// STATE/secrets, STATE/bundles and STATE/runtime; DockerSandbox one at its
// secrets directory, from which dockerd bind-mounts each value into the step.
//
//   KILN_RETURN_IF_ERROR(mount_private_tmpfs(dir, "secrets"));  // at create(), after taking the state lock
//   ...
//   unmount_private_tmpfs(dir);                                  // in the destructor, once no step runs
//
// Needs root (CAP_SYS_ADMIN). Not thread-safe for one directory: the
// sandbox that owns it (its state lock) mounts and unmounts it.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln::sandbox {

// True when `path` is the root of a mount (its device differs from its parent's).
bool is_mount_point(const std::string& path);
// True when a tmpfs is mounted at `path` itself (not only somewhere above it).
bool is_tmpfs_mount(const std::string& path);

// Mounts a tmpfs at `dir` (an existing directory): nosuid, nodev, noexec,
// mode 0700, at most 64 MiB. A tmpfs already mounted there (left by an
// earlier owner that died) is kept as it is. Errors: errno's, naming
// `purpose` ("secrets") and saying the sandbox must run as root.
Status mount_private_tmpfs(const std::string& dir, std::string_view purpose);

// Detaches the mount at `dir`, if there is one; what it held is gone.
void unmount_private_tmpfs(const std::string& dir);

}  // namespace kiln::sandbox
