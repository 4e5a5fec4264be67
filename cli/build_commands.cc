// `kiln build`, `kiln healthcheck`, `kiln delete`, `kiln prune`, `kiln clean`,
// `kiln df` and `kiln stats`: the local builder (worker/builder/builder.h) on
// this machine, with no scheduler. Everything lives under KILN_HOME ($KILN_HOME,
// else ./.kiln): the store (`overlayfs:KILN_HOME/store` unless --store), the
// sandbox's state (KILN_HOME/sandbox) and the default base image
// (KILN_HOME/images/busybox, made by scripts/make-base-image), which
// `(from busybox)` means when it exists.
#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "cli/build_outputs.h"
#include "cli/commands.h"
#include "cli/secret_flags.h"
#include "common/config.h"
#include "common/format.h"
#include "common/fs.h"
#include "common/ids/manifest.h"
#include "common/spec/spec.h"
#include "worker/builder/builder.h"
#include "worker/builder/local_builder.h"
#include "worker/fetcher/image_cache.h"
#include "worker/store/store.h"

namespace kiln::cli {
namespace {

void report(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

// The flags of the commands that open the store bind straight into the
// LocalBuilder's options (worker/builder/local_builder.h: the one assembly of
// store, sandbox, fetcher and builder, shared with kiln-worker).
void add_store_flags(CLI::App* cmd, builder::LocalBuilderOptions& flags) {
  cmd->add_option(
      "--store", flags.store,
      "Snapshot store: overlayfs:DIR, btrfs:DIR, xfs:DIR, rsync:DIR or docker[:PREFIX] (results as images "
      "PREFIX:<step id> in dockerd; default overlayfs:KILN_HOME/store; KILN_HOME is $KILN_HOME, else "
      "./.kiln)");
  cmd->add_option("--rsync-mode", flags.rsync_mode, "rsync store: copy or hardlink")->capture_default_str();
  cmd->add_option("--docker-host", flags.docker_host, "docker store: the dockerd socket (unix://PATH)")
      ->capture_default_str();
}

// The flags of commands that run steps.
void add_run_flags(CLI::App* cmd, builder::LocalBuilderOptions& flags) {
  cmd->add_option("--oci-runtime", flags.oci_runtime, "OCI runtime: runc or crun")->capture_default_str();
  cmd->add_option("--image-alias", flags.image_aliases,
                  "NAME=REF: fetch REF for (from NAME), e.g. busybox=oci:/abs/dir:latest (repeatable). "
                  "Default: busybox=oci:KILN_HOME/images/busybox:latest when that image exists "
                  "(scripts/make-base-image KILN_HOME/images/busybox makes it)");
  cmd->add_option("--memory", flags.memory, "Memory limit of each run step (512M, 2G); default none");
  cmd->add_option("--pids", flags.pids, "Process limit of each run step; default none");
  cmd->add_option("--cpus", flags.cpus, "CPU limit of each run step in cores (1.5); default none");
  cmd->add_option("--step-timeout", flags.step_timeout_seconds,
                  "Seconds each run step may take before it is killed; default none");
  cmd->add_option("--userns", flags.userns,
                  "Run steps in a user namespace: container ids 0.. are host ids HOST_FIRST.. (default "
                  "1000000000:65536); needs a btrfs:, xfs: or rsync: store")
      ->expected(0, 1)
      ->default_str("");
  cmd->add_option("--insecure-registry", flags.insecure_registries,
                  "HOST:PORT of a registry spoken to over plain HTTP, without TLS (repeatable)");
  cmd->add_option("--registry-ca", flags.registry_ca,
                  "PEM file of CA certificates trusted for registries, besides the system's");
  cmd->add_option("--registry-mirror", flags.registry_mirrors,
                  "https://HOST[:PORT] (or http://) of a mirror of docker.io, asked before it; docker.io "
                  "itself when the mirror fails or lacks the image (repeatable)");
  cmd->add_option("--pull", flags.pull,
                  "When to ask a registry what a tag names: missing (once; later builds use the image cache "
                  "under KILN_HOME/image-cache), always, or never (image cache only)")
      ->capture_default_str();
}

// The local builder under KILN_HOME, from the flags. Commands that run no
// step (`run_steps` false) get no sandbox, so they work without runc.
Result<std::unique_ptr<builder::LocalBuilder>> open_local_builder(builder::LocalBuilderOptions flags,
                                                                  bool run_steps) {
  flags.home = kiln_home();
  flags.run_steps = run_steps;
  // Nothing of runc's is touched until a step runs: a cached build starts no
  // runtime process.
  flags.sandbox_at_first_step = true;
  // Nor is the store's metadata written (nothing synced) until something
  // changes: a cached build or `kiln df` only reads it.
  flags.store_open_mode = store::StoreOpenMode::kReadOnlyUntilWrite;
  flags.on_sandbox_ready = [](const sandbox::LeftoverReport& leftovers) {
    if (leftovers.removed_anything()) std::cerr << "kiln: " << leftovers.to_string() << "\n";
  };
  return builder::LocalBuilder::open(flags);
}

// Turns SIGINT and SIGTERM into a cancel while it lives: a thread waits for
// them (blocked in every other thread, which inherit the mask from here), so
// nothing runs in a signal handler. A second signal exits at once.
class CancelOnSignal {
 public:
  explicit CancelOnSignal(CancelToken& cancel) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // our own "stop waiting"
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this, &cancel] {
      int signals = 0;
      for (;;) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (sig == SIGUSR1) return;
        if (++signals > 1) std::_Exit(130);
        std::cerr << "\nkiln: cancelling the build (press Ctrl-C again to quit at once)\n";
        cancel.cancel();
      }
    });
  }
  ~CancelOnSignal() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;

 private:
  sigset_t set_;
  sigset_t old_;
  std::thread thread_;
};

