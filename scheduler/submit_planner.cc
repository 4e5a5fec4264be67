#include "scheduler/submit_planner.h"

#include <fmt/format.h>

#include "common/context/context_tar.h"
#include "common/ids/step_id.h"
#include "common/sha256.h"
#include "common/spec/spec.h"

namespace kiln::scheduler {

Result<std::vector<std::string>> SubmitPlanner::plan(const proto::JobSpec& spec) {
  const std::string spec_name = spec.spec_name.empty() ? "spec" : spec.spec_name;
  auto parsed = spec::parse_spec(spec.spec, spec_name);
  if (!parsed) return make_error(ErrorKind::kInvalidArgument, parsed.error().to_string());
  switch (spec.context.kind) {
    case proto::ContextRef::Kind::kNone: break;
    case proto::ContextRef::Kind::kTar:
      if (auto hex = ContextStore::hex_of(spec.context.digest); !hex) {
        return make_error(ErrorKind::kInvalidArgument, hex.error().message());
      }
      if (!contexts_.has(spec.context.digest)) {
        return make_error(ErrorKind::kNotFound, fmt::format("context {} has not been uploaded (send it with "
                                                            "put-context first; `kiln submit` does this)",
                                                            spec.context.digest));
      }
      break;
    case proto::ContextRef::Kind::kGit: {
      bool commit_ok = spec.context.git_commit.size() == 40 &&
                       is_sha256_hex(std::string(24, '0') + spec.context.git_commit);
      if (spec.context.git_repo.empty() || !commit_ok) {
        return make_error(
            ErrorKind::kInvalidArgument,
            fmt::format("a git context needs a repository and a full 40-hex commit (got repository {:?}, "
                        "commit {:?})",
                        spec.context.git_repo, spec.context.git_commit));
      }
      break;
    }
  }
  for (const proto::Secret& secret : spec.secrets) {
    if (secret.id.empty()) return make_error(ErrorKind::kInvalidArgument, "a secret has an empty id");
  }
  std::shared_ptr<ids::ContextManifest> manifest;
  if (spec.context.kind == proto::ContextRef::Kind::kTar) {
    auto loaded = context_manifest(spec.context.digest);
    if (!loaded) return make_error(loaded.error().kind(), loaded.error().to_string());
    manifest = *loaded;
  }
  std::vector<std::string> planned;
  auto steps = ids::compute_step_ids(*parsed, manifest.get(), spec_name);
  if (steps) {
    for (const ids::Step& step : *steps) {
      if (step.stage.empty()) planned.push_back(step.id);
    }
  } else if (spec.context.kind != proto::ContextRef::Kind::kGit) {
    return make_error(ErrorKind::kInvalidArgument, steps.error().to_string());
  }
  return planned;
}

Result<std::shared_ptr<ids::ContextManifest>> SubmitPlanner::context_manifest(const std::string& digest) {
  if (auto it = manifests_.find(digest); it != manifests_.end()) return it->second;
  KILN_ASSIGN_OR_RETURN(std::string hex, ContextStore::hex_of(digest));
  KILN_ASSIGN_OR_RETURN(auto manifest, context::context_tar_manifest(contexts_.path_of(hex)));
  auto shared = std::make_shared<ids::ContextManifest>(std::move(manifest));
  // CI resubmits the same few contexts: a small cache, dropped whole when full.
  if (manifests_.size() >= 256) manifests_.clear();
  manifests_[digest] = shared;
  return shared;
}

}  // namespace kiln::scheduler
