#include "worker/sandbox/runc_sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/format.h"
#include "common/fs.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/idmap.h"
#include "worker/sandbox/private_tmpfs.h"

namespace kiln::sandbox {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kContainerPrefix = "kiln-";
// Where user-namespaced steps' views live (a tmpfs per sandbox below it).
constexpr const char* kViewsRoot = "/run/kiln";
// How long helper commands (kill, delete, list) may take before kiln gives up on them.
constexpr auto kHelperTimeout = 20s;
// How long a killed container may take to disappear before kiln kills the runtime itself.
constexpr auto kKillPatience = 10s;

// Runs a runtime helper command (kill, delete, list, --version) to the end,
// output captured. In its own process group, like the runtime itself, so a
// terminal's Ctrl-C reaches kiln, which then stops steps in order.
Result<CommandOutput> run_helper(const std::vector<std::string>& argv, const std::string& hidden_mount = "") {
  return run_command(argv, {.spawn = {.group = ProcessGroup::kNew, .hidden_mount = hidden_mount},
                            .timeout = kHelperTimeout});
}

// Directory entries, or none when it cannot be listed (leftover cleanup
// goes on with what it can see).
std::vector<std::string> entries_of(const std::string& dir) {
  return list_dir(dir).value_or(std::vector<std::string>{});
}

std::string random_hex(std::size_t bytes) {
  std::vector<std::uint8_t> buf(bytes);
  std::size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(buf.data() + got, bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  return to_hex(buf);
}

// A runc/crun --log file in JSON lines: the messages of level "error".
std::string runtime_errors(const std::string& log_path) {
  std::ifstream in(log_path);
  std::string line, out;
  while (std::getline(in, line)) {
    auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object() || json.value("level", "") != "error") continue;
    std::string msg = json.value("msg", "");
    if (msg.empty()) continue;
    if (!out.empty()) out += "; ";
    out += msg;
  }
  return out;
}

// A mount point the runtime will have to create in the rootfs: `top` is the
// first missing component of the target's path (what to remove), `target`
// the mount point itself (both host paths).
struct Stub {
  std::string top;
  std::string target;
};

// Stubs are removed after the run so that secret and hosts-file targets
// leave no trace in the step's result.
std::vector<Stub> missing_stubs(const std::string& rootfs, const std::vector<std::string>& targets) {
  std::vector<Stub> stubs;
  for (const auto& target : targets) {
    auto rel = path::normalize_relative(std::string_view(target).substr(1));
    if (!rel || rel->empty()) continue;
    auto full = path::resolve_beneath(rootfs, *rel, path::AbsoluteSymlinks::kRelativeToRoot);
    if (!full) continue;
    std::string prefix;
    for (auto part : path::components(*rel)) {
      prefix = prefix.empty() ? std::string(part) : prefix + "/" + std::string(part);
      auto host = path::resolve_beneath(rootfs, prefix, path::AbsoluteSymlinks::kRelativeToRoot);
      if (!host) break;
      struct stat st;
      if (::lstat(host->c_str(), &st) != 0) {
        stubs.push_back({*host, *full});
        break;
      }
    }
  }
  return stubs;
}

// Removes the mount point if it is still an empty file or directory, then
// its parents up to the stub's top while they are empty: anything the step
// itself wrote there stays.
void remove_stub(const Stub& stub) {
  struct stat st;
  if (::lstat(stub.target.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode) && st.st_size == 0)
      ::unlink(stub.target.c_str());
    else if (S_ISDIR(st.st_mode))
      ::rmdir(stub.target.c_str());
  }
  for (std::string dir = stub.target; dir.size() > stub.top.size();) {
    dir = dir.substr(0, dir.rfind('/'));
    if (dir.size() < stub.top.size() || ::rmdir(dir.c_str()) != 0) break;
  }
}

// Forwards output chunks; reads until the pipe would block or ends.
bool drain(int fd, const OutputSink& on_output) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (on_output) on_output(std::string_view(buf, static_cast<std::size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    return true;  // EOF (or an error, which ends the stream too)
  }
}

