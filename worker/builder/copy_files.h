// Writing a `copy` step's files into a snapshot's root filesystem, from the
// host side, safely and reproducibly.
//
//   CopySourceTree src{.root = "/home/me/ctx", .manifest = manifest_of_src};
//   KILN_RETURN_IF_ERROR(copy_into_rootfs(dir + "/rootfs", {src}, "/app/",
//                                         spec::UnixUser{1000, 1000}, cancel));
//
// What is written is exactly what the manifests list (the same manifests the
// step id was computed from), read from `root/<entry path>`; a file whose
// content no longer matches its manifest digest fails the copy ("changed
// while it was copied"), so a step id never names other content.
//
// Semantics (OBuilder's, lib/build.ml `to_copy_op`):
//   - `dst` ending in '/' ("copy into"): the directory is created if missing
//     and each source lands in it under its own name; a source that is the
//     root of its tree ("." or "/") has its content copied into `dst`.
//   - otherwise ("copy as"): there is exactly one source and it becomes `dst`
//     (a directory's content goes under `dst`); missing parents are created.
// Metadata is normalised, so that equal ids mean equal trees: files 0755 when
// any execute bit was set in the source and 0644 otherwise, directories 0755,
// symlinks with their recorded target, everything owned by `owner`, and
// every written entry and every directory whose content changed gets the
// fixed mtime kCopiedMtime.
// Writes never leave `rootfs`: the parents of every written entry are
// resolved with path::resolve_beneath(rootfs, ..., kRelativeToRoot), so an
// absolute or `..` symlink in the image is followed as the container would
// see it, inside the rootfs; the entry itself is replaced, never written
// through (an existing symlink at its place is removed first).
// Errors (kInvalidArgument for conflicts with the image, kIo from the OS,
// kCancelled) name the container path and what to do.
// Thread safety: a pure function of its arguments and the filesystem.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "common/ids/manifest.h"
#include "common/spec/spec.h"

namespace kiln::builder {

// The mtime every copied entry gets (the Unix epoch).
inline constexpr std::time_t kCopiedMtime = 0;

// One copy source: the manifest of what to copy and the host directory its
// paths are relative to (the build context, or a build stage's rootfs).
struct CopySourceTree {
  std::string root;
  ids::Manifest manifest;
};

// `dst` is the destination as ids::resolve_destination gives it (absolute,
// normalised, a trailing '/' meaning "copy into").
Status copy_into_rootfs(const std::string& rootfs, const std::vector<CopySourceTree>& sources,
                        const std::string& dst, const spec::UnixUser& owner, const CancelToken& cancel);

}  // namespace kiln::builder
