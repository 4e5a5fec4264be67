// Step ids: the name of every snapshot a build produces, computed from the
// spec and the context manifest alone, so that the scheduler knows a job's
// whole id chain before any worker sees it.
//
// An id is the lowercase hex SHA-256 of a canonical S-expression (csexp.h)
// holding the parent id, the operation and the part of the build context
// that can change its result. Only `from`, `run` and `copy` make snapshots;
// `comment`, `workdir`, `user`, `env` and `shell` change the StageContext that
// later ops see. Secret values, cache mounts and the image's own env are never
// part of an id. docs/step-ids.md is the exact recipe, with worked examples.
//
//   KILN_ASSIGN_OR_RETURN(spec::Spec s, spec::load_spec_file("app.spec"));
//   KILN_ASSIGN_OR_RETURN(DirectoryContext ctx, DirectoryContext::open("."));
//   KILN_ASSIGN_OR_RETURN(std::vector<Step> steps, compute_step_ids(s, &ctx, "app.spec"));
//   std::string final_id = steps.back().id;   // the main stage's result
//
// The builder must run each op with the same StageContext used here (use
// StageContext::apply, resolve_workdir and resolve_destination) so that what
// an id names is what was built.
// Thread safety: pure functions over values, except that compute_step_ids
// calls the ContextSource (one call at a time).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/ids/manifest.h"
#include "common/spec/spec.h"

namespace kiln::ids {

// First atom of every step encoding; bumped when the recipe changes.
inline constexpr std::string_view kStepTag = "kiln-step-v1";

enum class StepKind { kFrom, kRun, kCopy };

// "from", "run" or "copy".
std::string_view step_kind_name(StepKind kind);

// One snapshot of a build, in build order.
struct Step {
  std::string id;         // 64 lowercase hex characters
  std::string parent_id;  // "" for a from step
  StepKind kind = StepKind::kFrom;
  std::string stage;        // "" for the main stage, "dev", "dev/inner" for child builds
  std::string description;  // one line: "(from busybox)", "(run (shell \"make\"))"
  spec::Position pos;       // the op (or from) in the spec file
  std::string encoding;     // the exact csexp bytes whose SHA-256 is `id`
};

// The build context ops see within one stage. Every stage (child builds too)
// starts from these defaults; the image's env is deliberately absent.
struct StageContext {
  std::string workdir = "/";
  spec::User user = spec::kRootUser;
  std::vector<std::string> shell = {"/bin/sh", "-c"};
  std::map<std::string, std::string> env;  // set by (env K V); the last value wins

  // Applies comment, workdir, user, env and shell ops; run and copy leave the
  // context unchanged.
  void apply(const spec::OpKind& op);
};

// The workdir after (workdir PATH): an absolute PATH replaces `current`, a
// relative one is joined onto it. Empty and "." components are dropped; ".."
// is kept (it may cross a symlink in the image, so only the kernel resolves it).
std::string resolve_workdir(std::string_view current, std::string_view path);

// A copy's destination: a relative `dst` is resolved against `workdir`, with
// the same normalisation as resolve_workdir. A trailing '/' is kept, because
// it means "copy into this directory" rather than "copy as this name".
std::string resolve_destination(std::string_view workdir, std::string_view dst);

// (kiln-step-v1 from IMAGE)
std::string encode_from_step(std::string_view image);

// (kiln-step-v1 run (parent P) (workdir W) (user ...) (env (K V)...)
//  (shell ARG...) (network NET...) (secrets (ID TARGET)...) (cmd CMD))
std::string encode_run_step(std::string_view parent, const StageContext& context, const spec::Run& run);

// One copied source: its normalised path and, for a copy from the build
// context, the digest of its manifest ("" for a copy from a build stage).
struct CopySource {
  std::string path;
  std::string manifest_digest;
};

// (kiln-step-v1 copy (parent P) (user ...) (dst D) (from context | (build ID))
//  (exclude E...) (sources ...)). `from_build_id` is "" for a context copy.
std::string encode_copy_step(std::string_view parent, const StageContext& context, const spec::Copy& copy,
                             std::string_view from_build_id, const std::vector<CopySource>& sources);

// Lowercase hex SHA-256 of an encoding.
std::string step_id_of(std::string_view encoding);

// Every step of `spec`: child builds first (depth-first, in order, each with
// the scope the spec language gives it: enclosing stages' and earlier
// siblings' builds), then the main stage; steps.back() is the final result.
// `context` may be null when the spec never copies from the build context.
// Errors name "FILE:LINE:COL" of the op (FILE is `filename`) and what to do.
Result<std::vector<Step>> compute_step_ids(const spec::Spec& spec, ContextSource* context,
                                           std::string_view filename = "");

}  // namespace kiln::ids