// The end of a step's output, kept to explain its failure.
constexpr std::size_t kOutputTailBytes = 16 * 1024;
// A filesystem with less free space than this counts as full: a write that
// failed with ENOSPC leaves at most a few blocks.
constexpr std::uint64_t kFullBelowBytes = 1 << 20;

void keep_tail(std::string& tail, std::string_view chunk) {
  if (chunk.size() >= kOutputTailBytes) {
    tail.assign(chunk.substr(chunk.size() - kOutputTailBytes));
    return;
  }
  tail.append(chunk);
  if (tail.size() > 2 * kOutputTailBytes) tail.erase(0, tail.size() - kOutputTailBytes);
}

bool mentions_no_space(std::string_view text) {
  static constexpr std::string_view kMessage = "no space left on device";  // strerror(ENOSPC)
  auto it = std::search(text.begin(), text.end(), kMessage.begin(), kMessage.end(),
                        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
  return it != text.end();
}

// Why a failed step may have failed for want of disk space: a filesystem it
// could write to (container path, host path) is full now, or its output
// says so (a full tmpfs, or space freed again since). Nothing otherwise.
std::optional<std::string> out_of_space_note(const std::vector<std::pair<std::string, std::string>>& writable,
                                             std::string_view output_tail) {
  for (const auto& [inside, host] : writable) {
    struct statvfs fs;
    if (::statvfs(host.c_str(), &fs) != 0) continue;
    std::uint64_t free_bytes = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    if (free_bytes < kFullBelowBytes)
      return fmt::format("no space left on device: the filesystem of {} has {} free", inside,
                         human_bytes(free_bytes));
  }
  if (mentions_no_space(output_tail)) return "no space left on device, says the step's output";
  return std::nullopt;
}

}  // namespace

Result<OciRuntime> parse_oci_runtime(std::string_view name) {
  if (name == "runc") return OciRuntime::kRunc;
  if (name == "crun") return OciRuntime::kCrun;
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("unknown OCI runtime {:?}: use \"runc\" (the default) or \"crun\"", name));
}

std::string_view oci_runtime_name(OciRuntime runtime) {
  return runtime == OciRuntime::kCrun ? "crun" : "runc";
}

bool LeftoverReport::removed_anything() const {
  return !containers.empty() || !cgroups.empty() || bundles > 0 || secret_dirs > 0 || mounts > 0;
}

std::string LeftoverReport::to_string() const {
  if (!removed_anything()) return "no leftovers";
  std::vector<std::string> parts;
  if (!containers.empty()) parts.push_back(fmt::format("containers {}", fmt::join(containers, ", ")));
  if (!cgroups.empty()) parts.push_back(fmt::format("step cgroups {}", fmt::join(cgroups, ", ")));
  if (bundles > 0) parts.push_back(fmt::format("{} bundle directories", bundles));
  if (secret_dirs > 0) parts.push_back(fmt::format("{} secret directories", secret_dirs));
  if (mounts > 0) parts.push_back(fmt::format("{} idmapped mounts", mounts));
  return fmt::format("removed leftovers of an earlier run: {}", fmt::join(parts, "; "));
}

RuncSandbox::RuncSandbox(RuncSandboxOptions options) : options_(std::move(options)) {}

RuncSandbox::~RuncSandbox() {
  if (!lock_fd_) return;  // never owned the state directory
  // The secrets tmpfs only ever holds values of running steps; none run now.
  // Nor do bundles and the runtime's state (the watchdog, stopped below, needs neither).
  for (const std::string* dir : {&secrets_dir_, &bundles_dir_, &runtime_root_}) unmount_private_tmpfs(*dir);
  if (views_mounted_) {
    ::umount2(views_dir_.c_str(), MNT_DETACH);
    ::rmdir(views_dir_.c_str());
  }
  // The group's (now empty) cgroup directories; rmdir refuses non-empty ones.
  if (auto mounts = cgroup_mounts(); mounts && !cgroup_group_.empty()) {
    for (const auto& m : *mounts) ::rmdir((m.path + "/" + cgroup_group_).c_str());
  }
}

