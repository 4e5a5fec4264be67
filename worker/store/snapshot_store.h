// The one implementation of Store shared by every backend (internal to
// worker/store): layout, metadata, builds, caches, deletes and crash
// recovery, on top of a SnapshotBackend's filesystem primitives.
//
//   KILN_ASSIGN_OR_RETURN(auto store,
//                         open_snapshot_store("/var/cache/kiln", make_btrfs_backend()));
//
// Layout under the root (docs/store.md): result/<id>, tmp/<id> (builds in
// progress), cache/<name>, cache-tmp/<n>-<name> (cache copies in use),
// result/.trash-<n> and cache/.trash-<n> (deletes in progress),
// state/metadata (RocksDB), view/ (backend use). Contract and thread
// safety: as Store.
#pragma once

#include <memory>
#include <string>

#include "common/error.h"
#include "worker/store/snapshot_backend.h"
#include "worker/store/store.h"

namespace kiln::store {

// Creates the layout under `root` if needed, checks the filesystem, and
// repairs what a previous process left behind (with kReadOnlyUntilWrite,
// the last two when the store first changes).
// Of `options`, the open mode, the boot id and the sync delay apply.
Result<std::unique_ptr<Store>> open_snapshot_store(const std::string& root,
                                                   std::unique_ptr<SnapshotBackend> backend,
                                                   const StoreOptions& options = {});

}  // namespace kiln::store
