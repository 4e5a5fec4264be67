// kiln-worker: the worker daemon. See `kiln-worker --help` and docs/worker.md.
//
// Sets up the local builder as `kiln build` does (builder::LocalBuilder: an
// overlayfs store, runc, the image fetcher and the busybox alias) and runs a
// Worker with a BuilderExecutor on it (a FakeBuildExecutor with
// --fake-build) until SIGINT or SIGTERM. Exit status: 0 after a clean stop,
// 1 when setting up fails, 2 for bad flags or when the scheduler refuses the
// registration (incompatible protocol), 130 on a second signal.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "common/auth/curve_keys.h"
#include "common/config.h"
#include "common/context/result_tar.h"
#include "common/format.h"
#include "common/log.h"
#include "worker/builder/local_builder.h"
#include "worker/daemon/builder_executor.h"
#include "worker/daemon/fake_build_executor.h"
#include "worker/daemon/worker.h"
#include "worker/pusher/image_pusher.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "worker";
  return name;
}

struct Flags {
  std::string scheduler;
  std::string name;
  std::string key_file;
  std::string scheduler_key_file;
  std::string pool = "linux-x86_64";
  std::uint32_t capacity = 2;
  std::vector<std::string> labels;
  std::string state_dir;
  std::string store;
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string rsync_mode = "copy";
  std::string oci_runtime = "runc";
  std::vector<std::string> image_aliases;
  std::string prune_below = "2G";
  std::string image_cache_max = "10G";
  double prune_min_age_seconds = 600;
  std::string memory;                 // per run step; empty: the default (half the RAM); "none": unlimited
  std::optional<std::uint32_t> pids;  // unset: the default (4096); 0: unlimited
  double cpus = 0;                    // 0: unlimited
  double step_timeout_seconds = 0;    // 0: none
  std::optional<std::string> userns;  // --userns[=HOST_FIRST:COUNT]
  std::vector<std::string> insecure_registries;
  std::string registry_ca;
  std::vector<std::string> registry_mirrors;
  std::string pull = "missing";
  std::optional<double> fake_build;
};