struct BuildOptions {
  std::string file;
  std::string context;
  std::vector<std::string> secrets;
  std::vector<std::string> outputs;    // --output SRC:DESTDIR
  std::string push;                    // --push REF
  builder::LocalBuilderOptions local;  // --store and the run flags
};

void print_log(builder::LogTag, std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// Adds what to do when a base image cannot be fetched.
void report_build_error(const Error& e) {
  report(e);
  // (from busybox) without the default image is a docker.io pull, which these machines may not reach.
  bool no_default_image = e.to_string().find("docker.io/library/busybox") != std::string::npos;
  if ((e.kind() == ErrorKind::kUnsupported && e.to_string().find("from") != std::string::npos) ||
      no_default_image) {
    std::cerr << fmt::format(
        "kiln: hint: make the default base image with `scripts/make-base-image {}` (then (from busybox) uses "
        "it), or pass --image-alias NAME=oci:/abs/dir:latest\n",
        default_base_image_dir());
  }
}

void run_build(const BuildOptions& o) {
  auto spec = spec::load_spec_file(o.file);
  if (!spec) {
    report(spec.error());
    set_exit(kExitFailed);
    return;
  }
  auto secret_list = read_secret_flags(o.secrets);
  if (!secret_list) {
    report(secret_list.error());
    set_exit(kExitUsage);
    return;
  }
  std::map<std::string, std::string> secrets(secret_list->begin(), secret_list->end());
  if (auto s = check_output_flags(o.outputs); !s) {
    report(s.error());
    set_exit(kExitUsage);
    return;
  }
  auto context = ids::DirectoryContext::open(o.context);
  if (!context) {
    report(context.error());
    set_exit(kExitFailed);
    return;
  }
  CancelToken cancel;
  CancelOnSignal on_signal(cancel);
  auto local = open_local_builder(o.local, /*run_steps=*/true);
  if (!local) {
    report(local.error());
    set_exit(kExitFailed);
    return;
  }
  builder::BuildRequest request;
  request.spec = *spec;
  request.spec_name = o.file;
  request.context = &*context;
  request.context_dir = context->root();
  request.secrets = std::move(secrets);
  request.log = print_log;
  request.cancel = &cancel;
  auto id = (*local)->builder().build(request);
  if (!id) {
    report_build_error(id.error());
    set_exit(id.error().kind() == ErrorKind::kCancelled ? 130 : kExitFailed);
    return;
  }
  std::cout << "Got: " << *id << "\n";
  std::cout.flush();
  if (auto s = write_outputs(**local, *id, o.outputs, kiln_home() + "/tmp", std::cerr); !s) {
    report(s.error());
    set_exit(kExitFailed);
    return;
  }
  if (auto s = push_output((*local)->store(), *id, *spec, o.push, o.local, kiln_home(), std::cerr); !s) {
    report(s.error());
    set_exit(kExitFailed);
    return;
  }
}

struct AdminOptions {
  builder::LocalBuilderOptions local;  // --store (and, for healthcheck, the run flags)
  std::string id;
  std::string before;
  std::size_t limit = std::numeric_limits<std::size_t>::max();
  double timeout_seconds = 30;
};

// "--before": an age ("7d", "12h", "30m", "90s": that long ago) or a UTC
// time ("2026-11-29", "2026-11-29T12:00:00Z").
Result<std::chrono::system_clock::time_point> parse_before(const std::string& text) {
  auto now = std::chrono::system_clock::now();
  if (text.empty()) return now;
  char unit = text.back();
  std::string number = text.substr(0, text.size() - 1);
  if (!number.empty() && number.find_first_not_of("0123456789") == std::string::npos &&
      std::string_view("smhd").find(unit) != std::string_view::npos) {
    long n = std::stol(number);
    long seconds = unit == 's' ? n : unit == 'm' ? n * 60 : unit == 'h' ? n * 3600 : n * 86400;
    return now - std::chrono::seconds(seconds);
  }
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, text.size() > 10 ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d");
  if (in.fail())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("--before {:?}: expected an age (7d, 12h, 30m, 90s) or a UTC time "
                                  "(2026-11-29 or 2026-11-29T12:00:00Z)",
                                  text));
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// Runs `fn` on the local builder, opened without a sandbox (these
// commands run no steps).
template <typename Fn>
void with_local_builder(const AdminOptions& o, Fn fn) {
  auto local = open_local_builder(o.local, /*run_steps=*/false);
  if (!local) {
    report(local.error());
    set_exit(kExitFailed);
    return;
  }
  if (auto s = fn(**local); !s) {
    report(s.error());
    set_exit(kExitFailed);
  }
}

template <typename Fn>
void with_store_builder(const AdminOptions& o, Fn fn) {
  with_local_builder(o, [&](builder::LocalBuilder& local) { return fn(local.builder(), local.store()); });
}

void run_healthcheck(const AdminOptions& o) {
  auto local = open_local_builder(o.local, /*run_steps=*/true);
  if (!local) {
    report(local.error());
    set_exit(kExitFailed);
    return;
  }
  auto timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_seconds * 1000));
  if (auto s = (*local)->builder().healthcheck(timeout); !s) {
    report_build_error(s.error());
    set_exit(kExitFailed);
    return;
  }
  std::cout << "healthy\n";
}

}  // namespace

