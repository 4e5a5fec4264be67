// Internal to worker/fetcher: applies a whole image plan — every layer in
// order — to an empty root filesystem; what every fetcher does once it knows
// where the image's files are (an OCI layout, a tarball, the registry blob
// cache).
//
//   KILN_ASSIGN_OR_RETURN(ImagePlan plan, plan_oci_layout(*files, reference));
//   return unpack_image(*files, plan, to_string(reference), rootfs, progress);
//
// Contract: `rootfs` must be an existing empty directory (kFailedPrecondition
// otherwise); the layers are verified and applied as unpack_layer() says.
// Returns plan.config. Thread safety: a function; distinct rootfs are fine.
#pragma once

#include <string>

#include "common/error.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"

namespace kiln::fetcher::internal {

// `cancel` (may be null) is checked before each layer: kCancelled.
Result<ImageConfig> unpack_image(ImageFiles& files, const ImagePlan& plan, const std::string& image,
                                 const std::string& rootfs, const Progress& progress,
                                 const CancelToken* cancel = nullptr);

}  // namespace kiln::fetcher::internal
