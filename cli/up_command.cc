// `kiln up`: a whole local farm in one command — one kiln-scheduler and N
// kiln-worker processes on 127.0.0.1, each with its state under DIR
// (default KILN_HOME/farm) and its log in DIR/NAME.log, with CurveZMQ keys
// made under DIR/keys. It supervises them like a process manager: one that
// dies is said and restarted (after 1 s, doubling to 30 s while it keeps
// dying) and the rest keep running (farm_supervisor.h). In the foreground it
// stays until Ctrl-C or SIGTERM, then stops the workers and the scheduler
// (SIGTERM, SIGKILL after 10 s). With --detach a supervisor process of its
// own does the same (its log: DIR/supervisor.log); `kiln up` returns once
// the farm answers, leaving DIR/farm.json for `kiln down` to stop it.
//
// Binaries: --scheduler-bin/--worker-bin, else next to `kiln`, else in the
// build tree (../scheduler, ../worker/daemon relative to `kiln`), else PATH.
// The base image KILN_HOME/images/busybox is made first when missing (unless
// --fake-build), with scripts/make-base-image from $KILN_SOURCE_DIR or the
// source tree found above the `kiln` executable.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/farm_supervisor.h"
#include "common/auth/curve_keys.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/proto/client.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void report(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

bool is_executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The daemon `name`: `flag` if set, else beside kiln, else in the build
// tree, else on PATH.
Result<std::string> find_binary(const std::string& name, const std::string& build_subdir,
                                const std::string& flag) {
  if (!flag.empty()) {
    if (!is_executable(flag))
      return make_error(ErrorKind::kNotFound, fmt::format("{} {:?} is not an executable file", name, flag));
    return fs::absolute(flag).lexically_normal().string();
  }
  // kiln-local is in PREFIX/libexec/kiln when installed, in build/cli/ in a build tree.
  std::string dir = executable_dir();
  std::vector<std::string> tried = {
      fs::path(dir + "/" + KILN_BIN_FROM_LIBEXEC + "/" + name).lexically_normal().string(),
      fs::path(dir + "/../" + build_subdir + "/" + name).lexically_normal().string()};
  for (const std::string& candidate : tried)
    if (is_executable(candidate)) return fs::path(candidate).lexically_normal().string();
  if (const char* path = std::getenv("PATH"))
    for (const auto& part : std::views::split(std::string_view(path), ':')) {
      std::string candidate = std::string(part.begin(), part.end()) + "/" + name;
      if (is_executable(candidate)) return candidate;
    }
  return make_error(
      ErrorKind::kNotFound,
      fmt::format("cannot find {} (looked in {}, {} and PATH); build it (scripts/build) or pass "
                  "--{}-bin PATH",
                  name, tried[0], tried[1], name == "kiln-scheduler" ? "scheduler" : "worker"));
}

// The base-image maker: installed beside kiln-local (PREFIX/libexec/kiln,
// from `cmake --install`), else KILN_SOURCE_DIR's, else a source tree above.
Result<std::string> find_make_base_image() {
  const std::string installed = executable_dir() + "/make-base-image";
  if (is_executable(installed)) return installed;
  const char* source = std::getenv("KILN_SOURCE_DIR");
  if (source != nullptr && *source != '\0') {
    std::string script = std::string(source) + "/scripts/make-base-image";
    if (is_executable(script)) return script;
  }
  for (fs::path dir = executable_dir(); !dir.empty(); dir = dir.parent_path()) {
    std::string script = (dir / "scripts/make-base-image").string();
    if (is_executable(script)) return script;
    if (dir == dir.parent_path()) break;
  }
  return make_error(ErrorKind::kNotFound,
                    "cannot find make-base-image (installed as PREFIX/libexec/kiln/make-base-image, or "
                    "scripts/ of a source "
                    "tree: set KILN_SOURCE_DIR), or pass "
                    "--fake-build to run workers that build nothing");
}