// crun 1.8 mistakes a hybrid host (v1 controllers plus an empty cgroup2 at
// /sys/fs/cgroup/unified) for a v2 one and fails; hiding the unified mount
// in a private mount namespace makes it use v1 (SpawnOptions::hidden_mount).
std::string RuncSandbox::runtime_hidden_mount() const {
  return crun_needs_private_cgroup_ns_ ? "/sys/fs/cgroup/unified" : "";
}

std::vector<std::string> RuncSandbox::runtime_command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  if (options_.runtime == OciRuntime::kCrun) {
    argv = {"crun", "--root=" + runtime_root_, "--cgroup-manager=cgroupfs"};
  } else {
    argv = {"runc", "--root", runtime_root_};
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<std::unique_ptr<RuncSandbox>> RuncSandbox::create(RuncSandboxOptions options) {
  if (options.state_dir.empty())
    return make_error(ErrorKind::kInvalidArgument, "the sandbox needs a state directory");
  std::string_view runtime_name = oci_runtime_name(options.runtime);
  KILN_RETURN_IF_ERROR(ensure_dirs(options.state_dir, 0700));
  char real[PATH_MAX];
  if (::realpath(options.state_dir.c_str(), real) == nullptr)
    return errno_error(fmt::format("resolve sandbox state directory {}", options.state_dir));
  options.state_dir = real;

  std::unique_ptr<RuncSandbox> sandbox(new RuncSandbox(std::move(options)));
  RuncSandbox& s = *sandbox;
  const std::string& state = s.options_.state_dir;
  s.runtime_root_ = state + "/runtime";
  s.bundles_dir_ = state + "/bundles";
  s.secrets_dir_ = state + "/secrets";
  s.cgroup_group_ = "kiln/" + sha256_hex(state).substr(0, 12);
  s.views_dir_ = std::string(kViewsRoot) + "/" + sha256_hex(state).substr(0, 12);
  // Two owners would take each other's running steps for leftovers.
  UniqueFd lock_fd(::open((state + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd) return errno_error(fmt::format("create lock file in {}", state));
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK)
      return make_error(ErrorKind::kBusy, fmt::format("sandbox state directory {} is in use by another kiln "
                                                      "sandbox: give each worker its own state directory",
                                                      state));
    return errno_error(fmt::format("lock {}/lock", state), err);
  }
  s.lock_fd_ = std::move(lock_fd);  // from here on the destructor may clean up the state directory
  for (const auto* d : {&s.runtime_root_, &s.bundles_dir_, &s.secrets_dir_})
    KILN_RETURN_IF_ERROR(ensure_dir(*d, 0700));

  // Before any runtime command: an earlier owner's watchdog, still killing
  // that owner's steps, would kill ours too; and from here on whatever we
  // start dies with us.
  StepWatchdogTargets targets{
      .cgroup_dirs = {}, .runtime_root = s.runtime_root_, .lock_path = state + "/watchdog.lock"};
  KILN_ASSIGN_OR_RETURN(auto hierarchies, cgroup_mounts());
  for (const auto& h : hierarchies) targets.cgroup_dirs.push_back(h.path + "/" + s.cgroup_group_);
  KILN_ASSIGN_OR_RETURN(s.watchdog_, StepWatchdog::start(targets));

  if (s.options_.runtime == OciRuntime::kCrun) {
    auto mounts = cgroup_mounts();
    if (mounts) {
      for (const auto& m : *mounts)
        if (m.v2 && m.path == "/sys/fs/cgroup/unified") s.crun_needs_private_cgroup_ns_ = true;
    }
  }

  auto version = run_helper(s.runtime_command({"--version"}), s.runtime_hidden_mount());
  if (!version || !version->ok()) {
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format("the OCI runtime {} does not run ({}): install it (apt-get install {})", runtime_name,
                    version ? fmt::format("{} {}", format_command(s.runtime_command({"--version"})),
                                          describe_wait_status(version->wait_status))
                            : version.error().to_string(),
                    runtime_name));
  }

  // Secret values must never touch a disk.
  KILN_RETURN_IF_ERROR(mount_private_tmpfs(s.secrets_dir_, "secrets"));

  KILN_RETURN_IF_ERROR(s.remove_leftovers());
  if (s.leftovers_.removed_anything()) spdlog::warn("sandbox {}: {}", state, s.leftovers_.to_string());
  // Bundles and the runtime's state live as long as their step: on a tmpfs
  // of our own their files cost no disk metadata writes (removing a bundle
  // from ext4 took 3-5 ms of a 60 ms step here). Mounted after the
  // leftovers' removal, which saw whatever was there (a crashed owner's
  // tmpfs, still mounted, or an older kiln's directories on disk).
  KILN_RETURN_IF_ERROR(mount_private_tmpfs(s.bundles_dir_, "the sandbox's step bundles"));
  KILN_RETURN_IF_ERROR(mount_private_tmpfs(s.runtime_root_, "the runtime's state"));
  if (const auto& userns = s.options_.oci.user_namespace) {
    // A tmpfs searchable by anyone, readable by root only, in a directory
    // every uid can reach: a user-namespaced step's root can then get at
    // its own files there, and secrets stay off the disk.
    KILN_RETURN_IF_ERROR(ensure_dirs(kViewsRoot, 0711));
    KILN_RETURN_IF_ERROR(ensure_dir(s.views_dir_, 0711));
    if (::mount("tmpfs", s.views_dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=0711,size=64m") != 0)
      return errno_error(fmt::format("mount a tmpfs for user-namespaced steps at {}", s.views_dir_));
    s.views_mounted_ = true;
    KILN_ASSIGN_OR_RETURN_CONTEXT(s.userns_fd_, open_user_namespace(*userns),
                                  "making the user namespace of --userns");
  }
  return sandbox;
}

Status RuncSandbox::remove_leftovers() {
  for (const auto& name : entries_of(runtime_root_)) {
    if (!name.starts_with(kContainerPrefix)) continue;
    auto out = run_helper(runtime_command({"delete", "--force", name}), runtime_hidden_mount());
    if (!out)
      return std::unexpected(std::move(out).error().with_context("removing leftover container " + name));
    if (!out->ok()) {
      // A state entry the runtime no longer understands: its processes are
      // handled through the cgroup below; the entry itself can go.
      spdlog::warn("sandbox: `{}` {}: {}", format_command(runtime_command({"delete", "--force", name})),
                   describe_wait_status(out->wait_status), out->output);
      (void)remove_tree(runtime_root_ + "/" + name);
    }
    leftovers_.containers.push_back(name);
  }
  auto cgroups = StepCgroup::remove_group_leftovers(cgroup_group_);
  if (!cgroups)
    return std::unexpected(std::move(cgroups).error().with_context("removing leftover step cgroups"));
  leftovers_.cgroups = *cgroups;
  for (const auto& name : entries_of(bundles_dir_)) {
    (void)remove_tree(bundles_dir_ + "/" + name);
    ++leftovers_.bundles;
  }
  for (const auto& name : entries_of(secrets_dir_)) {
    (void)remove_tree(secrets_dir_ + "/" + name);
    ++leftovers_.secret_dirs;
  }
  // User-namespaced steps' views with their idmapped mounts, then the
  // views tmpfs itself (mounted afresh by create() when needed).
  for (const auto& name : entries_of(views_dir_)) {
    auto detached = detach_mounts_below(views_dir_ + "/" + name);
    if (!detached)
      return std::unexpected(std::move(detached).error().with_context("removing leftover step views"));
    leftovers_.mounts += *detached;
    if (auto removed = remove_tree(views_dir_ + "/" + name); !removed)
      return std::unexpected(std::move(removed).error().with_context("removing leftover step views"));
  }
  if (auto detached = detach_mounts_below(views_dir_); !detached)
    return std::unexpected(std::move(detached).error().with_context("removing leftover step views"));
  ::rmdir(views_dir_.c_str());
  return {};
}

Status RuncSandbox::run(const RunSpec& spec, const std::string& rootfs, const OutputSink& on_output,
                        CancelToken& cancel) {
  std::string_view runtime_name = oci_runtime_name(options_.runtime);
  if (spec.stdin_fd >= 0 && spec.stdin_data)
    return make_error(ErrorKind::kInvalidArgument, "a step's stdin is either an fd or a provider, not both");
  if (cancel.cancelled()) return make_error(ErrorKind::kCancelled, "cancelled before the step started");

  // runc refuses a rootfs path with symlinks in it, so hand it the real one.
  char real[PATH_MAX];
  if (::realpath(rootfs.c_str(), real) == nullptr)
    return errno_error(fmt::format("the step's root filesystem {}", rootfs));
  std::string real_rootfs = real;
  struct stat st;
  if (::stat(real_rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the step's root filesystem {} is not a directory", rootfs));

  const std::string id = std::string(kContainerPrefix) + random_hex(8);
  const std::string bundle = bundles_dir_ + "/" + id;
  const std::string secrets = secrets_dir_ + "/" + id;
  const std::string runtime_log = bundle + "/runtime.log";

  // Everything made for this run goes, whatever happens from here on.
  std::vector<std::string> stub_targets = {"/etc/hosts"};
  if (spec.host_network()) stub_targets.push_back("/etc/resolv.conf");
  for (const auto& s : spec.secrets) stub_targets.push_back(s.target);
  std::vector<Stub> stubs = missing_stubs(real_rootfs, stub_targets);
  struct Cleanup {
    std::string bundle, secrets;
    std::vector<Stub>* stubs;
    ~Cleanup() {
      (void)remove_tree(secrets);
      (void)remove_tree(bundle);
      for (const auto& s : *stubs) remove_stub(s);
    }
  } cleanup{bundle, secrets, &stubs};

  KILN_RETURN_IF_ERROR(ensure_dir(bundle, 0700));
  OciPaths paths;
  paths.rootfs = real_rootfs;
  paths.hosts_file = bundle + "/hosts";
  std::string secret_dir = secrets;
  std::uint32_t host_uid = spec.uid, host_gid = spec.gid;
  // In a user namespace the step's root is an unprivileged host uid: what
  // runc mounts for it must be reachable by that uid (a directory of its
  // own under the views tmpfs), its root filesystem and caches idmapped.
  // Declared after `cleanup`: detached before the bundle goes, after the
  // container (below) is gone.
  std::optional<StepView> view;
  if (const auto& userns = options_.oci.user_namespace) {
    auto made = StepView::create(views_dir_ + "/" + id);
    if (!made) return std::unexpected(std::move(made).error());
    view.emplace(std::move(*made));
    KILN_ASSIGN_OR_RETURN(paths.rootfs, view->add_idmapped(real_rootfs, "rootfs", userns_fd_.get()));
    for (std::size_t i = 0; i < spec.mounts.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(
          std::string source,
          view->add_idmapped(spec.mounts[i].source, "mount" + std::to_string(i), userns_fd_.get()));
      paths.mount_sources.push_back(std::move(source));
    }
    paths.hosts_file = view->dir() + "/hosts";
    secret_dir = view->dir() + "/secrets";
    host_uid += userns->host_first;
    host_gid += userns->host_first;
  }
  KILN_RETURN_IF_ERROR(ensure_dir(secret_dir, view ? 0711 : 0700));
  KILN_RETURN_IF_ERROR(write_file(paths.hosts_file, hosts_file_content(spec.hostname), 0644));
  for (std::size_t i = 0; i < spec.secrets.size(); ++i) {
    std::string file = secret_dir + "/" + std::to_string(i);
    KILN_RETURN_IF_ERROR(write_file(file, spec.secrets[i].value, 0400));
    if (::chown(file.c_str(), host_uid, host_gid) != 0)
      return errno_error(fmt::format("give secret file {} to {}:{}", file, host_uid, host_gid));
    paths.secret_files.push_back(std::move(file));
  }

  // Removed (its processes killed first) on every way out of run().
  KILN_ASSIGN_OR_RETURN(StepCgroup cgroup, StepCgroup::create(cgroup_group_, id, spec.limits));
  paths.cgroups_path = cgroup.container_path();
  KILN_ASSIGN_OR_RETURN(nlohmann::json config, make_oci_config(spec, paths, options_.oci));
  KILN_RETURN_IF_ERROR(write_file(bundle + "/config.json", config.dump(2) + "\n", 0600));

  KILN_ASSIGN_OR_RETURN_CONTEXT(Pipe output, make_pipe(), "create the step's output pipe");
  ::fcntl(output.read.get(), F_SETFL, O_NONBLOCK);
  Pipe input;
  if (spec.stdin_data) {
    KILN_ASSIGN_OR_RETURN_CONTEXT(input, make_pipe(), "create the step's stdin pipe");
    ::fcntl(input.write.get(), F_SETFL, O_NONBLOCK);
  }

  std::vector<std::string> global = {};
  if (options_.runtime == OciRuntime::kCrun)
    global = {"--log=" + runtime_log, "--log-format=json"};
  else
    global = {"--log", runtime_log, "--log-format", "json"};
  std::vector<std::string> run_args = global;
  const std::string pid_file = bundle + "/container.pid";
  run_args.insert(run_args.end(), {"run", "--detach", "--pid-file", pid_file, "--bundle", bundle, id});
  // Detached, the container's process inherits the runtime's stdio itself:
  // stdout and stderr are the same pipe, in the order written, and it closes
  // when the step's last process exits. (A foreground `run` would copy each
  // stream through its own pipe and could reorder them.) The runtime runs
  // under a subreaper child of kiln, which reaps the container's init once
  // the runtime has left it behind, to learn its exit status. The subreaper
  // dies with kiln's thread (PDEATHSIG) and leads a process group with the
  // runtime, so that a hung runtime can be killed whole.
  KILN_ASSIGN_OR_RETURN(Subprocess reaper,
                        Subprocess::spawn(runtime_command(run_args),
                                          {.stdin_fd = spec.stdin_data ? input.read.get() : spec.stdin_fd,
                                           .stdout_fd = output.write.get(),
                                           .stderr_fd = output.write.get(),
                                           .group = ProcessGroup::kNew,
                                           .parent_death_signal = SIGKILL,
                                           .subreaper = true,
                                           .hidden_mount = runtime_hidden_mount()}));
  output.write.reset();
  input.read.reset();
  // Should run() leave early (an error, an exception), nothing it started
  // may outlive it: kill the runtime and the container here, before
  // `reaper` waits for them and `cgroup` is removed.
  struct KillOnEarlyExit {
    Subprocess& reaper;
    StepCgroup& cgroup;
    bool armed = true;
    ~KillOnEarlyExit() {
      if (!armed) return;
      reaper.signal_group(SIGKILL);
      for (pid_t pid : cgroup.processes()) ::kill(pid, SIGKILL);
    }
  } kill_on_early_exit{reaper, cgroup};

  enum class Stop { kNone, kCancelled, kTimedOut, kStdinFailed, kSinkFailed };
  // The caller's callbacks must not unwind through here: that would leave
  // the container running. A throwing sink or provider stops the step.
  std::optional<std::string> sink_error;
  std::string output_tail;  // the last kOutputTailBytes, read for "No space left on device"
  OutputSink forward = [&](std::string_view chunk) {
    keep_tail(output_tail, chunk);
    if (sink_error || !on_output) return;
    try {
      on_output(chunk);
    } catch (const std::exception& e) {
      sink_error = e.what();
    } catch (...) {
      sink_error = "unknown exception";
    }
  };
  Stop stop = Stop::kNone;
  std::optional<Error> stdin_error;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point kNever = Clock::time_point::max();
  // The step's time limit, then (once the step ended) a bound on waiting for the output to end.
  Clock::time_point deadline = spec.timeout ? Clock::now() + *spec.timeout : kNever;
  std::string pending_stdin;
  std::size_t pending_offset = 0;
  bool output_done = false;
  bool exited = false;
  int reaper_status = 0;

  auto feed_stdin = [&] {
    while (input.write) {
      if (pending_offset == pending_stdin.size()) {
        Result<std::string> next = std::string();
        try {
          next = spec.stdin_data();
        } catch (const std::exception& e) {
          next = make_error(ErrorKind::kInternal, fmt::format("the stdin provider threw: {}", e.what()));
        } catch (...) {
          next = make_error(ErrorKind::kInternal, "the stdin provider threw an unknown exception");
        }
        if (!next) {
          stdin_error = std::move(next).error();
          input.write.reset();
          return;
        }
        if (next->empty()) {
          input.write.reset();  // end of input
          return;
        }
        pending_stdin = std::move(*next);
        pending_offset = 0;
      }
      ssize_t n = write_without_sigpipe(input.write.get(), pending_stdin.data() + pending_offset,
                                        pending_stdin.size() - pending_offset);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n < 0) {
        input.write.reset();  // the step closed its stdin (EPIPE): it did not want the rest
        return;
      }
      pending_offset += static_cast<std::size_t>(n);
    }
  };

  while (!(output_done && exited) && stop == Stop::kNone) {
    std::vector<pollfd> fds;
    if (!output_done) fds.push_back({output.read.get(), POLLIN, 0});
    if (cancel.wait_fd() >= 0) fds.push_back({cancel.wait_fd(), POLLIN, 0});
    if (input.write) fds.push_back({input.write.get(), POLLOUT, 0});
    if (!exited && reaper.exit_fd() >= 0) fds.push_back({reaper.exit_fd(), POLLIN, 0});
    int timeout_ms = 1000;  // only a safety net: every event above wakes poll
    if (cancel.wait_fd() < 0 || reaper.exit_fd() < 0) timeout_ms = 50;
    if (deadline != kNever) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<std::int64_t>(left.count() + 1, 0, timeout_ms));
    }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) return errno_error("poll the step's output");
    if (!output_done && drain(output.read.get(), forward)) output_done = true;
    if (input.write) feed_stdin();
    if (stdin_error) stop = Stop::kStdinFailed;
    if (sink_error) stop = Stop::kSinkFailed;
    if (!exited && reaper.try_wait(&reaper_status)) {
      exited = true;
      // Processes of a pid namespace die with its init, so the pipe closes
      // promptly; bound the wait anyway in case something kept it open.
      if (!output_done) deadline = std::min(deadline, Clock::now() + 5s);
    }
    if (cancel.cancelled()) stop = Stop::kCancelled;
    if (Clock::now() >= deadline && !(output_done && exited)) {
      if (exited) {
        output_done = true;  // the step is over; stop waiting for stray writers
      } else {
        stop = Stop::kTimedOut;
      }
    }
  }

  if (stop != Stop::kNone) {
    // Kill the container: through the runtime, and through the cgroup for
    // processes the runtime does not know yet (a container still starting).
    (void)run_helper(runtime_command({"kill", id, "KILL"}), runtime_hidden_mount());
    auto kill_deadline = Clock::now() + kKillPatience;
    while (!reaper.try_wait(&reaper_status)) {
      for (pid_t pid : cgroup.processes()) ::kill(pid, SIGKILL);
      if (!output_done && drain(output.read.get(), forward)) output_done = true;
      if (Clock::now() >= kill_deadline) {
        spdlog::warn("sandbox: {} run {} did not end {} s after its container was killed; killing it",
                     runtime_name, id,
                     std::chrono::duration_cast<std::chrono::seconds>(kKillPatience).count());
        reaper.signal_group(SIGKILL);  // the subreaper and the runtime
        reaper.wait();
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  if (!output_done) drain(output.read.get(), forward);
  ReaperReport outcome = reaper.reaper_report();
  // The container's init among the orphans the reaper collected.
  std::optional<int> container_status;
  {
    std::ifstream in(pid_file);
    pid_t init_pid = 0;
    if (in >> init_pid) {
      for (const auto& [pid, status] : outcome.orphans)
        if (pid == init_pid) container_status = status;
    }
  }

  // A detached container stays known to the runtime after it ends. When its
  // init has been reaped, nothing of it runs any more and what `delete`
  // would do is ours to do: its cgroup is removed below, and its state is a
  // directory in our runtime root (no poststop hooks are configured). That
  // saves a second runtime process per step. Otherwise (killed, or the
  // runtime failed) the runtime deletes it.
  if (container_status) {
    if (auto gone = remove_tree(runtime_root_ + "/" + id); !gone) {
      spdlog::warn("sandbox: removing the state of {}: {}", id, gone.error().to_string());
      (void)run_helper(runtime_command({"delete", "--force", id}), runtime_hidden_mount());
    }
  } else {
    (void)run_helper(runtime_command({"delete", "--force", id}), runtime_hidden_mount());
  }
  kill_on_early_exit.armed = false;
  LimitHits hits = cgroup.limit_hits();
  Status removed = cgroup.kill_and_remove(5s);
  if (!removed) spdlog::error("sandbox: step {} left processes behind: {}", id, removed.error().to_string());

  switch (stop) {
    case Stop::kCancelled: return std::unexpected(cancelled_step_error());
    case Stop::kTimedOut: return std::unexpected(timed_out_step_error(*spec.timeout));
    case Stop::kSinkFailed: return std::unexpected(output_failed_step_error(*sink_error));
    case Stop::kStdinFailed:
      return std::unexpected(std::move(*stdin_error).with_context("reading the step's standard input"));
    case Stop::kNone: break;
  }
  if (!removed) return std::unexpected(std::move(removed).error());

  if (!WIFEXITED(outcome.program_status) || WEXITSTATUS(outcome.program_status) != 0 || !container_status) {
    // The runtime failed to start the command (bad cwd, no such program...):
    // its own log says why; its stderr went to the step's output too.
    std::string runtime_error = runtime_errors(runtime_log);
    if (runtime_error.empty())
      runtime_error = fmt::format("`{} run` {}", runtime_name, describe_wait_status(outcome.program_status));
    return make_error(ErrorKind::kFailedPrecondition, fmt::format("could not start the command {}: {}",
                                                                  format_command(spec.argv), runtime_error));
  }

  int wait_status = *container_status;
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return {};
  std::string what;
  std::string signal_hint;
  bool sigkill = false;
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    sigkill = sig == SIGKILL;
    what = fmt::format("command was killed by signal {} ({})", sig, signal_name(sig));
  } else {
    int status = WEXITSTATUS(wait_status);
    what = fmt::format("command exited with status {}", status);
    // A shell reports a child's death by signal S as 128 + S.
    sigkill = status == 128 + SIGKILL;
    if (status > 128 && status < 128 + 65)
      signal_hint =
          fmt::format(" (128 + {}: a process was killed by {})", status - 128, signal_name(status - 128));
  }
  if (hits.memory && spec.limits.memory_bytes) {
    if (sigkill)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("killed: memory limit of {} reached ({})",
                                    human_bytes(*spec.limits.memory_bytes), what));
    what += fmt::format(" (the memory limit of {} was reached during the step)",
                        human_bytes(*spec.limits.memory_bytes));
  } else {
    what += signal_hint;
  }
  if (hits.pids && spec.limits.pids)
    what += fmt::format(" (pids limit of {} reached: the step could not start more processes)",
                        *spec.limits.pids);
  std::vector<std::pair<std::string, std::string>> writable = {{"/", real_rootfs}};
  for (const auto& m : spec.mounts)
    if (!m.read_only) writable.emplace_back(m.destination, m.source);
  if (auto note = out_of_space_note(writable, output_tail)) what += " (" + *note + ")";
  return make_error(ErrorKind::kFailedPrecondition, std::move(what));
}

}  // namespace kiln::sandbox
