// The filesystem primitives a snapshot store backend provides (internal to
// worker/store). Everything backends share — directory layout, metadata,
// build and cache bookkeeping, deletes, crash recovery — lives once in
// SnapshotStore (snapshot_store.cc); a backend file (overlayfs_store.cc,
// btrfs_store.cc, xfs_store.cc, rsync_store.cc, docker_store.cc) implements
// only this.
//
//   auto backend = make_btrfs_backend();
//   KILN_RETURN_IF_ERROR(backend->check_filesystem("/var/cache/kiln"));
//   KILN_ASSIGN_OR_RETURN(WorkTree w, backend->clone(base_lineage, tmp_dir, CloneUse::kBuild));
//   ... write into w.writable ...
//   KILN_RETURN_IF_ERROR(backend->commit(w, result_dir));
//
// Contract: paths are absolute, inside the store root; a destination never
// exists beforehand; commit is atomic (the destination appears complete or
// not at all). Thread safety: methods are called concurrently for different
// paths; a backend guards any state of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "worker/store/fs_util.h"
#include "worker/store/store.h"

namespace kiln::store {

// A committed snapshot and the snapshots its storage is stacked on.
struct Lineage {
  std::string id;
  std::vector<std::string> layers;  // [0]: the snapshot's own directory; then what it lies on, nearest first
};

// A writable tree being prepared (a build's or a cache copy's).
struct WorkTree {
  std::string dir;               // the backend's working directory; discard(dir) removes everything
  std::string writable;          // where the build function or cache user writes (its rootfs/, its log)
  std::string link_base;         // rsync hardlink mode: a result to share unchanged files with
  bool layered_on_base = false;  // the committed result needs its base's layers (overlayfs)
  bool has_rootfs = true;        // false: the tree is not a directory (docker: a container)
  std::string base_image;        // docker: the image a build starts from
  std::string container;         // docker: the container the build leaves for commit
};

enum class CloneUse {
  kBuild,  // a build step's base: may be layered on the base
  kCache,  // a cache copy: must be self-contained (the latest snapshot is replaced on release)
};

class SnapshotBackend {
 public:
  virtual ~SnapshotBackend() = default;

  virtual std::string_view kind() const = 0;  // "btrfs", ...
  // Checks that `root` (an existing directory) is on a filesystem this
  // backend can use; the error says what is wrong and what to do.
  virtual Status check_filesystem(const std::string& root) = 0;
  // A new empty writable tree in `dir` (which does not exist yet).
  virtual Result<WorkTree> create_empty(const std::string& dir) = 0;
  // A writable copy of `base` in `dir` (which does not exist yet).
  virtual Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse use) = 0;
  // Turns the work tree into the read-only snapshot `dst`. What remains at
  // work.dir, if anything, the store removes later with discard().
  virtual Status commit(const WorkTree& work, const std::string& dst) = 0;
  // Removes a work tree or any leftover temporary at `dir` (also after a crash).
  virtual Status discard(const std::string& dir) = 0;
  // Removes snapshot `id`, now at `path` (it may have been moved to the trash).
  virtual Status remove_snapshot(const std::string& id, const std::string& path) = 0;
  // A complete readable tree of the snapshot (overlayfs mounts a merged view).
  virtual Result<std::string> view(const Lineage& snapshot) { return snapshot.layers.front(); }
  // True when a result's storage needs its parent's (deleting a parent must delete its children).
  virtual bool results_depend_on_parents() const { return false; }
  // Waits for background deletes (btrfs cleans deleted subvolumes lazily).
  virtual Status complete_deletes() { return {}; }

  // Hooks for a backend whose snapshots are not (only) the directories
  // (docker: images, volumes). The defaults are the directory stores'.
  // Percent free where the snapshots' bytes live.
  virtual Result<double> df(const std::string& root) { return percent_free(root); }
  // Whether the content of recorded result `id` (whose directory exists)
  // still exists; recovery drops the record when it does not, and a store
  // opened read-only asks it before it reports a result.
  virtual Result<bool> present(const std::string& /*id*/) { return true; }
  // Called at open after the store's own recovery, with the results that
  // remain: removes what the backend made outside the store's directories
  // that none of them (nor any cache) uses, counting it in `report`.
  virtual Status reconcile(const std::set<std::string>& /*live_results*/, RecoveryReport& /*report*/) {
    return {};
  }
  // The bytes result `id` (at `path`) adds to its parent (nullopt: none).
  virtual Result<std::uint64_t> size_of(const std::string& /*id*/, const std::string& path,
                                        const std::optional<std::string>& /*parent*/) {
    return disk_usage(path);
  }
};

std::unique_ptr<SnapshotBackend> make_overlayfs_backend(const std::string& root, int max_layers);
std::unique_ptr<SnapshotBackend> make_btrfs_backend();
std::unique_ptr<SnapshotBackend> make_xfs_backend();
std::unique_ptr<SnapshotBackend> make_rsync_backend(RsyncMode mode);
// docker_store.cc: results are images `prefix:<id>` in the daemon at `host`;
// `root` is the store's host directory.
std::unique_ptr<SnapshotBackend> make_docker_backend(const std::string& root, const std::string& prefix,
                                                     const std::string& host);

// Shared by backends: "<store>:<root>: <root> is on <fs>, not <wanted>; ..." error.
std::unexpected<Error> wrong_filesystem_error(std::string_view store_kind, const std::string& root,
                                              std::int64_t magic, std::string_view wanted);

}  // namespace kiln::store
