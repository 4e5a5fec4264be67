// User-namespaced steps' file access (internal to worker/sandbox): a user
// namespace kept open for its id mapping, and idmapped mounts through which
// such a step sees the store's files with their own owners.
//
// A step in a user namespace runs as host uids host_first.. (its root is
// host_first), while the store's files belong to host root and the image's
// users. Through an idmapped mount (mount_setattr(MOUNT_ATTR_IDMAP), Linux
// 5.12+) made with the same mapping as the step's namespace, the step sees
// them as their on-disk owners (root as root) and what it writes is stored
// with on-disk owners too: results do not depend on the mapping. Filesystems
// that cannot be idmapped (overlayfs) give an error saying so.
//
//   KILN_ASSIGN_OR_RETURN(UniqueFd userns, open_user_namespace({.host_first = 1000000000, .count = 65536}));
//   KILN_ASSIGN_OR_RETURN(StepView view, StepView::create("/run/kiln/3fa2/kiln-9c1d"));
//   KILN_ASSIGN_OR_RETURN(std::string rootfs, view.add_idmapped(store_rootfs, "rootfs", userns.get()));
//   ... config.json's root.path = rootfs ...
//   // destroying `view` detaches its mounts and removes the directory
//
// Needs root (CAP_SYS_ADMIN). Thread safety: the functions may be called
// from any thread; a StepView is used by one.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "worker/sandbox/oci_config.h"

namespace kiln::sandbox {

// An fd of a new user namespace whose uids and gids 0..count-1 are host ids
// host_first.. (made by a short-lived child process, which has exited by the
// time this returns). kIo when the kernel refuses.
Result<UniqueFd> open_user_namespace(const IdRange& range);

// A directory of host paths one user-namespaced step's configuration points
// to. The container's root, a host uid without privileges, must be able to
// reach everything runc mounts for it, so the directory (and its parents)
// must be searchable by others: the sandbox keeps these under a tmpfs of its
// own in /run (RuncSandbox).
class StepView {
 public:
  // Creates `dir` (mode 0711).
  static Result<StepView> create(std::string dir);
  StepView(StepView&& other) noexcept;
  StepView& operator=(StepView&&) = delete;
  StepView(const StepView&) = delete;
  StepView& operator=(const StepView&) = delete;
  // Detaches its mounts (lazily: a process still using one keeps it until
  // it lets go) and removes the directory.
  ~StepView();

  const std::string& dir() const { return dir_; }

  // Mounts `host_path` (a directory, with whatever is mounted below it)
  // idmapped through `userns_fd` at DIR/name; returns that path.
  // kUnsupported, naming the filesystem, when it cannot be idmapped.
  Result<std::string> add_idmapped(const std::string& host_path, const std::string& name, int userns_fd);

 private:
  explicit StepView(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;  // empty once moved from
  std::vector<std::string> mounts_;
};

// Detaches every mount at or below `dir` (deepest first); returns how many.
// kBusy, naming them, when mounts are still there afterwards: the caller
// must then not remove the directory's contents (they may be the store's,
// seen through a mount).
Result<int> detach_mounts_below(const std::string& dir);

}  // namespace kiln::sandbox
