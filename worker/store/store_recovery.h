// A snapshot store's crash recovery (internal to worker/store): what
// opening a store for writing repairs after a crash — stale mounts,
// unfinished temporaries, result directories and metadata records that
// disagree, derived index keys, cache directories and records — and the
// backend's own reconcile() with the results that remain.
//
//   RecoveryReport report;
//   KILN_RETURN_IF_ERROR(recover_snapshot_store(root, *backend, *metadata, report));
//   if (report.repaired_anything()) spdlog::warn("repaired: {}", report.to_string());
//
// Contract: called with no build, cache copy or view of the store in use
// (at open, or when a store opened read-only becomes writable). Errors: the
// first repair that fails, with what it was doing.
#pragma once

#include <string>

#include "common/error.h"
#include "worker/store/metadata.h"
#include "worker/store/snapshot_backend.h"
#include "worker/store/store.h"

namespace kiln::store {

Status recover_snapshot_store(const std::string& root, SnapshotBackend& backend, Metadata& metadata,
                              RecoveryReport& report);

}  // namespace kiln::store
