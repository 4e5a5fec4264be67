// Validates a submitted job and plans it: the spec parses, its context is
// usable (an uploaded tar that is here, or a git repository and a full
// commit), its secrets are named — and the step ids of its main stage, which
// placement matches against the workers' caches. A tar context's manifest
// is read once per digest (CI resubmits the same few contexts).
//
//   SubmitPlanner planner(contexts);
//   KILN_ASSIGN_OR_RETURN(std::vector<std::string> steps, planner.plan(job_spec));
//
// A git context is not on the scheduler's machine, so a spec that copies
// from one is planned without ids (an empty list), not refused.
// Errors: kInvalidArgument (spec, git reference, secret), kNotFound (a
// context not uploaded), with a message for the submitter.
// Thread safety: one thread (the event loop).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/ids/manifest.h"
#include "common/proto/messages.h"
#include "scheduler/context_store.h"

namespace kiln::scheduler {

class SubmitPlanner {
 public:
  explicit SubmitPlanner(const ContextStore& contexts) : contexts_(contexts) {}

  // The main stage's step ids, in build order.
  Result<std::vector<std::string>> plan(const proto::JobSpec& spec);

 private:
  Result<std::shared_ptr<ids::ContextManifest>> context_manifest(const std::string& digest);

  const ContextStore& contexts_;
  std::unordered_map<std::string, std::shared_ptr<ids::ContextManifest>> manifests_;  // by digest
};

}  // namespace kiln::scheduler
