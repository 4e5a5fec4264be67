// What a (from …) step keeps besides its rootfs, and how a new one can start
// from an image unpacked before (docs/images.md, "Tags"; issue 14's warm
// pull). A (from …) result holds `image.json`: the reference, the image's
// env, workdir, user, entrypoint and cmd, the manifest digest unpacked and
// what a registry tag resolved to. UnpackedImages remembers, per manifest
// digest, the (from …) result that unpacked it, so that a step whose
// reference is new (a new tag, another name for the same image) but resolves
// to a manifest already unpacked is made as a snapshot of that result with
// its own image.json, instead of unpacking every layer again.
//
//   UnpackedImages unpacked(cache_dir + "/unpacked");
//   unpacked.record("sha256:…", from_id);          // after a fetch
//   if (auto earlier = unpacked.find("sha256:…"))  // a result id; check the store still has it
//
// The index is one small file per manifest digest (DIR/HEX holds the result
// id), written atomically; a stale entry (its result pruned or deleted) is
// harmless: the caller checks the store. Errors: kFailedPrecondition for an
// image.json that is not a JSON object.
// Thread safety: concurrent calls are fine (files replaced by rename).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/builder/build_log.h"
#include "worker/fetcher/fetcher.h"
#include "worker/store/workspace.h"

namespace kiln::builder {

// What fills a step's workspace (the store's build function, with the step's
// log and cancel token).
using StepFill = std::function<Status(const store::Workspace& ws, BuildLog& log, CancelToken& cancel)>;

// A (from …) step made as a snapshot of `base`, an earlier result holding the
// same image (Builder::reuse_unpacked pins it), with its own fill.
struct ImageReuse {
  std::string base;
  StepFill fill;
};

// The image.json of a (from …) result fetched from `reference`.
std::string image_config_json(const std::string& reference, const fetcher::ImageConfig& config);

// The env of the image.json at `path` ("K=V" split at the first '='), in order.
Result<std::vector<std::pair<std::string, std::string>>> read_image_env(const std::string& path);

// `text` (an earlier result's image.json) for a step fetched from `reference`
// that resolved to `resolved`: everything else is kept. kFailedPrecondition
// when `text` records another manifest (a stale index entry).
Result<std::string> retarget_image_json(std::string_view text, const std::string& reference,
                                        const fetcher::ResolvedImage& resolved);

class UnpackedImages {
 public:
  // `dir` empty: nothing is remembered or found.
  explicit UnpackedImages(std::string dir) : dir_(std::move(dir)) {}

  bool enabled() const { return !dir_.empty(); }
  // The result that unpacked `manifest_digest` ("sha256:HEX"), if one is known.
  std::optional<std::string> find(const std::string& manifest_digest) const;
  // Best effort: a failure to remember costs a later unpack, nothing else.
  void record(const std::string& manifest_digest, const std::string& result_id) const;

 private:
  std::string dir_;
};

}  // namespace kiln::builder
