// `kiln up`: a whole local farm in one command — one kiln-scheduler and N
// kiln-worker processes on 127.0.0.1, each with its state under DIR
// (default KILN_HOME/farm) and its log in DIR/NAME.log. In the foreground it
// stays until Ctrl-C or SIGTERM, then stops the workers and the scheduler
// (SIGTERM, SIGKILL after 10 s); if one of them dies it says which, stops the
// rest and exits 1. With --detach it returns once the farm answers, leaving
// DIR/farm.json for `kiln down` to stop it.
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

constexpr auto kStopGrace = std::chrono::seconds(10);
constexpr const char* kStateFile = "farm.json";

void report(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

std::string self_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
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
  std::string dir = self_dir();
  std::vector<std::string> tried = {
      dir + "/" + name, fs::path(dir + "/../" + build_subdir + "/" + name).lexically_normal().string()};
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

// The base-image maker: installed beside kiln (PREFIX/libexec/kiln, from
// `cmake --install`), else KILN_SOURCE_DIR's, else a source tree above kiln.
Result<std::string> find_make_base_image() {
  const std::string installed =
      fs::path(self_dir() + "/" + KILN_LIBEXEC_FROM_BIN + "/make-base-image").lexically_normal().string();
  if (is_executable(installed)) return installed;
  const char* source = std::getenv("KILN_SOURCE_DIR");
  if (source != nullptr && *source != '\0') {
    std::string script = std::string(source) + "/scripts/make-base-image";
    if (is_executable(script)) return script;
  }
  for (fs::path dir = self_dir(); !dir.empty(); dir = dir.parent_path()) {
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

// /proc/PID/stat's start time: with the pid, names one process for good.
std::string start_time(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  std::getline(in, stat);
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  // Fields after the command: state is the 3rd of the line, starttime the 22nd.
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return field;
  return "";
}

bool is_zombie_or_gone(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return true;
  std::size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z';
}

// One daemon of the farm.
struct Daemon {
  std::string name;  // "scheduler", "worker-1"
  std::string binary;
  std::string log;
  pid_t pid = -1;
  std::string started;  // start_time(pid)
  // Set when it is our child, ours to wait for (not for one found in farm.json).
  std::optional<Subprocess> process;
  bool exited = false;
  int status = 0;

  // True while it runs; reaps it when it is our child.
  bool alive() {
    if (exited) return false;
    if (process) {
      int st = 0;
      if (!process->try_wait(&st)) return true;
      exited = true;
      status = st;
      return false;
    }
    if (is_zombie_or_gone(pid) || start_time(pid) != started) {
      exited = true;
      return false;
    }
    return true;
  }

  std::string how_it_ended() const { return describe_wait_status(status); }
};

// The last `lines` lines of a log, indented, to show why a daemon died.
std::string log_tail(const std::string& path, std::size_t lines = 8) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    " + all[i] + "\n";
  return out;
}

// Starts the daemon with stdin from /dev/null and stdout/stderr to
// `daemon.log`. A foreground farm's daemons get their own process group (so
// a terminal's Ctrl-C reaches only `kiln up`, which stops them in order) and
// die with it (SIGTERM); a detached farm's daemons get their own session and
// outlive it.
Status spawn(Daemon& daemon, const std::vector<std::string>& args, bool detach) {
  UniqueFd log(::open(daemon.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log) return errno_error("cannot open log " + daemon.log);
  std::vector<std::string> argv = {daemon.binary};
  argv.insert(argv.end(), args.begin(), args.end());
  KILN_ASSIGN_OR_RETURN(
      Subprocess process,
      Subprocess::spawn(argv, {.stdout_fd = log.get(),
                               .stderr_fd = log.get(),
                               .search_path = false,
                               .group = detach ? ProcessGroup::kNewSession : ProcessGroup::kNew,
                               .parent_death_signal = detach ? 0 : SIGTERM}));
  daemon.pid = process.pid();
  daemon.process = std::move(process);
  // Once started, a pid and its start time name one process for good.
  daemon.started = start_time(daemon.pid);
  return {};
}

// SIGTERM to all, wait up to kStopGrace, then SIGKILL the rest.
void stop_group(std::vector<Daemon*> group) {
  for (Daemon* d : group)
    if (d->alive()) ::kill(d->pid, SIGTERM);
  auto deadline = Clock::now() + kStopGrace;
  for (;;) {
    bool any = false;
    for (Daemon* d : group) any = d->alive() || any;
    if (!any) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  for (Daemon* d : group)
    if (d->alive()) {
      std::cerr << fmt::format("kiln: {} (pid {}) did not stop within {} s; killing it\n", d->name, d->pid,
                               kStopGrace.count());
      ::kill(d->pid, SIGKILL);
    }
  auto kill_deadline = Clock::now() + std::chrono::seconds(5);
  for (Daemon* d : group)
    while (d->alive() && Clock::now() < kill_deadline) std::this_thread::sleep_for(milliseconds(20));
  // One that survives SIGKILL (stuck in the kernel) is not waited for.
  for (Daemon* d : group)
    if (d->alive() && d->process) d->process->release();
}

// Workers first (they report their running jobs cancelled to a scheduler
// still there), then the scheduler.
void stop_farm(std::vector<Daemon>& daemons) {
  std::vector<Daemon*> workers;
  std::vector<Daemon*> scheduler;
  for (Daemon& d : daemons) (d.name == "scheduler" ? scheduler : workers).push_back(&d);
  stop_group(workers);
  stop_group(scheduler);
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

Status write_state(const std::string& dir, const std::vector<Daemon>& daemons, const std::string& address) {
  nlohmann::ordered_json state{{"scheduler_address", address}, {"daemons", nlohmann::ordered_json::array()}};
  for (const Daemon& d : daemons)
    state["daemons"].push_back(
        {{"name", d.name}, {"pid", d.pid}, {"started", d.started}, {"binary", d.binary}, {"log", d.log}});
  return write_file_atomically(dir + "/" + kStateFile, state.dump(2) + "\n");
}

// The daemons a detached farm recorded; nullopt when there is no state file.
Result<std::optional<std::vector<Daemon>>> read_state(const std::string& dir) {
  std::string path = dir + "/" + kStateFile;
  auto text = read_file(path);
  if (!text) return std::optional<std::vector<Daemon>>();
  auto state = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded() || !state.contains("daemons") || !state["daemons"].is_array())
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{} is not a kiln farm state file; stop its processes by hand and remove it", path));
  std::vector<Daemon> daemons;
  for (const auto& d : state["daemons"]) {
    Daemon daemon{.name = d.value("name", ""),
                  .binary = d.value("binary", ""),
                  .log = d.value("log", ""),
                  .pid = d.value("pid", -1),
                  .started = d.value("started", "")};
    if (daemon.pid > 0) daemons.push_back(std::move(daemon));
  }
  return std::optional<std::vector<Daemon>>(std::move(daemons));
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

Status wait_until_up(std::vector<Daemon>& daemons, const std::string& address,
                     const std::set<std::string>& names, double wait_seconds,
                     const proto::ClientOptions& admin) {
  auto deadline = Clock::now() + milliseconds(static_cast<long>(wait_seconds * 1000));
  std::unique_ptr<proto::Client> client;
  std::string last_problem = "the scheduler has not answered";
  for (;;) {
    sigset_t pending;
    ::sigpending(&pending);
    if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM))
      return make_error(ErrorKind::kCancelled, "interrupted while the farm was starting");
    for (Daemon& d : daemons)
      if (!d.alive())
        return make_error(ErrorKind::kFailedPrecondition,
                          fmt::format("{} (pid {}) {} while the farm was starting; its log {} ends with:\n{}",
                                      d.name, d.pid, d.how_it_ended(), d.log, log_tail(d.log)));
    if (Clock::now() >= deadline)
      return make_error(
          ErrorKind::kUnavailable,
          fmt::format("the farm did not come up within {} s ({}); see the logs in {}", wait_seconds,
                      last_problem, fs::path(daemons.front().log).parent_path().string()));
    if (!client) {
      auto fresh = proto::Client::connect(address, "kiln-up", milliseconds(500), admin);
      if (fresh) client = std::move(*fresh);
    }
    if (client) {
      auto workers = client->call<proto::Workers>(proto::ListWorkers{}, milliseconds(1000));
      if (workers) {
        std::size_t ready = 0;
        for (const auto& w : workers->workers) ready += names.contains(w.name) && w.connected ? 1 : 0;
        if (ready == names.size()) return {};
        last_problem = fmt::format("{} of {} workers registered", ready, names.size());
      } else {
        client.reset();
      }
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
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
    for (Daemon& d : **previous)
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

  std::vector<Daemon> daemons;
  daemons.reserve(static_cast<std::size_t>(o.workers) + 1);
  daemons.push_back({.name = "scheduler", .binary = *scheduler_bin, .log = dir + "/scheduler.log"});
  std::vector<std::string> scheduler_args = {
      "--state-dir",   dir + "/scheduler", "--listen", address, "--listen-workers",
      workers_address, "--http",           http,       "--key", dir + "/keys/scheduler.key",
      "--auth-dir",    dir + "/auth"};
  if (!o.placement.empty()) scheduler_args.insert(scheduler_args.end(), {"--placement", o.placement});
  if (auto s = spawn(daemons.back(), scheduler_args, o.detach); !s) return fail(s.error());

  for (int i = 1; i <= o.workers; ++i) {
    std::string name = fmt::format("worker-{}", i);
    daemons.push_back({.name = name, .binary = *worker_bin, .log = fmt::format("{}/{}.log", dir, name)});
    std::vector<std::string> args = {"--name",          name,
                                     "--state-dir",     dir + "/" + name,
                                     "--scheduler",     workers_address,
                                     "--key",           fmt::format("{}/keys/{}.key", dir, name),
                                     "--scheduler-key", dir + "/keys/scheduler.pub"};
    if (o.capacity > 0) args.insert(args.end(), {"--capacity", std::to_string(o.capacity)});
    if (o.fake_build) args.push_back("--fake-build");
    if (auto s = spawn(daemons.back(), args, o.detach); !s) {
      stop_farm(daemons);
      return fail(s.error());
    }
  }
  if (o.detach) {
    // Written before waiting, so `kiln down` can stop a farm that is slow to come up.
    if (auto s = write_state(dir, daemons, address); !s) {
      stop_farm(daemons);
      return fail(s.error());
    }
  }

  if (auto s = wait_until_up(daemons, address, names, o.wait_seconds, *admin); !s) {
    report(s.error());
    std::cerr << "kiln: stopping the rest of the farm\n";
    stop_farm(daemons);
    if (o.detach) fs::remove(dir + "/" + kStateFile, ec);
    set_exit(kExitFailed);
    return;
  }

  std::string export_line =
      o.port == 7800 ? "" : fmt::format("  export KILN_SCHEDULER={}   # for the commands below\n", address);
  // `kiln` finds the keys of the farm under KILN_HOME/farm by itself; elsewhere it is told.
  if (fs::weakly_canonical(dir, ec) != fs::weakly_canonical(kiln_home() + "/farm", ec)) {
    export_line +=
        fmt::format("  export KILN_KEY={0}/keys/admin.key KILN_SCHEDULER_KEY={0}/keys/scheduler.pub\n", dir);
  }
  std::cout << fmt::format(
      "kiln: farm up: scheduler {} (pid {}), {} {}{} in {}\n"
      "{}"
      "  submit:  kiln submit -f examples/hello.spec examples/context --follow\n"
      "  watch:   kiln jobs; kiln admin workers{}\n"
      "  logs:    {}/*.log\n"
      "  stop:    {}\n",
      address, daemons.front().pid, o.workers, o.workers == 1 ? "worker" : "workers",
      o.fake_build ? " (fake builds)" : "", dir, export_line, http == "off" ? "" : "; http://" + http + "/",
      dir, o.detach ? fmt::format("kiln down --dir {}", dir) : "Ctrl-C");
  std::cout.flush();
  if (o.detach) {
    for (Daemon& d : daemons) (void)d.process->release();  // they outlive `kiln up`
    return;
  }

  for (;;) {
    timespec tick{.tv_sec = 1, .tv_nsec = 0};
    int sig = ::sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cerr << fmt::format("\nkiln: {}: stopping the workers, then the scheduler\n", strsignal(sig));
      stop_farm(daemons);
      std::cerr << "kiln: farm stopped\n";
      set_exit(kExitOk);
      return;
    }
    for (Daemon& d : daemons)
      if (!d.alive()) {
        std::cerr << fmt::format(
            "kiln: {} (pid {}) {}; its log {} ends with:\n{}kiln: stopping the rest of the farm\n", d.name,
            d.pid, d.how_it_ended(), d.log, log_tail(d.log));
        stop_farm(daemons);
        set_exit(kExitFailed);
        return;
      }
  }
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
  std::vector<Daemon>& daemons = **state;
  std::size_t running = 0;
  for (Daemon& d : daemons) running += d.alive() ? 1 : 0;
  stop_farm(daemons);
  std::error_code ec;
  fs::remove(dir + "/" + kStateFile, ec);
  std::cout << fmt::format("kiln: farm in {} stopped ({} of {} processes were running)\n", dir, running,
                           daemons.size());
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
