// Internal to worker/fetcher: applies one image layer (a tar, plain, gzip or
// zstd) on top of a root filesystem, the way a container engine stacks
// layers: whiteouts (`.wh.NAME`) remove what lower layers put at NAME,
// `.wh..wh..opq` empties a directory of lower layers' content, and every
// other entry is created with its owner, mode, times and xattrs.
//
//   for (std::size_t i = 0; i < plan.layers.size(); ++i)
//     KILN_RETURN_IF_ERROR(unpack_layer(*files, plan.layers[i], {i + 1, n, image}, rootfs, progress));
//
// Contract:
// - `rootfs` is an absolute path without symlinks (realpath), owned by the
//   caller, and nothing else changes it meanwhile.
// - The blob's sha256 is checked against layer.digest and the uncompressed
//   tar's against layer.diff_id (when given) while reading; a mismatch is an
//   error naming the blob, found once the layer has been read — by then the
//   layer is (partly) applied, and the caller discards `rootfs`.
// - Entries that would land outside `rootfs` are refused: absolute names,
//   "..", parents that resolve through a symlink leaving the root, hardlinks
//   to outside. Symlinks met on the way are followed inside the root only,
//   with absolute targets taken relative to it (as the container will see
//   them). Owners, xattrs and device nodes need root; as another user they
//   are skipped where the OS refuses them.
// Thread safety: a function; concurrent calls on different rootfs are fine.
#pragma once

#include <cstddef>
#include <string>

#include "common/error.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"

namespace kiln::fetcher::internal {

struct LayerPosition {
  std::size_t number = 1;  // 1-based
  std::size_t count = 1;
  std::string image;  // the reference, for messages
};

// Progress notes come every this many bytes of a layer blob.
inline constexpr std::uint64_t kProgressEveryBytes = 16ull << 20;

Status unpack_layer(ImageFiles& files, const LayerDescriptor& layer, const LayerPosition& position,
                    const std::string& rootfs, const Progress& progress);

}  // namespace kiln::fetcher::internal
