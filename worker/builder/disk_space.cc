#include "worker/builder/disk_space.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <filesystem>

namespace kiln::builder {

Result<DiskSpace> disk_space(const std::string& path) {
  struct statvfs st {};
  std::filesystem::path at(path);
  while (::statvfs(at.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT || !at.has_relative_path()) return errno_error("statvfs " + at.string(), err);
    at = at.parent_path();
  }
  return DiskSpace{static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize,
                   static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize};
}

}  // namespace kiln::builder
