#include "worker/builder/local_builder.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/fs.h"
#include "worker/docker/docker_fetcher.h"
#include "worker/docker/docker_sandbox.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::builder {
namespace {

// Stands in for runc where no step runs (deleting, pruning, counting), so
// those commands work without root's runtime state.
class NoSandbox final : public sandbox::Sandbox {
 public:
  Status run(const sandbox::RunSpec&, const std::string&, const sandbox::OutputSink&, CancelToken&) override {
    return make_error(ErrorKind::kInternal, "this command runs no steps");
  }
};

// The runc/crun sandbox, set up by create() at once or by the first run().
class RuntimeSandbox final : public sandbox::Sandbox {
 public:
  RuntimeSandbox(sandbox::RuncSandboxOptions options,
                 std::function<void(const sandbox::LeftoverReport&)> on_ready)
      : options_(std::move(options)), on_ready_(std::move(on_ready)) {}

  Status set_up() {
    std::lock_guard lock(mu_);
    return set_up_locked();
  }
  bool ready() const {
    std::lock_guard lock(mu_);
    return runc_ != nullptr;
  }
  Status run(const sandbox::RunSpec& spec, const std::string& rootfs, const sandbox::OutputSink& on_output,
             CancelToken& cancel) override {
    sandbox::Sandbox* runc = nullptr;
    {
      std::lock_guard lock(mu_);
      KILN_RETURN_IF_ERROR(set_up_locked());
      runc = runc_.get();
    }
    return runc->run(spec, rootfs, on_output, cancel);
  }

 private:
  Status set_up_locked() {
    if (runc_) return {};
    KILN_ASSIGN_OR_RETURN(runc_, sandbox::RuncSandbox::create(options_));
    if (on_ready_) on_ready_(runc_->leftovers());
    return {};
  }

  const sandbox::RuncSandboxOptions options_;
  const std::function<void(const sandbox::LeftoverReport&)> on_ready_;
  mutable std::mutex mu_;
  std::unique_ptr<sandbox::RuncSandbox> runc_;  // set once, then never changed
};

// The docker sandbox, set up by set_up() at once or by the first step, so
// that a fully cached `kiln build` starts no watchdog and never waits for
// another process's (DockerSandbox: one owner of its state at a time).
class LazyDockerSandbox final : public sandbox::Sandbox {
 public:
  explicit LazyDockerSandbox(docker::DockerSandboxOptions options) : options_(std::move(options)) {}

  Status set_up() {
    std::lock_guard lock(mu_);
    if (docker_) return {};
    KILN_ASSIGN_OR_RETURN(docker_, docker::DockerSandbox::create(options_));
    return {};
  }
  Status run(const sandbox::RunSpec& spec, const std::string& rootfs, const sandbox::OutputSink& on_output,
             CancelToken& cancel) override {
    KILN_RETURN_IF_ERROR(set_up());
    return docker_->run(spec, rootfs, on_output, cancel);
  }
  Status run_in(const sandbox::RunSpec& spec, const store::Workspace& ws,
                const sandbox::OutputSink& on_output, CancelToken& cancel) override {
    KILN_RETURN_IF_ERROR(set_up());
    return docker_->run_in(spec, ws, on_output, cancel);
  }

 private:
  const docker::DockerSandboxOptions options_;
  std::mutex mu_;
  std::unique_ptr<docker::DockerSandbox> docker_;  // set once (under mu_), then never changed
};

Result<BuilderOptions> parse_builder_options(const LocalBuilderOptions& flags) {
  BuilderOptions options;
  KILN_ASSIGN_OR_RETURN(options.image_aliases, kiln::image_aliases(flags.image_aliases));
  if (!flags.memory.empty() && flags.memory != "none") {
    KILN_ASSIGN_OR_RETURN(options.limits.memory_bytes, kiln::parse_byte_size("--memory", flags.memory));
  }
  if (flags.pids > 0) options.limits.pids = flags.pids;
  if (flags.cpus > 0) options.limits.cpu_millicores = static_cast<std::uint32_t>(flags.cpus * 1000);
  if (flags.step_timeout_seconds > 0)
    options.step_timeout = std::chrono::milliseconds(static_cast<long>(flags.step_timeout_seconds * 1000));
  return options;
}

constexpr std::uint32_t kDefaultWorkerPids = 4096;

bool is_docker_store(const std::string& store) {
  return store == "docker" || store.starts_with("docker:");
}

}  // namespace

