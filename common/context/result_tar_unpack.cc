// unpack_result_tar (result_tar.h): every write relative to a directory fd
// opened without following symlinks, so nothing lands outside dest_dir.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/context/result_tar.h"
#include "common/fs.h"
#include "common/path.h"
#include "common/unique_fd.h"

namespace kiln::context {
namespace {

Error refused(const std::string& name, std::string_view why) {
  return Error(ErrorKind::kInvalidArgument,
               fmt::format("output entry {:?}: {}; refused (nothing is written outside the output directory)",
                           name, why));
}

// Opens (creating with 0755 when missing) each parent of `rel` below `root_fd`, never through a symlink.
Result<UniqueFd> open_parent(int root_fd, const std::vector<std::string_view>& parts,
                             const std::string& name) {
  UniqueFd dir(::dup(root_fd));
  if (!dir) return errno_error("dup");
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string part(parts[i]);
    int fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
        return errno_error(fmt::format("output entry {}: cannot create its parent {}", name, part));
      fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
      return std::unexpected(
          refused(name, fmt::format("its parent {} is a symlink or not a directory", part)));
    if (fd < 0) return errno_error(fmt::format("output entry {}: cannot open its parent {}", name, part));
    dir = UniqueFd(fd);
  }
  return dir;
}

// Clears the entry's place unless it is a directory and a directory is wanted.
Status clear_place(int dir, const std::string& leaf, bool want_directory, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("output entry " + name + ": cannot stat its place");
  }
  if (S_ISDIR(st.st_mode)) {
    if (want_directory) return {};
    if (::unlinkat(dir, leaf.c_str(), AT_REMOVEDIR) != 0)
      return errno_error(
          fmt::format("output entry {}: a directory is in its place and cannot be removed", name));
    return {};
  }
  if (::unlinkat(dir, leaf.c_str(), 0) != 0)
    return errno_error("output entry " + name + ": cannot replace it");
  return {};
}

struct DirTimes {
  std::string rel;
  timespec mtime;
  mode_t mode;
};

}  // namespace

Result<std::uint64_t> unpack_result_tar(int fd, const std::string& dest_dir) {
  KILN_RETURN_IF_ERROR(ensure_dirs(dest_dir));
  UniqueFd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return errno_error("cannot open the output directory " + dest_dir);
  std::unique_ptr<archive, int (*)(archive*)> in(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(in.get());
  archive_read_support_filter_none(in.get());
  if (archive_read_open_fd(in.get(), fd, 1 << 16) != ARCHIVE_OK)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the output tar cannot be read: {}", archive_error_string(in.get())));
  std::uint64_t entries = 0;
  std::vector<DirTimes> dirs;
  std::vector<char> buffer(1 << 16);
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("the output tar is damaged: {}", archive_error_string(in.get())));
    const char* raw = archive_entry_pathname_utf8(entry);
    if (raw == nullptr) raw = archive_entry_pathname(entry);
    std::string name = raw != nullptr ? raw : "";
    if (name.starts_with('/')) return std::unexpected(refused(name, "an absolute name"));
    auto rel = path::normalize_relative(name);
    if (!rel) return std::unexpected(refused(name, "a name with \"..\" or NUL"));
    if (rel->empty()) continue;  // "." or "./": the output directory itself
    if (archive_entry_hardlink(entry) != nullptr) return std::unexpected(refused(name, "a hard link"));
    mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
      return std::unexpected(refused(name, "not a file, directory or symlink"));
    std::vector<std::string_view> parts = path::components(*rel);
    std::string leaf(parts.back());
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, open_parent(root.get(), parts, name));
    KILN_RETURN_IF_ERROR(clear_place(parent.get(), leaf, type == AE_IFDIR, name));
    mode_t mode = archive_entry_perm(entry) & 01777;  // setuid and setgid dropped
    timespec times[2] = {{archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)},
                         {archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)}};
    if (type == AE_IFDIR) {
      if (::mkdirat(parent.get(), leaf.c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error("output entry " + name + ": cannot create the directory");
      dirs.push_back({*rel, times[1], mode});
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink_utf8(entry);
      if (target == nullptr) target = archive_entry_symlink(entry);
      if (::symlinkat(target != nullptr ? target : "", parent.get(), leaf.c_str()) != 0)
        return errno_error("output entry " + name + ": cannot create the symlink");
      ::utimensat(parent.get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
    } else {
      UniqueFd out(
          ::openat(parent.get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!out) return errno_error("output entry " + name + ": cannot create the file");
      for (;;) {
        la_ssize_t n = archive_read_data(in.get(), buffer.data(), buffer.size());
        if (n == 0) break;
        if (n < 0)
          return make_error(ErrorKind::kInvalidArgument, fmt::format("the output tar is damaged at {}: {}",
                                                                     name, archive_error_string(in.get())));
        KILN_RETURN_IF_ERROR(write_all(
            out.get(), std::string_view(buffer.data(), static_cast<std::size_t>(n)), dest_dir + "/" + *rel));
      }
      if (::fchmod(out.get(), mode) != 0) return errno_error("output entry " + name + ": chmod");
      ::futimens(out.get(), times);
      if (int err = out.close(); err != 0) return errno_error("output entry " + name + ": close", err);
    }
    ++entries;
  }
  // Directories last, deepest first: their content changed their mtimes, and
  // a read-only mode would have stopped their content being written.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    std::vector<std::string_view> parts = path::components(it->rel);
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, open_parent(root.get(), parts, it->rel));
    std::string leaf(parts.back());
    UniqueFd dir(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return errno_error("output entry " + it->rel + ": cannot open the directory");
    if (::fchmod(dir.get(), it->mode) != 0) return errno_error("output entry " + it->rel + ": chmod");
    timespec times[2] = {it->mtime, it->mtime};
    ::futimens(dir.get(), times);
  }
  return entries;
}

}  // namespace kiln::context
