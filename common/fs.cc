#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "common/unique_fd.h"

namespace kiln {

Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot read " + path);
  std::string out;
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0)
    out.reserve(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), max_bytes));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read " + path);
    if (n == 0) break;
    if (static_cast<std::size_t>(n) > max_bytes - out.size())
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("{} is larger than the {} bytes expected of it", path, max_bytes));
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Status write_all(int fd, std::string_view data, std::string_view name) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("cannot write {}", name));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status write_file(const std::string& path, std::string_view content, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return errno_error("cannot create " + path);
  KILN_RETURN_IF_ERROR(write_all(fd.get(), content, path));
  if (int err = fd.close(); err != 0) return errno_error("cannot write " + path, err);
  return {};
}

Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  std::string tmp = path + ".tmp-XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return errno_error("cannot create a temporary file beside " + path);
  Status written = write_all(fd.get(), content, tmp);
  if (written && ::fchmod(fd.get(), mode) != 0) written = errno_error("cannot set the mode of " + tmp);
  if (int err = fd.close(); err != 0 && written) written = errno_error("cannot write " + tmp, err);
  if (written && ::rename(tmp.c_str(), path.c_str()) != 0) written = errno_error("cannot replace " + path);
  if (!written) ::unlink(tmp.c_str());
  return written;
}

Status ensure_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return {};
  int err = errno;
  struct stat st {};
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
  return errno_error("cannot create directory " + path, err);
}

Status ensure_dirs(const std::string& path, mode_t mode) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  for (std::size_t slash = dir.find('/', 1); slash != std::string::npos; slash = dir.find('/', slash + 1)) {
    if (dir[slash - 1] == '/') continue;  // "a//b": nothing to make between the slashes
    KILN_RETURN_IF_ERROR(ensure_dir(dir.substr(0, slash), 0755));
  }
  return ensure_dir(dir, mode);
}

namespace {

// nftw calls plain functions; the walk's state lives in thread-locals, so
// concurrent walks on different threads share nothing.
thread_local int tl_remove_errno = 0;
thread_local std::string tl_remove_failed;

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  int rc = (type == FTW_DP || type == FTW_D) ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT && tl_remove_errno == 0) {
    tl_remove_errno = errno;
    tl_remove_failed = path;
  }
  return 0;  // keep going: remove as much as possible
}

}  // namespace

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    // ENOTDIR: a parent is a file, so nothing is there to remove either.
    if (errno == ENOENT || errno == ENOTDIR) return {};
    return errno_error("cannot remove " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("cannot remove " + path);
    return {};
  }
  tl_remove_errno = 0;
  tl_remove_failed.clear();
  if (::nftw(path.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
    return errno_error("cannot walk " + path + " to remove it");
  if (tl_remove_errno != 0)
    return errno_error(fmt::format("cannot remove {} (first failure at {})", path, tl_remove_failed),
                       tl_remove_errno);
  return {};
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_error("cannot list " + path);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return errno_error("cannot list " + path, err);
  std::sort(names.begin(), names.end());
  return names;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string executable_dir() {
  char buffer[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return ".";
  std::string exe(buffer, static_cast<std::size_t>(n));
  std::size_t slash = exe.rfind('/');
  return slash == std::string::npos || slash == 0 ? (slash == 0 ? "/" : ".") : exe.substr(0, slash);
}

}  // namespace kiln
