#include "worker/sandbox/cgroup.h"

#include "common/fs.h"
#include "common/mountinfo.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

namespace kiln::sandbox {
namespace {

constexpr std::uint64_t kCpuPeriodUs = 100'000;

// Writes `value` to an existing cgroup control file in one write(2): each
// write is one command to the kernel, and such a file is never created.
Status write_control(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("open {}", path));
  if (::write(fd.get(), value.data(), value.size()) < 0)
    return errno_error(fmt::format("write {:?} to {}", value, path));
  return {};
}

// A control file's text; empty when it cannot be read (an absent counter).
std::string read_control(const std::string& path) {
  return read_file(path, 1 << 20).value_or(std::string());
}

// The value of `key` in a "key value" per line file (memory.events, pids.events...).
std::uint64_t keyed_value(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::uint64_t number_in(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  in >> v;
  return v;
}

// Subdirectories of `dir`, deepest first, then `dir` itself.
void dirs_post_order(const std::string& dir, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (e->d_type == DT_DIR) dirs_post_order(dir + "/" + name, out);
  }
  ::closedir(d);
  out.push_back(dir);
}

// The hierarchies limits are written in, and which one holds which controller.
struct LimitDirs {
  std::string memory, pids, cpu;  // host directories ("" when the controller is missing)
  bool v2 = false;
};

}  // namespace

Result<std::vector<CgroupMount>> cgroup_mounts() {
  KILN_ASSIGN_OR_RETURN(auto table, read_mountinfo());
  std::vector<CgroupMount> mounts;
  for (const MountInfo& info : table) {
    if (info.fstype != "cgroup" && info.fstype != "cgroup2") continue;
    CgroupMount m;
    m.path = info.mount_point;
    m.v2 = info.fstype == "cgroup2";
    if (!m.v2) {
      std::istringstream opts(info.super_options);
      std::string opt;
      while (std::getline(opts, opt, ',')) {
        if (opt != "rw" && opt != "ro" && opt.find('=') == std::string::npos) m.controllers.push_back(opt);
      }
    }
    mounts.push_back(std::move(m));
  }
  return mounts;
}

