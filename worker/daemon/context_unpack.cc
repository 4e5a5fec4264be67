#include "worker/daemon/context_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/path.h"
#include "common/unique_fd.h"

namespace kiln::worker {
namespace {

std::unexpected<Error> refuse(const std::string& entry, std::string_view why) {
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("the build context holds {:?}, which {}; the worker refuses to unpack it "
                                "(fix the context and resubmit)",
                                entry, why));
}

// The directory that holds `rel`'s last component, opened by walking from
// `root` one component at a time without following symlinks (so nothing is
// ever written through one). Missing directories are created.
Result<UniqueFd> open_parent(int root, const std::string& rel, std::string* last) {
  auto parts = path::components(rel);
  if (parts.empty()) return make_error(ErrorKind::kInternal, "open_parent of the root");
  *last = std::string(parts.back());
  UniqueFd dir(::dup(root));
  if (dir.get() < 0) return errno_error("dup");
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string name(parts[i]);
    int fd = ::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST)
        return errno_error(fmt::format("cannot create directory {:?} of the build context", name));
      fd = ::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      if (errno == ELOOP || errno == ENOTDIR)
        return refuse(rel, fmt::format("goes through {:?}, a symlink or a file", name));
      return errno_error(fmt::format("cannot open directory {:?} while unpacking {:?}", name, rel));
    }
    dir = UniqueFd(fd);
  }
  return dir;
}

// Removes whatever is at `name` in `dir` unless it is a directory and
// `keep_directory` (a tar may list a path twice; the last entry wins).
Status clear_name(int dir, const std::string& name, const std::string& entry, bool keep_directory) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("cannot stat " + entry);
  }
  if (S_ISDIR(st.st_mode)) {
    if (keep_directory) return {};
    return refuse(entry, "replaces a directory listed earlier");
  }
  if (::unlinkat(dir, name.c_str(), 0) != 0) return errno_error("cannot replace " + entry);
  return {};
}

Status write_file(archive* in, int dir, const std::string& name, const std::string& entry, mode_t perm) {
  KILN_RETURN_IF_ERROR(clear_name(dir, name, entry, false));
  UniqueFd out(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) return errno_error("cannot create " + entry);
  for (;;) {
    const void* block = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(in, &block, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("cannot read {:?} from the context tar: {}", entry,
                                    archive_error_string(in) ? archive_error_string(in) : "unknown error"));
    const char* p = static_cast<const char*>(block);
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::pwrite(out.get(), p + done, size - done, offset + static_cast<off_t>(done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("cannot write " + entry);
      }
      done += static_cast<std::size_t>(n);
    }
  }
  // Sparse files end in a hole: the size comes from the header.
  if (::fchmod(out.get(), perm) != 0) return errno_error("cannot set the mode of " + entry);
  return {};
}

