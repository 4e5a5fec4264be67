// The local builder: runs a build spec step by step on a snapshot store, a
// sandbox and an image fetcher, reusing every step whose id the store already
// holds (DESIGN.md, "The local builder"; OBuilder's BUILDER signature).
//
//   auto store = store::open_store("overlayfs:/var/cache/kiln");
//   auto sandbox = sandbox::RuncSandbox::create({.state_dir = "/var/lib/kiln/sandbox"});
//   auto fetcher = fetcher::make_fetcher();
//   Builder builder(**store, **sandbox, *fetcher,
//                   {.image_aliases = {{"busybox", "oci:/var/lib/kiln/images/busybox:latest"}}});
//   KILN_ASSIGN_OR_RETURN(auto ctx, ids::DirectoryContext::open("."));
//   CancelToken cancel;
//   KILN_ASSIGN_OR_RETURN(std::string id,
//       builder.build({.spec = spec, .context = &ctx, .context_dir = ".",
//                      .log = [](LogTag, std::string_view text) { std::cout << text; },
//                      .cancel = &cancel}));
//
// Step ids are exactly those ids::compute_step_ids gives (docs/step-ids.md):
// the builder walks the spec with ids::StageContext and the same encoders.
// For each step: if the store holds its id, the step's saved log is replayed
// and "---> using ID from cache" is noted; otherwise the step runs inside
// store.build() and "---> saved as ID" is noted. A failed step records
// nothing; its error carries the command's exit status and the last lines of
// its log.
//   from   the base image is fetched into `<dir>/rootfs` (image names in
//          `image_aliases` are replaced by their reference for fetching only;
//          the id uses the spec's text) and its config is saved as
//          `<dir>/image.json`. The fetch's byte counts are shown live, not
//          saved with the step's log (a cached step replays its log only).
//   run    sandbox.run(shell + [cmd]) with the stage's workdir, user (a
//          (name N) looked up in the rootfs's /etc/passwd), the environment
//          of step_environment.h (docker's PATH, HOSTNAME and HOME defaults,
//          the image's env, the spec's (env ...)), network; caches from
//          store.cache(user, name), released after the
//          run whatever happens; secrets from the request (never in ids,
//          snapshots or logs).
//   copy   copy_files.h, from the context directory or a build stage's rootfs.
//
// Concurrency: build() may be called from many threads. A step is built
// once however many builds ask for it at the same time: the first request
// starts it on a thread of its own, every requester follows the same log
// (everything so far, then live) and waits; the step is cancelled only when
// its last requester cancels. Results a running build uses (its bases, the
// stages it copies from, every step it has reached) are never pruned.
// Store, sandbox and fetcher must outlive the Builder. finish() waits for
// running steps; the destructor cancels them first, then finishes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/ids/manifest.h"
#include "common/spec/spec.h"
#include "worker/builder/base_images.h"
#include "worker/builder/build_log.h"
#include "worker/builder/disk_space.h"
#include "worker/builder/step_files.h"
#include "worker/fetcher/fetcher.h"
#include "worker/sandbox/sandbox.h"
#include "worker/store/store.h"