sandbox::Limits default_worker_step_limits() {
  sandbox::Limits limits;
  long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) limits.memory_bytes = static_cast<std::uint64_t>(pages) * page_size / 2;
  limits.pids = kDefaultWorkerPids;
  return limits;
}

Result<std::unique_ptr<LocalBuilder>> LocalBuilder::open(const LocalBuilderOptions& options) {
  if (options.home.empty())
    return make_error(ErrorKind::kInvalidArgument, "the local builder needs a home directory");
  // Every flag first, so that a typo changes nothing on disk.
  store::StoreOptions store_options;
  KILN_ASSIGN_OR_RETURN(store_options.rsync_mode, store::parse_rsync_mode(options.rsync_mode));
  const bool docker = is_docker_store(options.store);
  store_options.docker_host = options.docker_host;
  store_options.home = options.home;
  store_options.open_mode = options.store_open_mode;
  sandbox::RuncSandboxOptions sandbox_options;
  sandbox_options.state_dir = options.home + "/sandbox";
  if (options.run_steps) {
    KILN_ASSIGN_OR_RETURN(sandbox_options.runtime, sandbox::parse_oci_runtime(options.oci_runtime));
    if (options.userns && docker)
      return make_error(
          ErrorKind::kInvalidArgument,
          "--userns does not apply to --store docker: dockerd runs the steps (use dockerd's own "
          "--userns-remap)");
    if (options.userns) {
      KILN_ASSIGN_OR_RETURN(sandbox_options.oci.user_namespace, sandbox::parse_id_range(*options.userns));
      // Fail now rather than at the first step (RuncSandbox says the same then).
      if (options.store.empty() || options.store.starts_with("overlayfs:"))
        return make_error(
            ErrorKind::kInvalidArgument,
            "--userns needs a store the kernel can idmap: --store btrfs:DIR, xfs:DIR or rsync:DIR "
            "(overlayfs mounts, the default store's, cannot be idmapped)");
    }
  }
  fetcher::RegistryOptions registry;
  KILN_ASSIGN_OR_RETURN(registry.pull, fetcher::parse_pull_policy(options.pull));
  if (!options.registry_ca.empty() && !std::filesystem::is_regular_file(options.registry_ca))
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("--registry-ca {}: no such file (a PEM file of CA certificates)", options.registry_ca));
  registry.ca_file = options.registry_ca;
  registry.insecure_registries = options.insecure_registries;
  for (const std::string& url : options.registry_mirrors) {
    KILN_ASSIGN_OR_RETURN(fetcher::RegistryMirror mirror, fetcher::parse_registry_mirror(url));
    registry.mirrors[std::string(fetcher::kDefaultRegistry)].push_back(mirror.url);
  }
  registry.cache_dir = options.home + "/image-cache";
  std::unique_ptr<LocalBuilder> local(new LocalBuilder());
  KILN_ASSIGN_OR_RETURN(local->builder_options_, parse_builder_options(options));

  local->image_cache_dir_ = registry.cache_dir;
  local->tmp_dir_ = options.home + "/tmp";
  local->builder_options_.unpacked_images_dir = options.home + "/unpacked-images";
  local->store_spec_ = options.store.empty() ? "overlayfs:" + options.home + "/store" : options.store;
  if (options.store.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.home + "/store", ec);
    if (ec)
      return make_error(ErrorKind::kIo,
                        fmt::format("cannot create {}/store: {}", options.home, ec.message()));
  }
  KILN_ASSIGN_OR_RETURN(local->store_, with_context(store::open_store(local->store_spec_, store_options),
                                                    "opening store " + local->store_spec_));
  if (options.log_setup && local->store_->recovery_report().repaired_anything())
    spdlog::info("store {}: {}", local->store_spec_, local->store_->recovery_report().to_string());

  if (docker) {
    // The docker store's steps run and fetch through dockerd: the three must match.
    std::string prefix = options.store == "docker" ? "kiln" : options.store.substr(7);
    if (options.run_steps) {
      auto docker_sandbox = std::make_unique<LazyDockerSandbox>(
          docker::DockerSandboxOptions{.host = options.docker_host,
                                       .prefix = prefix,
                                       .secrets_dir = options.home + "/docker-" + prefix + "-secrets",
                                       .state_dir = options.home + "/docker-" + prefix + "-sandbox"});
      if (!options.sandbox_at_first_step) KILN_RETURN_IF_ERROR(docker_sandbox->set_up());
      local->sandbox_ = std::move(docker_sandbox);
    } else {
      local->sandbox_ = std::make_unique<NoSandbox>();
    }
    KILN_ASSIGN_OR_RETURN(
        local->fetcher_,
        docker::make_docker_fetcher(fetcher::make_fetcher(std::move(registry)), options.docker_host, prefix));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<docker::DockerClient> client,
                          docker::DockerClient::create({.host = options.docker_host}));
    local->builder_options_.step_files = make_docker_step_files(std::move(client), prefix);
  } else if (options.run_steps) {
    auto runtime = std::make_unique<RuntimeSandbox>(std::move(sandbox_options), options.on_sandbox_ready);
    if (!options.sandbox_at_first_step) KILN_RETURN_IF_ERROR(runtime->set_up());
    local->sandbox_ = std::move(runtime);
  } else {
    local->sandbox_ = std::make_unique<NoSandbox>();
  }
  if (!local->fetcher_) local->fetcher_ = fetcher::make_fetcher(std::move(registry));
  if (options.log_setup) {
    for (const auto& [name, ref] : local->builder_options_.image_aliases)
      spdlog::info("image alias: (from {}) fetches {}", name, ref);
  }
  local->builder_ =
      std::make_unique<Builder>(*local->store_, *local->sandbox_, *local->fetcher_, local->builder_options_);
  return local;
}