Result<StepCgroup> StepCgroup::create(const std::string& group, const std::string& id, const Limits& limits) {
  KILN_ASSIGN_OR_RETURN(auto mounts, cgroup_mounts());
  std::string relative = group + "/" + id;
  LimitDirs dirs;
  bool any_v1 = false;
  for (const auto& m : mounts) {
    if (m.v2) continue;
    for (const auto& c : m.controllers) {
      any_v1 = true;
      std::string dir = m.path + "/" + relative;
      if (c == "memory") dirs.memory = dir;
      if (c == "pids") dirs.pids = dir;
      if (c == "cpu") dirs.cpu = dir;
    }
  }
  if (!any_v1) {
    auto v2 = std::find_if(mounts.begin(), mounts.end(), [](const CgroupMount& m) { return m.v2; });
    if (v2 == mounts.end())
      return make_error(ErrorKind::kUnsupported,
                        "no cgroup filesystem is mounted (looked in /proc/self/mountinfo): mount cgroup2 "
                        "at /sys/fs/cgroup or the v1 hierarchies");
    dirs.v2 = true;
    dirs.memory = dirs.pids = dirs.cpu = v2->path + "/" + relative;
    // In v2 a controller is usable in a cgroup only if every ancestor
    // delegates it; enable each one separately, as some may be missing.
    std::string level = v2->path;
    std::istringstream parts(relative);
    std::string part;
    while (std::getline(parts, part, '/')) {
      for (const char* c : {"+memory", "+pids", "+cpu"})
        (void)write_control(level + "/cgroup.subtree_control", c);
      level += "/" + part;
      KILN_RETURN_IF_ERROR(ensure_dirs(level));
    }
  }

  // Owned from before its first directory exists: a failure half way
  // removes what was made (its destructor).
  StepCgroup cg(relative);
  for (const std::string* d : {&dirs.memory, &dirs.pids, &dirs.cpu}) {
    if (d->empty() || std::find(cg.dirs_.begin(), cg.dirs_.end(), *d) != cg.dirs_.end()) continue;
    KILN_RETURN_IF_ERROR(ensure_dirs(*d));
    cg.dirs_.push_back(*d);
  }

  auto fail = [&](Error e) -> std::unexpected<Error> {
    return std::unexpected(
        std::move(e).with_context(fmt::format("setting the limits of step cgroup {}", relative)));
  };
  if (limits.memory_bytes) {
    if (dirs.memory.empty())
      return fail(Error(ErrorKind::kUnsupported,
                        "a memory limit was asked but the memory cgroup controller is missing"));
    std::string value = std::to_string(*limits.memory_bytes);
    if (dirs.v2) {
      if (auto s = write_control(dirs.memory + "/memory.max", value); !s) return fail(s.error());
      (void)write_control(dirs.memory + "/memory.swap.max", "0");
    } else {
      if (auto s = write_control(dirs.memory + "/memory.limit_in_bytes", value); !s) return fail(s.error());
      // With swap accounting the limit must cover swap too, or the step
      // would swap instead of hitting its limit. Absent without swap accounting.
      if (::access((dirs.memory + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
        (void)write_control(dirs.memory + "/memory.memsw.limit_in_bytes", value);
      cg.watch_v1_oom(dirs.memory);
    }
  }
  if (limits.pids) {
    if (dirs.pids.empty())
      return fail(
          Error(ErrorKind::kUnsupported, "a pids limit was asked but the pids cgroup controller is missing"));
    if (auto s = write_control(dirs.pids + "/pids.max", std::to_string(*limits.pids)); !s)
      return fail(s.error());
  }
  if (limits.cpu_millicores) {
    if (dirs.cpu.empty())
      return fail(
          Error(ErrorKind::kUnsupported, "a cpu limit was asked but the cpu cgroup controller is missing"));
    std::uint64_t quota = std::uint64_t{*limits.cpu_millicores} * kCpuPeriodUs / 1000;
    if (dirs.v2) {
      if (auto s = write_control(dirs.cpu + "/cpu.max", fmt::format("{} {}", quota, kCpuPeriodUs)); !s)
        return fail(s.error());
    } else {
      if (auto s = write_control(dirs.cpu + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !s)
        return fail(s.error());
      if (auto s = write_control(dirs.cpu + "/cpu.cfs_quota_us", std::to_string(quota)); !s)
        return fail(s.error());
    }
  }
  return cg;
}

StepCgroup::StepCgroup(StepCgroup&& other) noexcept
    : relative_(std::exchange(other.relative_, std::string())),
      dirs_(std::move(other.dirs_)),
      removal_tried_(std::exchange(other.removal_tried_, true)),
      oom_event_fd_(std::move(other.oom_event_fd_)) {}

StepCgroup::~StepCgroup() {
  if (relative_.empty() || removal_tried_) return;
  if (auto removed = kill_and_remove(kDestructorPatience); !removed)
    spdlog::error("sandbox: step cgroup {} could not be removed: {}", relative_, removed.error().to_string());
}

void StepCgroup::watch_v1_oom(const std::string& memory_dir) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) return;
  UniqueFd control(::open((memory_dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
  // The registration holds its own references: both fds may close later.
  if (control &&
      write_control(memory_dir + "/cgroup.event_control", fmt::format("{} {}", efd.get(), control.get())))
    oom_event_fd_ = std::move(efd);
}

LimitHits StepCgroup::limit_hits() const {
  LimitHits hits;
  if (oom_event_fd_) {
    std::uint64_t count = 0;
    if (::read(oom_event_fd_.get(), &count, sizeof count) == sizeof count && count > 0) hits.memory = true;
  }
  for (const auto& dir : dirs_) {
    if (::access((dir + "/memory.events").c_str(), F_OK) == 0) {  // v2
      std::string events = read_control(dir + "/memory.events");
      if (keyed_value(events, "oom") > 0 || keyed_value(events, "oom_kill") > 0) hits.memory = true;
    } else if (::access((dir + "/memory.failcnt").c_str(), F_OK) == 0) {  // v1
      // v1 counts OOM kills only in the victim's own cgroup (the runtime's,
      // already gone); failcnt counts charges refused at *this* cgroup's
      // limit (memsw.failcnt when swap is accounted, which is checked first).
      if (number_in(dir + "/memory.failcnt") > 0 || number_in(dir + "/memory.memsw.failcnt") > 0 ||
          keyed_value(read_control(dir + "/memory.oom_control"), "oom_kill") > 0)
        hits.memory = true;
    }
    if (::access((dir + "/pids.max").c_str(), F_OK) == 0) {
      // v2 counts refused forks at the limiting cgroup; v1 counts them in
      // the forking one (the runtime's, gone by now), so there the peak
      // number of tasks reaching the limit is the sign.
      std::uint64_t max = number_in(dir + "/pids.max");  // 0 when "max"
      if (keyed_value(read_control(dir + "/pids.events"), "max") > 0 ||
          (max > 0 && number_in(dir + "/pids.peak") >= max))
        hits.pids = true;
    }
  }
  return hits;
}

std::vector<pid_t> StepCgroup::processes() const {
  std::set<pid_t> pids;
  auto mounts = cgroup_mounts();
  if (!mounts) return {};
  for (const auto& m : *mounts) {
    std::vector<std::string> dirs;
    dirs_post_order(m.path + "/" + relative_, dirs);
    for (const auto& d : dirs) {
      std::ifstream in(d + "/cgroup.procs");
      pid_t pid;
      while (in >> pid) pids.insert(pid);
    }
  }
  return {pids.begin(), pids.end()};
}

bool StepCgroup::remove_if_empty() const {
  auto mounts = cgroup_mounts();
  if (!mounts) return false;
  for (const auto& m : *mounts) {
    const std::string dir = m.path + "/" + relative_;
    for (const std::string& d : {dir + "/ctr", dir})
      if (::rmdir(d.c_str()) != 0 && errno != ENOENT) return false;
  }
  return true;
}

Status StepCgroup::kill_and_remove(std::chrono::milliseconds patience) {
  removal_tried_ = true;
  // The usual end of a step: its init was reaped and the rest of its pid
  // namespace died with it, so each directory goes with one rmdir. Any
  // refusal (a process still there, a cgroup the step made) takes the
  // long way: find, kill and wait for the processes, then remove.
  if (remove_if_empty()) return {};
  auto deadline = std::chrono::steady_clock::now() + patience;
  std::vector<pid_t> left = processes();
  while (!left.empty()) {
    for (pid_t pid : left) ::kill(pid, SIGKILL);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = processes();
  }
  if (!left.empty()) {
    return make_error(ErrorKind::kBusy,
                      fmt::format("processes {} of step cgroup {} survived SIGKILL for {} ms; they may be in "
                                  "uninterruptible sleep (look at /proc/PID/stack)",
                                  fmt::join(left, ", "), relative_, patience.count()));
  }
  KILN_ASSIGN_OR_RETURN(auto mounts, cgroup_mounts());
  std::vector<std::string> failed;
  for (const auto& m : mounts) {
    std::vector<std::string> dirs;
    dirs_post_order(m.path + "/" + relative_, dirs);
    for (const auto& d : dirs) {
      // A cgroup that just lost its last process can refuse rmdir briefly.
      bool removed = false;
      for (int attempt = 0; attempt < 50 && !removed; ++attempt) {
        removed = ::rmdir(d.c_str()) == 0 || errno == ENOENT;
        if (!removed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!removed) failed.push_back(fmt::format("{} ({})", d, std::strerror(errno)));
    }
  }
  if (!failed.empty())
    return make_error(ErrorKind::kBusy,
                      fmt::format("cannot remove cgroup directories {}", fmt::join(failed, ", ")));
  return {};
}

Result<std::vector<std::string>> StepCgroup::remove_group_leftovers(const std::string& group) {
  KILN_ASSIGN_OR_RETURN(auto mounts, cgroup_mounts());
  std::set<std::string> ids;
  for (const auto& m : mounts) {
    std::string dir = m.path + "/" + group;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (e->d_type == DT_DIR && name != "." && name != "..") ids.insert(name);
    }
    ::closedir(d);
  }
  std::vector<std::string> removed;
  for (const auto& id : ids) {
    StepCgroup cg(group + "/" + id);
    KILN_RETURN_IF_ERROR(cg.kill_and_remove(std::chrono::seconds(5)));
    removed.push_back(id);
  }
  return removed;
}

}  // namespace kiln::sandbox