struct UpOptions {
  int workers = 2;
  std::string dir;
  std::uint32_t capacity = 0;
  bool fake_build = false;
  bool detach = false;
  int port = 7800;
  std::string http;
  std::string placement;
  std::string scheduler_bin;
  std::string worker_bin;
  double wait_seconds = 60;
};

std::string farm_dir(const std::string& flag) {
  std::string dir = flag.empty() ? kiln_home() + "/farm" : flag;
  std::error_code ec;
  auto absolute = fs::absolute(dir, ec);
  return ec ? dir : absolute.lexically_normal().string();
}

// Waits until the scheduler answers and lists every one of `names` as
// connected, while all daemons live. kUnavailable on timeout, kFailedPrecondition
// naming a daemon that died.
// The farm's CurveZMQ keys, made once and kept with the farm: DIR/keys holds
// scheduler.key, admin.key (the user's: what `kiln` uses by default) and a
// key per worker; DIR/auth is the scheduler's --auth-dir (the public keys
// of the admin and the workers).
Status make_farm_keys(const std::string& dir, const std::set<std::string>& workers) {
  const std::string keys = dir + "/keys";
  auto ensure = [&](const std::string& name, const char* role_dir) -> Status {
    std::error_code ec;
    if (!fs::exists(keys + "/" + name + ".key", ec)) {
      KILN_ASSIGN_OR_RETURN(auth::CurveKeyPair pair, auth::generate_curve_key_pair());
      KILN_RETURN_IF_ERROR(auth::write_key_files(pair, keys, name));
    }
    if (role_dir == nullptr) return {};
    const std::string role = dir + "/auth/" + role_dir;
    fs::create_directories(role, ec);
    if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot create {}: {}", role, ec.message()));
    fs::copy_file(keys + "/" + name + ".pub", role + "/" + name + ".pub",
                  fs::copy_options::overwrite_existing, ec);
    if (ec)
      return make_error(ErrorKind::kIo,
                        fmt::format("cannot copy {}.pub into {}: {}", name, role, ec.message()));
    return {};
  };
  KILN_RETURN_IF_ERROR(ensure("scheduler", nullptr));
  KILN_RETURN_IF_ERROR(ensure("admin", "admins"));
  for (const std::string& w : workers) KILN_RETURN_IF_ERROR(ensure(w, "workers"));
  return {};
}

// The admin client of the farm in `dir`.
Result<proto::ClientOptions> farm_admin(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(auth::CurveKeyPair mine, auth::read_secret_key_file(dir + "/keys/admin.key"));
  KILN_ASSIGN_OR_RETURN(std::string theirs, auth::read_public_key_file(dir + "/keys/scheduler.pub"));
  return proto::ClientOptions{
      .curve = {.server_public_z85 = theirs, .public_z85 = mine.public_z85, .secret_z85 = mine.secret_z85},
      .key_file = dir + "/keys/admin.key"};
}

Status make_base_image_if_missing() {
  std::string image = kiln_home() + "/images/busybox";
  if (fs::exists(image + "/index.json")) return {};
  KILN_ASSIGN_OR_RETURN(std::string script, find_make_base_image());
  std::cerr << fmt::format("kiln: making the base image {} with {}\n", image, script);
  // Its stdout (the image reference) is a note here: it goes to stderr.
  KILN_ASSIGN_OR_RETURN(Subprocess maker, Subprocess::spawn({script, image}, {.stdin_fd = kInherit,
                                                                              .stdout_fd = STDERR_FILENO,
                                                                              .stderr_fd = kInherit,
                                                                              .search_path = false}));
  int status = maker.wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("{} {} failed (see above); fix it or run `kiln up --fake-build`", script, image));
  return {};
}