LocalBuilder::~LocalBuilder() = default;

Result<context::ResultTar> LocalBuilder::write_result_tar(const std::string& id, const std::string& src,
                                                          const context::TarSink& sink,
                                                          std::uint64_t max_bytes) {
  KILN_ASSIGN_OR_RETURN(auto dir, store_->result(id));
  if (!dir) return make_error(ErrorKind::kNotFound, fmt::format("result {} disappeared from the store", id));
  if (!builder_options_.step_files) return context::write_result_tar(*dir + "/rootfs", src, sink, max_bytes);
  // The docker store: the result is an image. Only `src` comes out of it;
  // a path that leaves `/` is left for write_result_tar to refuse.
  std::string path = std::filesystem::path("/" + src).lexically_normal().string();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  KILN_RETURN_IF_ERROR(ensure_dirs(tmp_dir_));
  std::string scratch = tmp_dir_ + "/output-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) return errno_error("cannot make a directory in " + tmp_dir_);
  CancelToken never;
  auto tree = builder_options_.step_files->open_tree({.dir = scratch}, id, {path.substr(1)}, never);
  Result<context::ResultTar> tar = tree ? context::write_result_tar(*tree, src, sink, max_bytes)
                                        : std::unexpected(std::move(tree.error()));
  Status removed = remove_tree(scratch);
  if (!removed) spdlog::warn("cannot remove {}: {}", scratch, removed.error().to_string());
  return tar;
}

bool LocalBuilder::sandbox_ready() const {
  const auto* runtime = dynamic_cast<const RuntimeSandbox*>(sandbox_.get());
  return runtime != nullptr && runtime->ready();
}

}  // namespace kiln::builder
