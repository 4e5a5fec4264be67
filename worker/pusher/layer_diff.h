// One image layer from two snapshots: what changed between a step's parent
// rootfs (`lower`) and the step's rootfs (`upper`), as a gzip-compressed tar
// in the OCI layer format (docs/images.md, "Results out"), the way a registry
// and every container engine read it.
//
//   KILN_ASSIGN_OR_RETURN(LayerBlob layer, write_layer_diff(parent + "/rootfs", child + "/rootfs", tmp));
//   layer.digest;   // "sha256:…" of the gzip blob (the descriptor's digest)
//   layer.diff_id;  // "sha256:…" of the uncompressed tar (the config's rootfs.diff_ids)
//
// What counts as changed (docker's naive differ, plus one rule for kiln's
// copies): an entry only in `upper`; an entry whose type, mode, owner, size,
// mtime (to the nanosecond), symlink target or device number differ; a
// regular file whose metadata all match but whose mtime is kiln's copy mtime
// (0, copy_files.h) and whose content differs — a copy step normalises the
// mtime, so metadata alone would miss it. A directory is written when it or
// anything below it changed (its metadata as in `upper`). An entry only in
// `lower` becomes a whiteout `DIR/.wh.NAME`. `lower` empty ("") means an
// empty tree: every entry of `upper` is written. Entries are sorted by name,
// parents first; gzip with no name or time, so the same trees give the same
// digests. Sockets are left out; fifos and devices are refused
// (kUnsupported: the tar writer keeps files, directories and symlinks only).
// Thread safety: a function.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace kiln::pusher {

struct LayerBlob {
  std::string path;     // the gzip file written
  std::string digest;   // "sha256:HEX" of the file
  std::string diff_id;  // "sha256:HEX" of the uncompressed tar
  std::uint64_t size = 0;
  std::uint64_t entries = 0;  // tar entries, whiteouts included
};

Result<LayerBlob> write_layer_diff(const std::string& lower, const std::string& upper,
                                   const std::string& out_path);

}  // namespace kiln::pusher
