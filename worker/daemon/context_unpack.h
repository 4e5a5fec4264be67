// Unpacking a job's build context into its job directory, safely: a context
// tar comes from a client the worker does not trust, so nothing in it may
// write or point outside the directory it is unpacked into.
//
//   KILN_RETURN_IF_ERROR(unpack_context_tar(state + "/contexts/" + hex + ".tar", job_dir));
//   KILN_RETURN_IF_ERROR(check_symlinks_stay_inside(job_dir));   // also for git checkouts
//
// unpack_context_tar accepts directories, regular files, symlinks and hard
// links (uncompressed tar or gzip/zstd/xz/bzip2-compressed). It refuses, with
// a kInvalidArgument error naming the entry and saying why:
//   - absolute paths and ".." components;
//   - devices, fifos and sockets;
//   - absolute symlink targets, and symlinks that lead outside `dest_dir`
//     once everything is unpacked (checked by following them);
//   - hard links whose target is not a file already unpacked;
//   - writing through a symlink (a path whose parent is a symlink).
// Files keep their permission bits (the executable bit is part of step ids)
// without setuid, setgid or sticky bits; owners are not restored (everything
// belongs to the worker's user). `dest_dir` must exist; on error it may hold
// part of the tree (the caller removes it).
// Thread safety: no shared state (no chdir); concurrent calls are fine.
#pragma once

#include <string>

#include "common/error.h"

namespace kiln::worker {

Status unpack_context_tar(const std::string& tar_path, const std::string& dest_dir);

// Fails (kInvalidArgument, naming the link) if any symlink below `root`
// points at an absolute path or resolves to a place outside `root`.
Status check_symlinks_stay_inside(const std::string& root);

}  // namespace kiln::worker
