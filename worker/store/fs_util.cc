#include "worker/store/fs_util.h"

#include "common/mountinfo.h"

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>

#include <dirent.h>
#include <fmt/format.h>

extern char** environ;

namespace kiln::store {

namespace {

std::string command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace

Status run_command(const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error(ErrorKind::kInternal, "run_command: empty command line");
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return errno_error("pipe for " + argv[0]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(err_pipe[1]);
  if (rc != 0) {
    close(err_pipe[0]);
    return errno_error(fmt::format("starting `{}` (is it installed?)", command_line(argv)), rc);
  }
  // Keep only the tail of stderr: the useful part of a tool's complaint is last.
  std::string err;
  char buf[4096];
  for (;;) {
    ssize_t n = read(err_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    err.append(buf, static_cast<size_t>(n));
    if (err.size() > 8192) err.erase(0, err.size() - 4096);
  }
  close(err_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno_error("waiting for `" + command_line(argv) + "`");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  std::string how = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                                      : fmt::format("was killed by signal {}", WTERMSIG(status));
  return make_error(ErrorKind::kIo,
                    fmt::format("`{}` {}{}{}", command_line(argv), how, err.empty() ? "" : ": ", err));
}

Status ensure_dir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0) return {};
  int err = errno;
  struct stat st;
  if (err == EEXIST && stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
  return errno_error("creating directory " + path, err);
}

namespace {

// nftw calls plain functions; the walk's state lives in thread-locals, so
// concurrent walks on different threads do not share anything.
thread_local int tl_remove_errno = 0;
thread_local std::string tl_remove_failed;

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  int rc = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);
  if (rc != 0 && errno != ENOENT && tl_remove_errno == 0) {
    tl_remove_errno = errno;
    tl_remove_failed = path;
  }
  return 0;  // keep going: remove as much as possible
}

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

Status remove_tree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("removing " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("removing " + path);
    return {};
  }
  tl_remove_errno = 0;
  tl_remove_failed.clear();
  if (nftw(path.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
    return errno_error("walking " + path + " to remove it");
  if (tl_remove_errno != 0) {
    return errno_error(fmt::format("removing {} (first failure at {})", path, tl_remove_failed),
                       tl_remove_errno);
  }
  return {};
}

Result<std::uint64_t> disk_usage(const std::string& path) {
  UsageWalk walk;
  tl_usage = &walk;
  int rc = nftw(path.c_str(), add_usage, 64, FTW_PHYS | FTW_MOUNT);
  tl_usage = nullptr;
  if (rc != 0) return errno_error("measuring the disk usage of " + path);
  return walk.bytes;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return errno_error("listing " + path);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
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

}  // namespace kiln::store