// Blocks SIGINT, SIGTERM and SIGCHLD in this thread (and in the threads it
// starts later, ZeroMQ's included) so that the main loop takes them with
// sigtimedwait; children start with them unblocked (Subprocess resets signals).
sigset_t block_farm_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void run_up(const UpOptions& o) {
  auto fail = [](const Error& e, int code = kExitFailed) {
    report(e);
    set_exit(code);
  };
  if (o.workers < 1 || o.workers > 64)
    return fail(Error(ErrorKind::kInvalidArgument, fmt::format("--workers {}: expected 1 to 64", o.workers)),
                kExitUsage);
  if (o.port < 1 || o.port > 65535 - 80)
    return fail(Error(ErrorKind::kInvalidArgument, fmt::format("--port {}: expected 1 to 65455", o.port)),
                kExitUsage);
  // A foreground farm takes its signals in the main loop; a detached one
  // leaves Ctrl-C as it is while it starts.
  sigset_t signals = o.detach ? sigset_t{} : block_farm_signals();

  const std::string dir = farm_dir(o.dir);
  const std::string address = fmt::format("tcp://127.0.0.1:{}", o.port);
  const std::string workers_address = fmt::format("tcp://127.0.0.1:{}", o.port + 1);
  const std::string http = o.http.empty() ? fmt::format("127.0.0.1:{}", o.port + 80) : o.http;

  auto scheduler_bin = find_binary("kiln-scheduler", "scheduler", o.scheduler_bin);
  if (!scheduler_bin) return fail(scheduler_bin.error());
  auto worker_bin = find_binary("kiln-worker", "worker/daemon", o.worker_bin);
  if (!worker_bin) return fail(worker_bin.error());

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return fail(
        Error(ErrorKind::kIo, fmt::format("cannot create the farm directory {}: {}", dir, ec.message())));
  auto previous = read_state(dir);
  if (!previous) return fail(previous.error());
  if (*previous) {
    for (Daemon& d : (*previous)->daemons)
      if (d.alive())
        return fail(
            Error(ErrorKind::kFailedPrecondition,
                  fmt::format("a farm is already up in {} ({} is pid {}); `kiln down --dir {}` stops it", dir,
                              d.name, d.pid, dir)));
    fs::remove(dir + "/" + kStateFile, ec);
  }
  std::set<std::string> names;
  for (int i = 1; i <= o.workers; ++i) names.insert(fmt::format("worker-{}", i));
  if (auto s = make_farm_keys(dir, names); !s)
    return fail(std::move(s.error()).with_context("making the farm's keys"));
  auto admin = farm_admin(dir);
  if (!admin) return fail(admin.error());
  if (auto other = proto::Client::connect(address, "kiln-up", milliseconds(500), *admin); other)
    return fail(
        Error(ErrorKind::kFailedPrecondition,
              fmt::format("a scheduler already answers at {}; stop it (`kiln down`) or choose another --port",
                          address)));
  if (!o.fake_build)
    if (auto s = make_base_image_if_missing(); !s) return fail(s.error());

  // The daemons resolve KILN_HOME (the base image) from their environment.
  ::setenv("KILN_HOME", kiln_home().c_str(), 1);

  // Detached: a supervisor process of its own (in its own session) runs the
  // farm, restarting what dies; this process waits until it says the farm
  // is up, or why not, and returns.
  UniqueFd report_to;
  if (o.detach) {
    auto channel = make_pipe();
    if (!channel) return fail(channel.error());
    const pid_t child = ::fork();
    if (child < 0) return fail(errno_error("cannot start the farm's supervisor").error());
    if (child > 0) {
      channel->write.reset();
      std::string said;
      char buffer[4096];
      for (ssize_t n; (n = ::read(channel->read.get(), buffer, sizeof buffer)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        said.append(buffer, static_cast<std::size_t>(n));
      }
      if (said.starts_with("up\n")) {
        std::cout << said.substr(3);
        set_exit(kExitOk);
      } else {
        std::cerr << (said.empty() ? fmt::format("kiln: the farm's supervisor ended without a word; see {}/"
                                                 "supervisor.log\n",
                                                 dir)
                                   : said);
        set_exit(kExitFailed);
      }
      return;
    }
    channel->read.reset();
    report_to = std::move(channel->write);
    ::setsid();
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    UniqueFd log(::open((dir + "/supervisor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (null) ::dup2(null.get(), STDIN_FILENO);
    if (log) {
      ::dup2(log.get(), STDOUT_FILENO);
      ::dup2(log.get(), STDERR_FILENO);
    }
    signals = block_farm_signals();
  }
  // What the detached supervisor tells `kiln up` (or a foreground farm prints).
  auto say = [&](const std::string& text, bool ok) {
    if (report_to) {
      const std::string message = (ok ? "up\n" : "") + text;
      (void)write_all(report_to.get(), message, "the report to kiln up");
      report_to.reset();
    }
    (ok ? std::cout : std::cerr) << text;
    std::cout.flush();
  };
  auto give_up = [&](const Error& e, std::vector<Daemon>& started) {
    say(fmt::format("kiln: {}\n", e.to_string()), false);
    stop_farm(started);
    std::error_code ignored;
    fs::remove(dir + "/" + kStateFile, ignored);
    set_exit(kExitFailed);
  };

  std::vector<Daemon> daemons;
  daemons.reserve(static_cast<std::size_t>(o.workers) + 1);
  std::vector<std::string> scheduler_args = {
      "--state-dir",   dir + "/scheduler", "--listen", address, "--listen-workers",
      workers_address, "--http",           http,       "--key", dir + "/keys/scheduler.key",
      "--auth-dir",    dir + "/auth"};
  if (!o.placement.empty()) scheduler_args.insert(scheduler_args.end(), {"--placement", o.placement});
  daemons.push_back(
      {.name = "scheduler", .binary = *scheduler_bin, .log = dir + "/scheduler.log", .args = scheduler_args});
  for (int i = 1; i <= o.workers; ++i) {
    std::string name = fmt::format("worker-{}", i);
    std::vector<std::string> args = {"--name",          name,
                                     "--state-dir",     dir + "/" + name,
                                     "--scheduler",     workers_address,
                                     "--key",           fmt::format("{}/keys/{}.key", dir, name),
                                     "--scheduler-key", dir + "/keys/scheduler.pub"};
    if (o.capacity > 0) args.insert(args.end(), {"--capacity", std::to_string(o.capacity)});
    if (o.fake_build) args.push_back("--fake-build");
    daemons.push_back({.name = name,
                       .binary = *worker_bin,
                       .log = fmt::format("{}/{}.log", dir, name),
                       .args = std::move(args)});
  }
  for (Daemon& d : daemons) {
    if (auto s = spawn(d, /*detach=*/false); !s) return give_up(s.error(), daemons);
  }
  const pid_t supervisor = o.detach ? ::getpid() : 0;
  auto record = [&] {
    if (!o.detach) return;
    if (auto s = write_state(dir, daemons, address, supervisor); !s) report(s.error());
  };
  // Written before waiting, so `kiln down` can stop a farm that is slow to come up.
  record();
  if (auto s = wait_until_up(daemons, address, names, o.wait_seconds, *admin); !s) {
    return give_up(std::move(s.error()).with_context("starting the farm"), daemons);
  }

  std::string export_line =
      o.port == 7800 ? "" : fmt::format("  export KILN_SCHEDULER={}   # for the commands below\n", address);
  // `kiln` finds the keys of the farm under KILN_HOME/farm by itself; elsewhere it is told.
  if (fs::weakly_canonical(dir, ec) != fs::weakly_canonical(kiln_home() + "/farm", ec)) {
    export_line +=
        fmt::format("  export KILN_KEY={0}/keys/admin.key KILN_SCHEDULER_KEY={0}/keys/scheduler.pub\n", dir);
  }
  say(fmt::format("kiln: farm up: scheduler {} (pid {}), {} {}{} in {}\n"
                  "{}"
                  "  submit:  kiln submit -f examples/hello.spec examples/context --follow\n"
                  "  watch:   kiln jobs; kiln admin workers{}\n"
                  "  logs:    {}/*.log\n"
                  "  stop:    {}\n",
                  address, daemons.front().pid, o.workers, o.workers == 1 ? "worker" : "workers",
                  o.fake_build ? " (fake builds)" : "", dir, export_line,
                  http == "off" ? "" : "; http://" + http + "/", dir,
                  o.detach ? fmt::format("kiln down --dir {}", dir) : "Ctrl-C"),
      true);

  const int sig = supervise(daemons, signals, record);
  std::cerr << fmt::format("\nkiln: {}: stopping the workers, then the scheduler\n", strsignal(sig));
  stop_farm(daemons);
  if (o.detach) fs::remove(dir + "/" + kStateFile, ec);
  std::cerr << "kiln: farm stopped\n";
  set_exit(kExitOk);
}

struct DownOptions {
  std::string dir;
};

void run_down(const DownOptions& o) {
  const std::string dir = farm_dir(o.dir);
  auto state = read_state(dir);
  if (!state) {
    report(state.error());
    set_exit(kExitFailed);
    return;
  }
  if (!*state) {
    report(
        Error(ErrorKind::kNotFound,
              fmt::format("no detached farm in {} (no {}); `kiln up --detach` starts one", dir, kStateFile)));
    set_exit(kExitFailed);
    return;
  }
  FarmState& farm = **state;
  std::size_t running = 0;
  for (Daemon& d : farm.daemons) running += d.alive() ? 1 : 0;
  // The supervisor stops its farm itself (workers first); wait for it.
  if (farm.supervisor > 0 && start_time(farm.supervisor) == farm.supervisor_started) {
    ::kill(farm.supervisor, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (start_time(farm.supervisor) == farm.supervisor_started && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(50));
  }
  // Whatever is left (no supervisor, or one that did not finish): stopped here.
  stop_farm(farm.daemons);
  std::error_code ec;
  fs::remove(dir + "/" + kStateFile, ec);
  std::cout << fmt::format("kiln: farm in {} stopped ({} of {} processes were running)\n", dir, running,
                           farm.daemons.size());
}

}  // namespace

void add_up_commands(CLI::App& app) {
  auto up = std::make_shared<UpOptions>();
  auto* up_cmd = app.add_subcommand(
      "up",
      "Run a whole local farm: kiln-scheduler and N kiln-workers on 127.0.0.1, state and logs under DIR; "
      "Ctrl-C stops it");
  up_cmd->add_option("--workers", up->workers, "Number of workers")->capture_default_str();
  up_cmd->add_option("--dir", up->dir, "Farm directory: state and logs (default KILN_HOME/farm)");
  up_cmd->add_option("--capacity", up->capacity, "Jobs each worker runs at once (default: the worker's)");
  up_cmd->add_flag(
      "--fake-build", up->fake_build,
      "Workers build nothing: each job logs a line and succeeds (for trying the farm out, and tests)");
  up_cmd->add_flag("--detach", up->detach, "Start the farm and return; `kiln down` stops it");
  up_cmd
      ->add_option("--port", up->port,
                   "Scheduler's client port; workers use PORT+1 and HTTP PORT+80 (default 7800, 7801, 7880)")
      ->capture_default_str();
  up_cmd->add_option("--http", up->http, "Scheduler's HTTP address, or `off` (default 127.0.0.1:PORT+80)");
  up_cmd->add_option("--placement", up->placement, "Scheduler's placement policy (default: the scheduler's)");
  up_cmd->add_option("--scheduler-bin", up->scheduler_bin, "kiln-scheduler to run");
  up_cmd->add_option("--worker-bin", up->worker_bin, "kiln-worker to run");
  up_cmd->add_option("--wait", up->wait_seconds, "Seconds to wait for the farm to come up")
      ->capture_default_str();
  up_cmd->callback([up] { run_up(*up); });

  auto down = std::make_shared<DownOptions>();
  auto* down_cmd = app.add_subcommand("down", "Stop a farm started with `kiln up --detach`");
  down_cmd->add_option("--dir", down->dir, "Farm directory (default KILN_HOME/farm)");
  down_cmd->callback([down] { run_down(*down); });
}

}  // namespace kiln::cli
