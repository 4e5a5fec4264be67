#include "worker/sandbox/idmap.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "common/mountinfo.h"

namespace kiln::sandbox {
namespace {

constexpr long kOverlayfsMagic = 0x794c7630;

std::string filesystem_name(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) return "its filesystem";
  if (fs.f_type == kOverlayfsMagic) return "overlayfs";
  return fmt::format("its filesystem (type 0x{:x})", static_cast<unsigned long>(fs.f_type));
}

}  // namespace

Result<UniqueFd> open_user_namespace(const IdRange& range) {
  // A child enters a new user namespace; this process writes its mapping
  // and opens it. The child only waits (system calls only: we may be
  // multi-threaded) and exits once `go` closes.
  KILN_ASSIGN_OR_RETURN(Pipe ready, make_pipe(O_CLOEXEC));
  KILN_ASSIGN_OR_RETURN(Pipe go, make_pipe(O_CLOEXEC));
  pid_t child = ::fork();
  if (child < 0) return errno_error("fork to make a user namespace");
  if (child == 0) {
    // Our copies of the ends the parent uses, or `go` never reaches end-of-file.
    ::close(go.write.get());
    ::close(ready.read.get());
    char status = ::unshare(CLONE_NEWUSER) == 0 ? 0 : 1;
    (void)::write(ready.write.get(), &status, 1);
    char byte;
    while (::read(go.read.get(), &byte, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  ready.write.reset();
  go.read.reset();
  struct Reap {
    pid_t pid;
    Pipe& go;
    ~Reap() {
      go.write.reset();
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  } reap{child, go};
  char status = 1;
  if (::read(ready.read.get(), &status, 1) != 1 || status != 0)
    return make_error(ErrorKind::kIo, "cannot make a user namespace (unshare(CLONE_NEWUSER) failed)");
  const std::string map = fmt::format("0 {} {}\n", range.host_first, range.count);
  for (const char* file : {"uid_map", "gid_map"}) {
    std::string path = fmt::format("/proc/{}/{}", child, file);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || ::write(fd.get(), map.data(), map.size()) != static_cast<ssize_t>(map.size()))
      return errno_error(fmt::format("write {:?} to {}", map, path));
  }
  UniqueFd ns(::open(fmt::format("/proc/{}/ns/user", child).c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return errno_error("open the new user namespace");
  return ns;
}

Result<StepView> StepView::create(std::string dir) {
  if (::mkdir(dir.c_str(), 0711) != 0) return errno_error(fmt::format("create {}", dir));
  // mkdir applies the umask.
  if (::chmod(dir.c_str(), 0711) != 0) return errno_error(fmt::format("chmod {}", dir));
  return StepView(std::move(dir));
}

StepView::StepView(StepView&& other) noexcept
    : dir_(std::exchange(other.dir_, std::string())), mounts_(std::move(other.mounts_)) {}

StepView::~StepView() {
  if (dir_.empty()) return;
  for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
    if (::umount2(it->c_str(), MNT_DETACH) != 0)
      spdlog::error("sandbox: cannot detach the idmapped mount {}: {}", *it, std::strerror(errno));
  }
  // remove_tree does not cross into another filesystem, but an idmapped
  // mount of the same filesystem looks like the same one: with a mount left
  // it would remove the step's root filesystem through it.
  auto left = detach_mounts_below(dir_);
  if (!left) {
    spdlog::error("sandbox: {}; {} is left", left.error().to_string(), dir_);
    return;
  }
  if (auto s = remove_tree(dir_); !s) spdlog::error("sandbox: {}", s.error().to_string());
}

Result<std::string> StepView::add_idmapped(const std::string& host_path, const std::string& name,
                                           int userns_fd) {
  const std::string target = dir_ + "/" + name;
  KILN_RETURN_IF_ERROR(ensure_dir(target, 0711));
  UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, host_path.c_str(),
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)));
  if (!tree) return errno_error(fmt::format("open_tree {} to idmap it", host_path));
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<std::uint64_t>(userns_fd);
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
    int err = errno;
    if (err == EINVAL || err == EPERM || err == ENOTSUP)
      return make_error(
          ErrorKind::kUnsupported,
          fmt::format("a step in a user namespace needs an idmapped mount of {}, and the kernel "
                      "cannot idmap {} ({}): with --userns use a btrfs:, xfs: or rsync: store",
                      host_path, filesystem_name(host_path), std::strerror(err)));
    return errno_error(fmt::format("idmap a mount of {}", host_path), err);
  }
  if (::syscall(SYS_move_mount, tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return errno_error(fmt::format("attach the idmapped mount of {} at {}", host_path, target));
  mounts_.push_back(target);
  return target;
}

namespace {

Result<std::vector<std::string>> mounts_below(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(auto table, read_mountinfo());
  std::vector<std::string> points;
  for (const MountInfo& m : table) {
    if (m.mount_point == dir || m.mount_point.starts_with(dir + "/")) points.push_back(m.mount_point);
  }
  return points;
}

}  // namespace

Result<int> detach_mounts_below(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> points, mounts_below(dir));
  // Deepest first; a path listed twice (stacked mounts) is detached twice.
  std::ranges::sort(points, [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  int detached = 0;
  for (const std::string& p : points)
    if (::umount2(p.c_str(), MNT_DETACH) == 0) ++detached;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> left, mounts_below(dir));
  if (!left.empty())
    return make_error(
        ErrorKind::kBusy,
        fmt::format("cannot detach the mounts {}: remove them by hand (umount -l)", fmt::join(left, ", ")));
  return detached;
}

}  // namespace kiln::sandbox