void add_build_commands(CLI::App& app) {
  auto build = std::make_shared<BuildOptions>();
  auto* build_cmd = app.add_subcommand(
      "build",
      "Build a spec on this machine, reusing every step the store already has; prints the log and `Got: ID`");
  build_cmd->add_option("-f,--file", build->file, "Spec file")->required()->check(CLI::ExistingFile);
  build_cmd->add_option("context", build->context, "Build context directory (what copies read)")
      ->required()
      ->check(CLI::ExistingDirectory);
  build_cmd->add_option("--secret", build->secrets,
                        "ID:FILE: the value of secret ID is FILE's content (repeatable)");
  build_cmd->add_option("--output", build->outputs,
                        "SRC:DESTDIR: copy the file or directory SRC of the result (a path in its "
                        "filesystem) into the directory DESTDIR on this machine (repeatable)");
  build_cmd->add_option("--push", build->push,
                        "REF: push the result as an OCI image to a registry ([HOST[:PORT]/]PATH[:TAG]), "
                        "logging in as pulls do (docker config, --registry-ca, --insecure-registry)");
  add_store_flags(build_cmd, build->local);
  add_run_flags(build_cmd, build->local);
  build_cmd->callback([build] { run_build(*build); });

  auto health = std::make_shared<AdminOptions>();
  auto* health_cmd = app.add_subcommand(
      "healthcheck", "Run a tiny build (echo healthcheck) on the base image to check the store and sandbox");
  add_store_flags(health_cmd, health->local);
  add_run_flags(health_cmd, health->local);
  health_cmd->add_option("--timeout", health->timeout_seconds, "Seconds the check step may take")
      ->capture_default_str();
  health_cmd->callback([health] { run_healthcheck(*health); });

  auto del = std::make_shared<AdminOptions>();
  auto* delete_cmd = app.add_subcommand("delete", "Delete a result and every result built on it");
  delete_cmd->add_option("id", del->id, "Step id")->required();
  add_store_flags(delete_cmd, del->local);
  delete_cmd->callback([del] {
    with_store_builder(*del, [&](builder::Builder& b, store::Store& store) -> Status {
      if (!store.info(del->id))
        return make_error(ErrorKind::kNotFound,
                          fmt::format("no result {} in store {}; `kiln stats` counts what is there", del->id,
                                      store.root()));
      return b.delete_result(del->id, [](const std::string& id) { std::cout << "deleting " << id << "\n"; });
    });
  });

  auto prune = std::make_shared<AdminOptions>();
  auto* prune_cmd = app.add_subcommand(
      "prune", "Delete least-recently-used results that nothing is built on, oldest first");
  prune_cmd->add_option("--before", prune->before,
                        "Only results last used before this: an age (7d, 12h, 30m) or a UTC time "
                        "(2026-11-29T12:00:00Z); default now");
  prune_cmd->add_option("--limit", prune->limit, "Delete at most N results (default: no limit)");
  add_store_flags(prune_cmd, prune->local);
  prune_cmd->callback([prune] {
    with_local_builder(*prune, [&](builder::LocalBuilder& local) -> Status {
      KILN_ASSIGN_OR_RETURN(auto before, parse_before(prune->before));
      KILN_ASSIGN_OR_RETURN(std::size_t n,
                            local.builder().prune(before, prune->limit, [](const std::string& id) {
                              std::cout << "deleting " << id << "\n";
                            }));
      std::cout << "pruned " << n << (n == 1 ? " result\n" : " results\n");
      // Blobs are pulled again when needed: those unused since --before go.
      KILN_ASSIGN_OR_RETURN(fetcher::ImageCachePruneReport blobs,
                            fetcher::prune_image_cache(local.image_cache_dir(), {.used_before = before}));
      std::cout << fmt::format("pruned {} image cache blob{}, {}{}\n", blobs.removed,
                               blobs.removed == 1 ? "" : "s", human_bytes(blobs.bytes),
                               blobs.kept_in_use > 0
                                   ? fmt::format(" ({} in use by a pull kept)", blobs.kept_in_use)
                                   : std::string());
      return {};
    });
  });

  auto clean = std::make_shared<AdminOptions>();
  auto* clean_cmd = app.add_subcommand("clean", "Delete every result in the store (caches are kept)");
  add_store_flags(clean_cmd, clean->local);
  clean_cmd->callback([clean] {
    with_store_builder(*clean, [&](builder::Builder& b, store::Store&) -> Status {
      auto later = std::chrono::system_clock::now() + std::chrono::hours(24);
      KILN_ASSIGN_OR_RETURN(std::size_t n, b.prune(later, std::numeric_limits<std::size_t>::max()));
      std::cout << "deleted " << n << (n == 1 ? " result\n" : " results\n");
      return {};
    });
  });

  auto df = std::make_shared<AdminOptions>();
  auto* df_cmd = app.add_subcommand("df", "Print the percentage of free space where the store is");
  add_store_flags(df_cmd, df->local);
  df_cmd->callback([df] {
    with_local_builder(*df, [&](builder::LocalBuilder& local) -> Status {
      KILN_ASSIGN_OR_RETURN(double free, local.builder().df());
      std::cout << fmt::format("{:.1f}% free in {}\n", free, local.store().root());
      KILN_ASSIGN_OR_RETURN(fetcher::ImageCacheUsage cache,
                            fetcher::image_cache_usage(local.image_cache_dir()));
      std::cout << fmt::format("image cache: {} in {} blob{} ({})\n", human_bytes(cache.bytes), cache.blobs,
                               cache.blobs == 1 ? "" : "s", local.image_cache_dir());
      return {};
    });
  });

  auto stats = std::make_shared<AdminOptions>();
  auto* stats_cmd = app.add_subcommand("stats", "Print the store's result count and cache hits and misses");
  add_store_flags(stats_cmd, stats->local);
  stats_cmd->callback([stats] {
    with_store_builder(*stats, [&](builder::Builder& b, store::Store& store) -> Status {
      KILN_ASSIGN_OR_RETURN(std::uint64_t count, b.count());
      KILN_ASSIGN_OR_RETURN(builder::CacheStats cache, b.cache_stats());
      KILN_ASSIGN_OR_RETURN(double free, b.df());
      std::cout << fmt::format("store:  {}\nresults: {}\ncache hits: {}\ncache misses: {}\nfree: {:.1f}%\n",
                               store.root(), count, cache.hits, cache.misses, free);
      return {};
    });
  });
}

}  // namespace kiln::cli
