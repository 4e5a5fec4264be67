// Free and total bytes of a filesystem (statvfs), for disk-space reports and
// the worker's prune threshold.
//
//   KILN_ASSIGN_OR_RETURN(DiskSpace space, disk_space("/var/lib/kiln/w1/store"));
//   if (space.free_bytes < threshold) ...
//
// Contract: `path` need not exist yet: the filesystem it would be on (that
// of its nearest existing ancestor) is measured, so a directory a process
// has not created yet still has an answer. Errors: kIo (with errno) when no
// ancestor can be measured. Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace kiln::builder {

struct DiskSpace {
  std::uint64_t free_bytes = 0;   // available to unprivileged users (f_bavail)
  std::uint64_t total_bytes = 0;  // the filesystem's size
};

Result<DiskSpace> disk_space(const std::string& path);

}  // namespace kiln::builder