namespace kiln::builder {

struct BuilderOptions {
  // `(from NAME)` -> the reference fetched for it ("busybox" ->
  // "oci:/var/lib/kiln/images/busybox:latest"). Names not listed are fetched as written.
  std::map<std::string, std::string> image_aliases;
  // The image healthcheck() builds on (a name in image_aliases or a reference).
  std::string healthcheck_image = "busybox";
  // Lines of the log quoted in a failed step's error.
  std::size_t error_log_lines = 10;
  // Optional per-step sandbox limits and timeout, applied to every run step.
  sandbox::Limits limits;
  std::optional<std::chrono::milliseconds> step_timeout;
  // Where (from …) steps remember which result unpacked which image manifest
  // (base_images.h), so that a new reference naming an image unpacked before
  // (a new tag) is a snapshot of that result, not a second unpack. Empty: off.
  std::string unpacked_images_dir;
  // Where copy steps write (step_files.h); unset: the workspace's rootfs
  // (the snapshot stores). The docker store needs make_docker_step_files.
  std::shared_ptr<StepFiles> step_files;
};

// One step of a build reached: served from the cache or just built. For
// progress reports (the worker daemon's job-step messages).
struct StepEvent {
  std::string id;
  std::string description;  // the op as the step's log heading prints it: "/app: (run (shell make))"
  bool cached = false;      // true: not built by this request (the store held the result, or it shared
                            // a build of the same step in progress)
  double seconds = 0;       // from reaching the step to having its result
  // (from …) steps: what the base image resolved to, from the result's
  // image.json — REGISTRY/REPO@sha256:… for registry images, else the
  // manifest digest; empty for other steps or when it is not recorded.
  std::string image;
};

struct BuildRequest {
  spec::Spec spec;
  std::string spec_name;  // for messages ("app.spec"); may be empty
  // Manifests of context copies. When null and context_dir is set, a
  // DirectoryContext on context_dir is used.
  ids::ContextSource* context = nullptr;
  // Where the files of context copies are read from.
  std::string context_dir;
  std::map<std::string, std::string> secrets;  // secret id -> value
  LogSink log;                                 // may be empty
  CancelToken* cancel = nullptr;               // may be null: not cancellable
  // When registries are asked for the base images' tags (`kiln submit
  // --pull`); unset: the fetcher's own policy. A (from …) step another
  // request is already fetching is shared with the policy it started with.
  std::optional<fetcher::PullPolicy> pull;
  // Called once per step (every stage's `from` and each run and copy), in
  // order, as each is reached from the cache or finishes building; on the
  // thread that called build(). May be empty. A failed or cancelled step is
  // not reported.
  std::function<void(const StepEvent&)> on_step;
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
};

// Called with each id just before it is deleted (for display).
using DeleteLog = std::function<void(const std::string& id)>;

// What one prune() call removed and kept, for its caller's log.
struct PruneReport {
  std::size_t removed = 0;
  // The removed results' sizes, as measured in the background after each
  // was built (a result not measured yet counts 0).
  std::uint64_t bytes = 0;
  // When the least and the most recently used of the removed results were
  // last used; unset when none was removed.
  std::optional<std::chrono::system_clock::time_point> oldest_last_used, newest_last_used;
  // Leaves old enough to go that a running build uses, left in place.
  std::size_t kept_in_use = 0;
};

class Builder {
 public:
  Builder(store::Store& store, sandbox::Sandbox& sandbox, fetcher::Fetcher& fetcher,
          BuilderOptions options = {});
  ~Builder();
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  // Builds the spec; returns the id of the main stage's last step.
  // Errors: the failed step's (exit status and log tail, kFailedPrecondition),
  // kCancelled when request.cancel fired, kInvalidArgument for spec and
  // context problems (missing secret, bad copy), and the store's, sandbox's
  // and fetcher's own.
  Result<std::string> build(const BuildRequest& request);

  // Removes `id` and every result built on it (leaves first). Not safe while
  // builds use them (as OBuilder's delete: for tests and admins).
  Status delete_result(const std::string& id, const DeleteLog& log = {});

  // Removes up to `limit` results that have no children and were last used
  // before `before`, oldest first, repeating as parents become leaves; never
  // one a running build uses, and never one used at or after `before` (so
  // a caller keeps results younger than a minimum age by passing now - age).
  // Returns how many were removed; `report`, when given, receives what was
  // removed and kept (filled in on errors too, up to the failure).
  Result<std::size_t> prune(std::chrono::system_clock::time_point before, std::size_t limit,
                            const DeleteLog& log = {}, PruneReport* report = nullptr);

