// The manifest of an uploaded context tar (docs/step-ids.md), so that the
// scheduler can compute a job's step ids, and place it by what workers have
// cached, before any worker sees the job.
//
//   KILN_ASSIGN_OR_RETURN(ids::ContextManifest m, tar_manifest("/var/lib/.../HEX.tar"));
//   KILN_ASSIGN_OR_RETURN(auto steps, ids::compute_step_ids(spec, &m, "app.spec"));
//
// Entries as a worker extracting the tar sees them: regular files (content
// SHA-256, executable bit), directories, symlinks (target as stored); hard
// links count as files with their target's content; devices and fifos as
// special entries. Paths are normalised; "..", absolute paths and duplicate
// entries are refused (kInvalidArgument), as the worker refuses them.
// Thread safety: a pure function of the file.
#pragma once

#include <string>

#include "common/error.h"
#include "common/ids/manifest.h"

namespace kiln::scheduler {

Result<ids::ContextManifest> tar_manifest(const std::string& path);

}  // namespace kiln::scheduler
