#include "worker/store/fs_util.h"

#include "common/mountinfo.h"
#include "common/subprocess.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include <fmt/format.h>

namespace kiln::store {

Status run_command(const std::vector<std::string>& argv) {
  // The tools' complaints end up in errors: keep the tail of stderr, where
  // the useful part is. Signals and process group stay kiln's, as a shell's
  // child's would.
  KILN_ASSIGN_OR_RETURN(CommandOutput out, kiln::run_command(argv, {.spawn = {.reset_signals = false},
                                                                    .capture = Capture::kStderr,
                                                                    .keep_bytes = 4096}));
  if (out.ok()) return {};
  std::string err = std::move(out.output);
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  return make_error(ErrorKind::kIo,
                    fmt::format("`{}` {}{}{}", format_command(argv), describe_wait_status(out.wait_status),
                                err.empty() ? "" : ": ", err));
}

namespace {

// nftw calls plain functions; the walk's state lives in a thread-local, so
// concurrent walks on different threads do not share anything.
struct UsageWalk {
  std::uint64_t bytes = 0;
  std::set<std::pair<dev_t, ino_t>> linked;
};
thread_local UsageWalk* tl_usage = nullptr;

int add_usage(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS) return 0;
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
    if (!tl_usage->linked.emplace(st->st_dev, st->st_ino).second) return 0;
  }
  tl_usage->bytes += static_cast<std::uint64_t>(st->st_blocks) * 512;
  return 0;
}

}  // namespace

Result<std::uint64_t> disk_usage(const std::string& path) {
  UsageWalk walk;
  tl_usage = &walk;
  int rc = nftw(path.c_str(), add_usage, 64, FTW_PHYS | FTW_MOUNT);
  tl_usage = nullptr;
  if (rc != 0) return errno_error("measuring the disk usage of " + path);
  return walk.bytes;
}

Status rename_path(const std::string& src, const std::string& dst) {
  if (renameat2(AT_FDCWD, src.c_str(), AT_FDCWD, dst.c_str(), RENAME_NOREPLACE) != 0)
    return errno_error(fmt::format("renaming {} to {}", src, dst));
  return {};
}

Status exchange_paths(const std::string& a, const std::string& b) {
  if (renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0)
    return errno_error(fmt::format("exchanging {} and {}", a, b));
  return {};
}

Result<std::int64_t> filesystem_magic(const std::string& path) {
  struct statfs st;
  if (statfs(path.c_str(), &st) != 0) return errno_error("statfs " + path);
  return static_cast<std::int64_t>(st.f_type);
}

std::string filesystem_name(std::int64_t magic) {
  switch (static_cast<std::uint32_t>(magic)) {
    case 0xEF53u: return "ext4";
    case 0x9123683Eu: return "btrfs";
    case 0x58465342u: return "xfs";
    case 0x01021994u: return "tmpfs";
    case 0x794C7630u: return "overlayfs";
    case 0x6969u: return "nfs";
    case 0x2FC12FC1u: return "zfs";
    case 0xF2F52010u: return "f2fs";
    default: return fmt::format("filesystem type {:#x}", static_cast<std::uint32_t>(magic));
  }
}

Result<std::vector<std::string>> mounts_beneath(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(auto table, read_mountinfo());
  std::string prefix = dir;
  if (prefix.empty() || prefix.back() != '/') prefix += '/';
  std::vector<std::string> found;
  for (MountInfo& m : table)
    if (m.mount_point.starts_with(prefix)) found.push_back(std::move(m.mount_point));
  // Deepest first, so nested mounts go before the mounts they sit on.
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a > b;
  });
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

Status unmount(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    return errno_error("unmounting " + path);
  return {};
}

Result<double> percent_free(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return errno_error("statvfs " + path);
  if (st.f_blocks == 0) return 0.0;
  return 100.0 * static_cast<double>(st.f_bavail) / static_cast<double>(st.f_blocks);
}

std::string escape_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    bool keep =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (keep) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

std::string unescape_name(std::string_view escaped) {
  std::string out;
  for (size_t i = 0; i < escaped.size(); ++i) {
    int hi = i + 2 < escaped.size() ? hex_value(escaped[i + 1]) : -1;
    int lo = i + 2 < escaped.size() ? hex_value(escaped[i + 2]) : -1;
    if (escaped[i] == '%' && hi >= 0 && lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += escaped[i];
    }
  }
  return out;
}

std::string this_boot_id() {
  auto boot = read_file("/proc/sys/kernel/random/boot_id", 64);
  if (!boot) return "";
  std::string id = *boot;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  return id;
}

Status sync_filesystem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error("open " + path + " to sync its filesystem");
  int rc = ::syncfs(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    return errno_error("syncing the filesystem of " + path);
  }
  return {};
}

}  // namespace kiln::store
