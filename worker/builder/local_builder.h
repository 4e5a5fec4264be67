// The local builder assembled from flags: a store, a sandbox and an image
// fetcher, and the Builder running on them, owned together and destroyed in
// the right order (the builder first, the store last). `kiln build` and its
// admin commands and `kiln-worker` set up their builder from the same flags
// (docs/builder.md, docs/worker.md); this is the one place that reads them.
//
//   LocalBuilderOptions options;
//   options.home = kiln_home();            // kiln-worker: its state directory
//   options.store = flags.store;           // "" -> overlayfs:HOME/store
//   options.image_aliases = flags.image_aliases;
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<LocalBuilder> local, LocalBuilder::open(options));
//   KILN_ASSIGN_OR_RETURN(std::string id, local->builder().build(request));
//
// Contract: open() checks every flag value before it touches anything
// (kInvalidArgument naming the flag: --rsync-mode, --oci-runtime,
// --image-alias, --memory, --userns, --pull, --registry-ca, --registry-mirror, also --userns with an
// overlayfs store), then opens the store (kIo when its default directory cannot be made; the store's own
// errors with "opening store SPEC"), then the sandbox (RuncSandbox::create's errors: kUnavailable without
// runc, kBusy when another process owns HOME/sandbox; with sandbox_at_first_step the first step that runs
// returns them instead). The store and the sandbox's state directory are single-owner: one LocalBuilder per
// HOME at a time. Thread safety: builder() is as thread-safe as Builder
// (build() from many threads); open() and destruction from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/context/result_tar.h"
#include "common/error.h"
#include "worker/builder/builder.h"
#include "worker/fetcher/fetcher.h"
#include "worker/sandbox/runc_sandbox.h"
#include "worker/store/store.h"

namespace kiln::builder {

// The flag values, as the user wrote them (parsed by open()).
struct LocalBuilderOptions {
  // Where the default store (HOME/store) and the sandbox's state
  // (HOME/sandbox) live: `kiln` passes KILN_HOME (kiln::kiln_home()),
  // kiln-worker its state directory. Required.
  std::string home;
  // --store: "overlayfs:DIR", "btrfs:DIR", "xfs:DIR", "rsync:DIR" or
  // "docker[:PREFIX]" (HOME/docker-PREFIX, and the docker sandbox and
  // fetcher: docs/store.md). Empty: overlayfs:HOME/store, its directory
  // created if missing.
  std::string store;
  // --docker-host: the dockerd of a docker store.
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string rsync_mode = "copy";  // --rsync-mode: copy or hardlink
  // false: no sandbox is set up (one that refuses to run anything stands in)
  // for commands that only count, delete or prune results (`kiln prune`,
  // `kiln df`): they need neither runc nor the sandbox's state directory.
  bool run_steps = true;
  // true: the sandbox is set up when the first step runs, not by open(), so
  // a fully cached `kiln build` starts no runtime process (on the docker
  // store: no watchdog) and mounts nothing
  // (a missing runc is then reported by that first step). kiln-worker sets
  // it up at once: a daemon should fail at start and clean a crashed
  // predecessor's leftovers before taking jobs.
  bool sandbox_at_first_step = false;
  // How the store is opened (store::StoreOpenMode): `kiln` opens it
  // read-only until the first change, so a fully cached build writes and
  // syncs nothing; kiln-worker (the default) writable at once.
  store::StoreOpenMode store_open_mode = store::StoreOpenMode::kReadWrite;
  // Called once the sandbox is set up, with what it removed of an earlier
  // owner's steps (`kiln build` prints it when it removed anything).
  std::function<void(const sandbox::LeftoverReport&)> on_sandbox_ready;
  std::string oci_runtime = "runc";        // --oci-runtime: runc or crun
  std::vector<std::string> image_aliases;  // --image-alias NAME=REF; the busybox default is added
                                           // (kiln::image_aliases)
  std::string memory;                      // --memory per run step ("512M"); empty or "none": unlimited
  std::uint32_t pids = 0;                  // --pids per run step; 0: unlimited
  double cpus = 0;                         // --cpus per run step (1.5); 0: unlimited
  double step_timeout_seconds = 0;         // --step-timeout; 0: none
  // --userns: nullopt: steps run as host root; "": in a user namespace with
  // the default range (sandbox::kDefaultUserNamespace); "HOST_FIRST:COUNT".
  // Needs a store the kernel can idmap (not overlayfs: open() refuses it).
  std::optional<std::string> userns;
  // Registry pulls (docs/images.md): --insecure-registry HOST:PORT (repeatable),
  // --registry-ca FILE, --pull always|missing|never. Blobs are cached in
  // HOME/image-cache.
  std::vector<std::string> insecure_registries;
  std::string registry_ca;
  // --registry-mirror URL (repeatable): mirrors of docker.io, asked first.
  std::vector<std::string> registry_mirrors;
  std::string pull = "missing";
  // Log with spdlog what setting up found: the store's recovery report when
  // it repaired anything, and each image alias (kiln-worker's log; `kiln`
  // leaves this off).
  bool log_setup = false;
};

// kiln-worker's per-step limits when its flags set none (docs/worker.md,
// "Step limits"): half of the host's RAM and 4096 processes.
sandbox::Limits default_worker_step_limits();

class LocalBuilder {
 public:
  static Result<std::unique_ptr<LocalBuilder>> open(const LocalBuilderOptions& options);
  ~LocalBuilder();
  LocalBuilder(const LocalBuilder&) = delete;
  LocalBuilder& operator=(const LocalBuilder&) = delete;

  Builder& builder() { return *builder_; }
  // For what the Builder does not offer (`kiln delete` checks a result exists).
  store::Store& store() { return *store_; }
  // Whether a runc/crun sandbox is set up (false with run_steps false, and
  // with sandbox_at_first_step until a step has run).
  bool sandbox_ready() const;
  // The store opened ("overlayfs:/abs/home/store" by default).
  const std::string& store_spec() const { return store_spec_; }
  // The image aliases, limits and step timeout the builder was given.
  const BuilderOptions& builder_options() const { return builder_options_; }
  // The registry fetcher's blob cache, HOME/image-cache (fetcher/image_cache.h
  // measures and prunes it).
  const std::string& image_cache_dir() const { return image_cache_dir_; }

  // The tar of `src` (a path in result `id`'s filesystem) that `--output`
  // carries (context/result_tar.h, same rules and errors): written from the
  // result's rootfs, or on the docker store from a copy of `src` read out of
  // the result's image (GET /archive) into a private directory below
  // HOME/tmp, removed before returning. Thread safety: calls may run at once.
  Result<context::ResultTar> write_result_tar(const std::string& id, const std::string& src,
                                              const context::TarSink& sink, std::uint64_t max_bytes);

 private:
  LocalBuilder() = default;

  std::string store_spec_;
  std::string image_cache_dir_;
  std::string tmp_dir_;  // HOME/tmp
  BuilderOptions builder_options_;
  // Declared in construction order: destroyed builder first, store last.
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<sandbox::Sandbox> sandbox_;
  std::unique_ptr<fetcher::Fetcher> fetcher_;
  std::unique_ptr<Builder> builder_;
};

}  // namespace kiln::builder