  // How many results the store holds (OBuilder's `count`).
  Result<std::uint64_t> count();
  // Percent of free space on the store's filesystem (OBuilder's `df`).
  Result<double> df();
  // Cache hits and misses since the store was created (OBuilder's `cache_stats`).
  Result<CacheStats> cache_stats();

  // kiln additions, so that a caller (the worker daemon) needs the Builder
  // only, never the store behind it. Each is safe while builds run.
  // The directory the store lives in (OBuilder's `root`).
  const std::string& root() const;
  // Free and total bytes of the store's filesystem (df() in bytes). kIo when
  // it cannot be measured.
  Result<DiskSpace> disk_space() const;
  // Every result id the store holds (64 hex characters each), sorted: the
  // worker's cache inventory for the scheduler.
  Result<std::vector<std::string>> list_results();
  // The summed size of every result, each as measured in the background
  // just after it was built (a result not measured yet counts 0). Reads the
  // metadata of every result: call it now and then, not per request. A
  // result whose metadata cannot be read is left out.
  Result<std::uint64_t> total_size();
  // Waits for deletes the store still runs in the background (after
  // prune() or delete_result()), so that disk_space() and df() see the
  // space they freed.
  Status complete_deletes();

  // Builds `((from HEALTHCHECK_IMAGE) (run (shell "echo healthcheck")))` and
  // deletes the run's result again. The timeout covers the run, not fetching
  // the base image. kTimeout when it passes.
  Status healthcheck(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Waits for running steps to end and for the store's deletes to complete;
  // later builds fail. Idempotent.
  Status finish();

  // Ids running builds currently protect from prune (for tests and `kiln stats`).
  std::vector<std::string> ids_in_use() const;

 private:
  struct Step;
  struct InFlight;
  class RequestScope;

  Result<std::string> build_stage(RequestScope& scope, const spec::Spec& stage, const std::string& stage_path,
                                  std::map<std::string, std::string> build_scope);
  // Makes sure result `step.id` exists: a cache hit, joining an identical
  // step already running, or running it.
  Status ensure(RequestScope& scope, std::shared_ptr<Step> step);
  // Where copy steps write: options_.step_files, or the rootfs.
  StepFiles& step_files();
  // Waits for `op` to end; `handle` is the requester's log subscription,
  // which it ends.
  Status follow(RequestScope& scope, const std::shared_ptr<InFlight>& op, std::uint64_t handle);
  void run_in_flight(std::shared_ptr<InFlight> op);

  Result<std::vector<std::pair<std::string, std::string>>> image_env(const std::string& from_id);
  // What the base image of the (from …) result `from_id` resolved to (StepEvent::image).
  std::string resolved_image(const std::string& from_id);
  // For the (from …) step `id` of `reference`: when the fetcher can say which
  // manifest the reference names now and an earlier result in the store
  // unpacked it, that result (pinned) and the fill that writes this step's
  // image.json; nullopt: fetch as usual. Errors: the fetcher's (a tag that
  // cannot be resolved fails the step at once). `resolved_out`: what the
  // fetcher resolved (FetchOptions::resolved for the fetch that follows when
  // nothing is reused). In base_images.cc.
  Result<std::optional<ImageReuse>> reuse_unpacked(const std::string& id, const std::string& reference,
                                                   std::optional<fetcher::PullPolicy> pull, BuildLog& log,
                                                   CancelToken& cancel, std::string& resolved_out);

  void pin(const std::string& id);
  void unpin(const std::string& id);

  store::Store& store_;
  sandbox::Sandbox& sandbox_;
  fetcher::Fetcher& fetcher_;
  BuilderOptions options_;
  UnpackedImages unpacked_;

  mutable std::mutex mu_;  // in_flight_, running_threads_, finished_
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_;
  int running_threads_ = 0;
  bool finished_ = false;

  mutable std::mutex pins_mu_;  // held while prune checks and deletes a leaf
  std::multiset<std::string> pinned_;
};

}  // namespace kiln::builder
