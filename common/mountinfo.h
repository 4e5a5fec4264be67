// The mount table of this process, read from /proc/self/mountinfo.
//
//   KILN_ASSIGN_OR_RETURN(auto mounts, read_mountinfo());
//   for (const MountInfo& m : mounts)
//     if (m.fstype == "overlay" && m.mount_point.starts_with(root)) ...
//
// Used by the store (stale mounts beneath its root) and the sandbox (where
// the cgroup hierarchies are). Thread safety: pure reads of procfs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln {

struct MountInfo {
  std::string mount_point;    // unescaped
  std::string mount_options;  // per-mount options, e.g. "rw,relatime"
  std::string fstype;         // e.g. "ext4", "overlay", "cgroup2"
  std::string source;         // e.g. "/dev/vda", "overlay"
  std::string super_options;  // per-superblock options, e.g. "rw,memory"
};

// Parses the text of a mountinfo file (see proc(5)); malformed lines are skipped.
std::vector<MountInfo> parse_mountinfo(std::string_view text);

// Reads and parses `path` (default: this process's mount table).
Result<std::vector<MountInfo>> read_mountinfo(const std::string& path = "/proc/self/mountinfo");

// Undoes mountinfo's escaping of space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view field);

}  // namespace kiln