// Waits for SIGINT/SIGTERM on a thread of its own (blocked everywhere else),
// so nothing runs in a signal handler: the first stops the worker, a second
// exits at once.
class StopOnSignal {
 public:
  explicit StopOnSignal(kiln::worker::Worker& worker) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // our own "stop waiting"
    thread_ = std::thread([this, &worker] {
      int signals = 0;
      for (;;) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (sig == SIGUSR1) return;
        if (++signals > 1) {
          std::cerr << "kiln-worker: second signal: exiting at once\n";
          std::_Exit(130);
        }
        spdlog::info("kiln-worker: {} received: stopping (send it again to exit at once)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        worker.stop();
      }
    });
  }
  ~StopOnSignal() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  sigset_t set_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  // Blocked before any thread starts, so every thread inherits the mask and
  // only StopOnSignal's sigwait sees the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A git server hanging up must be an error of that fetch, not the end of the worker.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "kiln-worker: runs the build jobs a kiln-scheduler assigns, with the local builder.\n\n"
      "It connects out to the scheduler's worker port (it never listens), registers under --name,\n"
      "heartbeats with its disk and cache stats, runs up to --capacity jobs at once, streams their\n"
      "logs and steps, and prunes its store when free disk falls below --prune-below-bytes.\n"
      "SIGINT/SIGTERM: cancel running jobs, report them cancelled, exit 0 (twice: exit at once).\n\n"
      "Examples:\n"
      "  kiln-worker --name w1 --capacity 4\n"
      "  kiln-worker --scheduler tcp://10.0.0.5:7801 --label arch=x86_64 --state-dir /var/lib/kiln/w1\n"
      "  kiln-worker --name bench --fake-build --capacity 64     # no builds: for benchmarks",
      "kiln-worker"};
  app.set_version_flag("--version", "kiln-worker 0.1.0");
  Flags flags;
  kiln::LogOptions log_options = kiln::log_options_from_env();
  app.add_option("--scheduler", flags.scheduler,
                 "The scheduler's worker port (default $KILN_SCHEDULER_WORKERS, else tcp://127.0.0.1:7801)");
  app.add_option(
      "--name", flags.name,
      "This worker's name, unique in the farm (default: the name of --key's file, else the host name)");
  app.add_option(
      "--key", flags.key_file,
      "This worker's CurveZMQ key (NAME.key from `kiln keygen`; its public half in the scheduler's "
      "workers/ directory); also KILN_WORKER_KEY");
  app.add_option("--scheduler-key", flags.scheduler_key_file,
                 "The scheduler's public key (its .pub): the only scheduler this worker will talk to; also "
                 "KILN_SCHEDULER_KEY");
  app.add_option("--pool", flags.pool, "The pool this worker serves")->capture_default_str();
  app.add_option("--capacity", flags.capacity, "Jobs run at once")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--label", flags.labels, "KEY=VALUE label jobs can ask for (repeatable)");
  app.add_option("--state-dir", flags.state_dir,
                 "Where the store, sandbox state, contexts, git clones and job directories live "
                 "(default KILN_HOME/worker-NAME; KILN_HOME is $KILN_HOME, else ./.kiln)");
  app.add_option("--store", flags.store,
                 "Snapshot store: overlayfs:DIR, btrfs:DIR, xfs:DIR, rsync:DIR or docker[:PREFIX] (default "
                 "overlayfs:STATE/store)");
  app.add_option("--rsync-mode", flags.rsync_mode, "rsync store: copy or hardlink")->capture_default_str();
  app.add_option("--docker-host", flags.docker_host, "docker store: the dockerd socket (unix://PATH)")
      ->capture_default_str();
  app.add_option("--oci-runtime", flags.oci_runtime, "OCI runtime: runc or crun")->capture_default_str();
  app.add_option("--image-alias", flags.image_aliases,
                 "NAME=REF: fetch REF for (from NAME) (repeatable). Default: busybox=oci:KILN_HOME/images/"
                 "busybox:latest when that image exists");
  app.add_option("--memory", flags.memory,
                 "Memory limit of each run step (512M, 2G, or none); default: half of this host's RAM");
  app.add_option("--pids", flags.pids, "Process limit of each run step (0: none); default 4096");
  app.add_option("--userns", flags.userns,
                 "Run steps in a user namespace: container ids 0.. are host ids HOST_FIRST.. (default "
                 "1000000000:65536); needs a btrfs:, xfs: or rsync: store")
      ->expected(0, 1)
      ->default_str("");
  app.add_option("--cpus", flags.cpus, "CPU limit of each run step in cores (1.5); default none");
  app.add_option("--step-timeout", flags.step_timeout_seconds,
                 "Seconds each run step may take before it is killed; default none");
  app.add_option("--insecure-registry", flags.insecure_registries,
                 "HOST:PORT of a registry spoken to over plain HTTP, without TLS (repeatable)");
  app.add_option("--registry-ca", flags.registry_ca,
                 "PEM file of CA certificates trusted for registries, besides the system's");
  app.add_option("--registry-mirror", flags.registry_mirrors,
                 "https://HOST[:PORT] (or http://) of a mirror of docker.io, asked before it; docker.io "
                 "itself when the mirror fails or lacks the image (repeatable)");
  app.add_option("--pull", flags.pull,
                 "When to ask a registry what a tag names: missing (once per worker; later pulls use the "
                 "image cache), always, or never (image cache only)")
      ->capture_default_str();
  app.add_option("--prune-below-bytes", flags.prune_below,
                 "Prune least recently used results while the store's disk has less free space than this "
                 "(2G, 512M, bytes)")
      ->capture_default_str();
  app.add_option("--image-cache-max-bytes", flags.image_cache_max,
                 "Keep the registry blob cache (STATE/image-cache) under this size, least recently used "
                 "blobs pruned first (10G, 512M, bytes)")
      ->capture_default_str();
  app.add_option("--prune-min-age", flags.prune_min_age_seconds,
                 "Seconds since its last use before a result may be pruned: the results a job has just "
                 "reported stay for the jobs that follow")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--fake-build", flags.fake_build,
                 "Run no builds: each job waits SECONDS (default 0), logs one line, reports one step and "
                 "succeeds with the SHA-256 of its spec (benchmarks and tests)")
      ->expected(0, 1)
      ->default_str("0");
  app.add_option("--log-level", log_options.level,
                 std::string("Log level (") + kiln::kLogLevels + "); default from KILN_LOG_LEVEL, else info")
      ->capture_default_str();
  app.add_flag("--log-json", log_options.json, "Log JSON lines to stderr (also KILN_LOG_JSON=1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (auto s = kiln::init_logging(log_options); !s) {
    std::cerr << "kiln-worker: " << s.error().to_string() << "\n";
    return kExitUsage;
  }

  kiln::worker::WorkerOptions options;
  options.scheduler = flags.scheduler;
  if (options.scheduler.empty()) {
    const char* env = std::getenv("KILN_SCHEDULER_WORKERS");
    options.scheduler = env != nullptr && *env != '\0' ? env : "tcp://127.0.0.1:7801";
  }
  if (options.scheduler.find("://") == std::string::npos) options.scheduler = "tcp://" + options.scheduler;
  auto env_or = [](const std::string& flag, const char* name) {
    if (!flag.empty()) return flag;
    const char* env = std::getenv(name);
    return std::string(env != nullptr ? env : "");
  };
  const std::string key_file = env_or(flags.key_file, "KILN_WORKER_KEY");
  const std::string scheduler_key_file = env_or(flags.scheduler_key_file, "KILN_SCHEDULER_KEY");
  if (key_file.empty() != scheduler_key_file.empty()) {
    std::cerr << "kiln-worker: --key and --scheduler-key go together (this worker's secret key, and the "
                 "scheduler's public key)\n";
    return kExitUsage;
  }
  if (!key_file.empty()) {
    auto mine = kiln::auth::read_secret_key_file(key_file);
    auto theirs = mine ? kiln::auth::read_public_key_file(scheduler_key_file) : kiln::Result<std::string>("");
    if (!mine || !theirs) {
      std::cerr << "kiln-worker: " << (!mine ? mine.error() : theirs.error()).to_string() << "\n";
      return kExitUsage;
    }
    options.curve = {
        .server_public_z85 = *theirs, .public_z85 = mine->public_z85, .secret_z85 = mine->secret_z85};
    options.key_file = key_file;
  }
  // With a key, the key's file name is the worker's name (the only one the scheduler lets it use).
  options.name = !flags.name.empty() ? flags.name
                 : !key_file.empty() ? std::filesystem::path(key_file).stem().string()
                                     : host_name();
  options.pool = flags.pool;
  options.capacity = flags.capacity;
  options.labels = flags.labels;
  for (const std::string& label : flags.labels) {
    if (label.find('=') == std::string::npos || label.front() == '=') {
      std::cerr << fmt::format("kiln-worker: --label {:?}: expected KEY=VALUE, e.g. arch=x86_64\n", label);
      return kExitUsage;
    }
  }
  auto prune_below = kiln::parse_byte_size("--prune-below-bytes", flags.prune_below);
  if (!prune_below) {
    std::cerr << "kiln-worker: " << prune_below.error().to_string() << "\n";
    return kExitUsage;
  }
  auto image_cache_max = kiln::parse_byte_size("--image-cache-max-bytes", flags.image_cache_max);
  if (!image_cache_max) {
    std::cerr << "kiln-worker: " << image_cache_max.error().to_string() << "\n";
    return kExitUsage;
  }
  if (flags.fake_build && *flags.fake_build < 0) {
    std::cerr << "kiln-worker: --fake-build takes a number of seconds >= 0\n";
    return kExitUsage;
  }
  const std::string state_dir = absolute_path(
      flags.state_dir.empty() ? kiln::kiln_home() + "/worker-" + options.name : flags.state_dir);

  std::unique_ptr<kiln::builder::LocalBuilder> local;
  std::unique_ptr<kiln::worker::JobExecutor> executor;
  if (flags.fake_build) {
    executor = std::make_unique<kiln::worker::FakeBuildExecutor>(
        kiln::worker::FakeBuildOptions{.seconds = *flags.fake_build, .state_dir = state_dir});
  } else {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) {
      std::cerr << fmt::format("kiln-worker: cannot create the state directory {}: {}\n", state_dir,
                               ec.message());
      return kExitFailed;
    }
    // Every step gets limits unless the flags say otherwise (docs/worker.md, "Step limits").
    const kiln::sandbox::Limits defaults = kiln::builder::default_worker_step_limits();
    std::string memory = flags.memory;
    if (memory.empty() && defaults.memory_bytes) memory = std::to_string(*defaults.memory_bytes);
    const std::uint32_t pids = flags.pids.value_or(defaults.pids.value_or(0));
    auto made = kiln::builder::LocalBuilder::open({.home = state_dir,
                                                   .store = flags.store,
                                                   .docker_host = flags.docker_host,
                                                   .rsync_mode = flags.rsync_mode,
                                                   .oci_runtime = flags.oci_runtime,
                                                   .image_aliases = flags.image_aliases,
                                                   .memory = memory,
                                                   .pids = pids,
                                                   .cpus = flags.cpus,
                                                   .step_timeout_seconds = flags.step_timeout_seconds,
                                                   .userns = flags.userns,
                                                   .insecure_registries = flags.insecure_registries,
                                                   .registry_ca = flags.registry_ca,
                                                   .registry_mirrors = flags.registry_mirrors,
                                                   .pull = flags.pull,
                                                   .log_setup = true});
    if (!made) {
      std::cerr << "kiln-worker: " << made.error().to_string() << "\n";
      return made.error().kind() == kiln::ErrorKind::kInvalidArgument ? kExitUsage : kExitFailed;
    }
    local = std::move(*made);
    spdlog::info("kiln-worker {}: state in {}, store {}", options.name, state_dir, local->builder().root());
    const kiln::sandbox::Limits& limits = local->builder_options().limits;
    // On the docker store dockerd runs the steps: its own seccomp profile and user mapping.
    const bool on_docker = local->store_spec() == "docker" || local->store_spec().starts_with("docker:");
    spdlog::info(
        "kiln-worker {}: each step: memory {}{}, processes {}{}, cpus {}; {}", options.name,
        limits.memory_bytes ? kiln::human_bytes(*limits.memory_bytes) : "unlimited",
        flags.memory.empty() ? " (default: half of this host's RAM)" : "",
        limits.pids ? std::to_string(*limits.pids) : "unlimited", flags.pids ? "" : " (default)",
        limits.cpu_millicores ? fmt::format("{:.2f}", *limits.cpu_millicores / 1000.0) : "unlimited",
        on_docker ? fmt::format("run by dockerd {} (its seccomp profile and user mapping)", flags.docker_host)
        : flags.userns ? "seccomp profile on; in a user namespace (--userns)"
                       : "seccomp profile on; as host root (no --userns)");
    kiln::worker::BuilderExecutorOptions executor_options{
        .state_dir = state_dir,
        .prune_below_bytes = *prune_below,
        .prune_min_age = std::chrono::seconds(static_cast<long>(flags.prune_min_age_seconds)),
        .image_cache_dir = local->image_cache_dir(),
        .image_cache_max_bytes = *image_cache_max};
    // Pushes log in and trust registries as this worker's pulls do, with the
    // login the job brought (docs/images.md, "Results out").
    executor_options.push =
        [store = &local->store(), state_dir, flags](
            const std::string& id, const kiln::spec::Spec& spec, const std::string& reference,
            const std::string& login,
            const std::function<void(std::string_view)>& note) -> kiln::Result<std::string> {
      kiln::pusher::PushOptions push;
      push.reference = reference;
      push.registry.cache_dir = state_dir + "/image-cache";
      push.registry.insecure_registries = flags.insecure_registries;
      push.registry.ca_file = flags.registry_ca;
      push.tmp_dir = state_dir + "/tmp";
      push.docker_host = flags.docker_host;
      if (auto colon = login.find(':'); colon != std::string::npos)
        push.login = {login.substr(0, colon), login.substr(colon + 1)};
      KILN_ASSIGN_OR_RETURN(kiln::pusher::PushResult pushed,
                            kiln::pusher::push_result(*store, id, spec, push, note));
      return pushed.reference + "@" + pushed.digest;
    };
    executor_options.write_output = [local = local.get()](const std::string& id, const std::string& src,
                                                          const kiln::context::TarSink& sink,
                                                          std::uint64_t max_bytes) {
      return local->write_result_tar(id, src, sink, max_bytes);
    };
    executor = std::make_unique<kiln::worker::BuilderExecutor>(std::move(executor_options), local->builder());
  }

  // Destroyed before `local`: its jobs use the builder.
  kiln::worker::Worker worker(options, std::move(executor));
  kiln::Status status;
  {
    StopOnSignal on_signal(worker);
    status = worker.run();
  }
  if (!status) {
    std::cerr << "kiln-worker: " << status.error().to_string() << "\n";
    return status.error().kind() == kiln::ErrorKind::kFailedPrecondition ||
                   status.error().kind() == kiln::ErrorKind::kPermissionDenied ||
                   status.error().kind() == kiln::ErrorKind::kInvalidArgument
               ? kExitUsage
               : kExitFailed;
  }
  return kExitOk;
}