// True when `rel` names a regular file reached without any symlink.
bool is_plain_file(int root, const std::string& rel) {
  std::string last;
  auto parent = open_parent(root, rel, &last);
  if (!parent) return false;
  struct stat st {};
  return ::fstatat(parent->get(), last.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

std::string_view type_name(mode_t type) {
  switch (type) {
    case AE_IFCHR: return "is a character device";
    case AE_IFBLK: return "is a block device";
    case AE_IFIFO: return "is a fifo";
    case AE_IFSOCK: return "is a socket";
    default: return "is of an unknown file type";
  }
}

}  // namespace

Status unpack_context_tar(const std::string& tar_path, const std::string& dest_dir) {
  archive* in = archive_read_new();
  if (in == nullptr) return make_error(ErrorKind::kInternal, "archive_read_new failed");
  struct Closer {
    archive* a;
    ~Closer() { archive_read_free(a); }
  } closer{in};
  // Built-in decompressors only (no external programs).
  archive_read_support_filter_gzip(in);
  archive_read_support_filter_zstd(in);
  archive_read_support_filter_xz(in);
  archive_read_support_filter_bzip2(in);
  archive_read_support_format_tar(in);
  if (archive_read_open_filename(in, tar_path.c_str(), 1 << 20) != ARCHIVE_OK)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("cannot open the context tar {}: {}", tar_path,
                                  archive_error_string(in) ? archive_error_string(in) : "unknown error"));
  UniqueFd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return errno_error("cannot open " + dest_dir);

  bool any_symlink = false;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("the context tar {} is damaged: {}", tar_path,
                                    archive_error_string(in) ? archive_error_string(in) : "unknown error"));
    const char* raw = archive_entry_pathname(e);
    std::string entry = raw ? raw : "";
    if (!entry.empty() && entry.front() == '/') return refuse(entry, "is an absolute path");
    auto rel = path::normalize_relative(entry);
    if (!rel) return refuse(entry, "contains \"..\" or a NUL byte");
    const mode_t perm = archive_entry_perm(e) & 0777;
    if (const char* link = archive_entry_hardlink(e)) {
      auto target = path::normalize_relative(link);
      if (!target || target->empty() || (link[0] == '/'))
        return refuse(entry, fmt::format("is a hard link to {:?}, outside the context", link));
      if (rel->empty()) return refuse(entry, "is a hard link in place of the context's root");
      if (!is_plain_file(root.get(), *target))
        return refuse(entry,
                      fmt::format("is a hard link to {:?}, which is not a file unpacked before it", link));
      std::string target_last;
      KILN_ASSIGN_OR_RETURN(UniqueFd target_dir, open_parent(root.get(), *target, &target_last));
      std::string last;
      KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_parent(root.get(), *rel, &last));
      KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, false));
      if (::linkat(target_dir.get(), target_last.c_str(), dir.get(), last.c_str(), 0) != 0)
        return errno_error(fmt::format("cannot link {:?} to {:?}", entry, link));
      continue;
    }
    const mode_t type = archive_entry_filetype(e);
    if (rel->empty()) {
      if (type == AE_IFDIR) continue;  // "./": the destination itself
      return refuse(entry, "replaces the context's root");
    }
    std::string last;
    switch (type) {
      case AE_IFDIR: {
        KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_parent(root.get(), *rel, &last));
        KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, true));
        if (::mkdirat(dir.get(), last.c_str(), 0700) != 0 && errno != EEXIST)
          return errno_error("cannot create directory " + entry);
        UniqueFd made(::openat(dir.get(), last.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (made.get() < 0) return errno_error("cannot open directory " + entry);
        if (::fchmod(made.get(), perm) != 0) return errno_error("cannot set the mode of " + entry);
        break;
      }
      case AE_IFREG: {
        KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_parent(root.get(), *rel, &last));
        KILN_RETURN_IF_ERROR(write_file(in, dir.get(), last, entry, perm));
        break;
      }
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        std::string link = target ? target : "";
        if (link.empty()) return refuse(entry, "is a symlink with no target");
        if (link.front() == '/')
          return refuse(entry, fmt::format("is a symlink to the absolute path {:?}", link));
        KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_parent(root.get(), *rel, &last));
        KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, false));
        if (::symlinkat(link.c_str(), dir.get(), last.c_str()) != 0)
          return errno_error("cannot create symlink " + entry);
        any_symlink = true;
        break;
      }
      default: return refuse(entry, type_name(type));
    }
  }
  // Where a link leads depends on the links created after it too: checked
  // once the whole tree is there.
  if (any_symlink) KILN_RETURN_IF_ERROR(check_symlinks_stay_inside(dest_dir));
  return {};
}

Status check_symlinks_stay_inside(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot read {}: {}", root, ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot read {}: {}", root, ec.message()));
    if (!it->is_symlink(ec)) continue;
    // Lexically: fs::relative would resolve the very links being checked.
    std::string rel = it->path().lexically_relative(root).string();
    if (auto resolved = path::resolve_beneath(root, rel, path::AbsoluteSymlinks::kReject); !resolved) {
      std::error_code read_ec;
      std::string target = fs::read_symlink(it->path(), read_ec).string();
      return refuse(rel, fmt::format("is a symlink to {:?}, which leads outside the context", target));
    }
  }
  return {};
}

}  // namespace kiln::worker
