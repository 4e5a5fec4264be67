#include "worker/sandbox/private_tmpfs.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <fmt/format.h>

namespace kiln::sandbox {
namespace {

constexpr long kTmpfsMagic = 0x01021994;

}  // namespace

bool is_mount_point(const std::string& path) {
  struct stat here, parent;
  if (::stat(path.c_str(), &here) != 0 || ::stat((path + "/..").c_str(), &parent) != 0) return false;
  return here.st_dev != parent.st_dev;
}

bool is_tmpfs_mount(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == kTmpfsMagic && is_mount_point(path);
}

Status mount_private_tmpfs(const std::string& dir, std::string_view purpose) {
  if (!is_tmpfs_mount(dir) &&
      ::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=64m") != 0) {
    return errno_error(
        fmt::format("mount a tmpfs for {} at {} (the sandbox must run as root)", purpose, dir));
  }
  return {};
}

void unmount_private_tmpfs(const std::string& dir) {
  if (!dir.empty() && is_mount_point(dir)) ::umount2(dir.c_str(), MNT_DETACH);
}

}  // namespace kiln::sandbox
