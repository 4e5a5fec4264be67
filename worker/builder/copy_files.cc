#include "worker/builder/copy_files.h"

#include <cerrno>
#include <set>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/path.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace kiln::builder {

namespace {

using ids::ManifestEntry;

// The container path `parent/name` ("/" + name at the root).
std::string container_join(std::string_view parent, std::string_view name) {
  if (name.empty()) return std::string(parent);
  if (parent == "/") return "/" + std::string(name);
  return std::string(parent) + "/" + std::string(name);
}

std::string_view container_dirname(std::string_view p) {
  std::size_t slash = p.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return p.substr(0, slash);
}

std::string_view basename_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// Writes one copy: remembers the directories it changed so their mtimes can
// be fixed once everything is in place (creating an entry bumps its parent's
// mtime; changing an inode's own times does not touch the parent's).
class CopyWriter {
 public:
  CopyWriter(const std::string& rootfs, const spec::UnixUser& owner, const CancelToken& cancel)
      : rootfs_(rootfs), owner_(owner), cancel_(cancel) {}

  // The host path of container path `cpath`'s parent, resolved beneath the
  // rootfs, plus its last component.
  Result<std::string> host_path_of(const std::string& cpath) {
    if (cpath == "/") return rootfs_;
    std::string parent(container_dirname(cpath));
    KILN_ASSIGN_OR_RETURN(std::string host_parent,
                          path::resolve_beneath(rootfs_, parent, path::AbsoluteSymlinks::kRelativeToRoot));
    return path::join(host_parent, basename_of(cpath));
  }

  // Makes the directory `cpath` and any missing parents (0755, owned by the
  // user). Existing directories are followed, symlinks to directories too
  // (as a container would see them), and left as they are.
  Status ensure_directory(const std::string& cpath) {
    KILN_ASSIGN_OR_RETURN(std::string host,
                          path::resolve_beneath(rootfs_, cpath, path::AbsoluteSymlinks::kRelativeToRoot));
    // resolve_beneath resolved every existing component; what remains is a
    // lexical tail of missing ones, made here one by one.
    std::string current = rootfs_;
    std::string_view rest = std::string_view(host).substr(rootfs_.size());
    for (std::string_view part : path::components(rest)) {
      std::string next = path::join(current, part);
      struct stat st {};
      if (::lstat(next.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode))
          return make_error(ErrorKind::kInvalidArgument,
                            fmt::format("cannot copy into {}: {} is not a directory in the image", cpath,
                                        container_of(next)));
      } else if (errno != ENOENT) {
        return errno_error("cannot stat " + next);
      } else {
        KILN_RETURN_IF_ERROR(make_directory(next));
        touched_dirs_.insert(current);
      }
      current = std::move(next);
    }
    return {};
  }

  Status write_entry(const std::string& src_root, const ManifestEntry& entry, const std::string& cpath) {
    if (cancel_.cancelled()) return make_error(ErrorKind::kCancelled, "copy cancelled");
    KILN_ASSIGN_OR_RETURN(std::string host, host_path_of(cpath));
    struct stat st {};
    bool exists = ::lstat(host.c_str(), &st) == 0;
    if (!exists && errno != ENOENT) return errno_error("cannot stat " + host);
    if (entry.type == ManifestEntry::Type::kDirectory) {
      if (exists && S_ISDIR(st.st_mode)) {
        copied_dirs_.insert(host);
        return {};
      }
      if (exists) KILN_RETURN_IF_ERROR(remove_non_directory(host, cpath));
      KILN_RETURN_IF_ERROR(make_directory(host));
      if (host != rootfs_) touched_dirs_.insert(std::string(container_dirname_host(host)));
      copied_dirs_.insert(host);
      return {};
    }
    if (exists && S_ISDIR(st.st_mode))
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("cannot copy {} to {}: a directory is already there in the image; "
                                    "copy into it with a destination ending in '/'",
                                    entry.path.empty() ? "." : entry.path, cpath));
    if (exists) KILN_RETURN_IF_ERROR(remove_non_directory(host, cpath));
    touched_dirs_.insert(std::string(container_dirname_host(host)));
    if (entry.type == ManifestEntry::Type::kSymlink) return write_symlink(entry, host);
    if (entry.type == ManifestEntry::Type::kFile) return write_file(src_root, entry, host);
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("cannot copy {}: unsupported file type", entry.path));
  }

  // Gives every directory this copy wrote or changed its final metadata.
  Status finish() {
    for (const std::string& dir : copied_dirs_) {
      if (::lchown(dir.c_str(), owner_.uid, owner_.gid) != 0) return errno_error("cannot chown " + dir);
      if (::chmod(dir.c_str(), 0755) != 0) return errno_error("cannot chmod " + dir);
    }
    for (const auto* set : {&copied_dirs_, &touched_dirs_}) {
      for (const std::string& dir : *set) KILN_RETURN_IF_ERROR(set_fixed_mtime(dir));
    }
    return {};
  }

 private:
  std::string container_of(const std::string& host) const {
    std::string_view rest = std::string_view(host).substr(rootfs_.size());
    return rest.empty() ? "/" : std::string(rest);
  }

  static std::string_view container_dirname_host(std::string_view host) {
    return host.substr(0, host.rfind('/'));
  }

  Status make_directory(const std::string& host) {
    if (::mkdir(host.c_str(), 0755) != 0) return errno_error("cannot create directory " + host);
    if (::lchown(host.c_str(), owner_.uid, owner_.gid) != 0) return errno_error("cannot chown " + host);
    // mkdir honours the umask; the mode is part of what the id names.
    if (::chmod(host.c_str(), 0755) != 0) return errno_error("cannot chmod " + host);
    return set_fixed_mtime(host);
  }

  Status remove_non_directory(const std::string& host, const std::string& cpath) {
    if (::unlink(host.c_str()) != 0)
      return errno_error(fmt::format("cannot replace {} (host path {})", cpath, host));
    return {};
  }

  static Status set_fixed_mtime(const std::string& host) {
    struct timespec times[2] = {{kCopiedMtime, 0}, {kCopiedMtime, 0}};
    if (::utimensat(AT_FDCWD, host.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return errno_error("cannot set the time of " + host);
    return {};
  }

  Status write_symlink(const ManifestEntry& entry, const std::string& host) {
    if (::symlink(entry.target.c_str(), host.c_str()) != 0)
      return errno_error("cannot create symlink " + host);
    if (::lchown(host.c_str(), owner_.uid, owner_.gid) != 0) return errno_error("cannot chown " + host);
    return set_fixed_mtime(host);
  }

  Status write_file(const std::string& src_root, const ManifestEntry& entry, const std::string& host) {
    std::string src = path::join(src_root, entry.path);
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!in) return errno_error(fmt::format("cannot read {} (source {})", src, entry.path));
    mode_t mode = entry.executable ? 0755 : 0644;
    UniqueFd out(::open(host.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!out) return errno_error("cannot create " + host);
    Status status = copy_content(in.get(), out.get(), src, host, entry);
    if (status && ::fchown(out.get(), owner_.uid, owner_.gid) != 0)
      status = errno_error("cannot chown " + host);
    // After fchown (which may clear mode bits) and regardless of the umask.
    if (status && ::fchmod(out.get(), mode) != 0) status = errno_error("cannot chmod " + host);
    struct timespec times[2] = {{kCopiedMtime, 0}, {kCopiedMtime, 0}};
    if (status && ::futimens(out.get(), times) != 0) status = errno_error("cannot set the time of " + host);
    if (int err = out.close(); err != 0 && status) status = errno_error("cannot write " + host, err);
    return status;
  }

  Status copy_content(int in, int out, const std::string& src, const std::string& host,
                      const ManifestEntry& entry) {
    Sha256 hash;
    std::vector<char> buf(1 << 17);
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("cannot read " + src);
      }
      if (n == 0) break;
      hash.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::write(out, buf.data() + done, static_cast<std::size_t>(n - done));
        if (w < 0) {
          if (errno == EINTR) continue;
          return errno_error("cannot write " + host);
        }
        done += w;
      }
      if (cancel_.cancelled()) return make_error(ErrorKind::kCancelled, "copy cancelled");
    }
    // The step id names the content the manifest saw; anything else must not
    // be saved under it.
    if (hash.digest() != entry.content)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("{} changed while it was copied; run the build again", entry.path));
    return {};
  }

  const std::string& rootfs_;
  spec::UnixUser owner_;
  const CancelToken& cancel_;
  std::set<std::string> copied_dirs_;   // directories the copy wrote (get owner, 0755, mtime)
  std::set<std::string> touched_dirs_;  // directories whose entries changed (get the mtime)
};

// The path of `entry` relative to its source (`source` is the normalised source path).
std::string_view relative_to_source(const ids::ManifestEntry& entry, const std::string& source) {
  std::string_view p = entry.path;
  if (source.empty()) return p;
  if (p.size() == source.size()) return "";
  return p.substr(source.size() + 1);
}

}  // namespace

Status copy_into_rootfs(const std::string& rootfs, const std::vector<CopySourceTree>& sources,
                        const std::string& dst, const spec::UnixUser& owner, const CancelToken& cancel) {
  if (sources.empty()) return make_error(ErrorKind::kInvalidArgument, "no source paths to copy");
  bool into = dst.ends_with('/');
  if (!into && sources.size() > 1)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("copying {} sources needs a destination directory: end {} with '/'",
                                  sources.size(), dst));
  std::string dst_path = dst;
  while (dst_path.size() > 1 && dst_path.ends_with('/')) dst_path.pop_back();
  if (!dst_path.starts_with('/'))
    return make_error(ErrorKind::kInternal, "copy destination " + dst + " is not absolute");

  CopyWriter writer(rootfs, owner, cancel);
  if (into) {
    KILN_RETURN_IF_ERROR(writer.ensure_directory(dst_path));
  } else {
    KILN_RETURN_IF_ERROR(writer.ensure_directory(std::string(container_dirname(dst_path))));
  }
  for (const CopySourceTree& source : sources) {
    const std::string& src = source.manifest.source;
    std::string target = into ? container_join(dst_path, basename_of(src)) : dst_path;
    // Entries are in byte order of their paths, so a directory always comes
    // before what it holds.
    for (const ids::ManifestEntry& entry : source.manifest.entries) {
      std::string cpath = container_join(target, relative_to_source(entry, src));
      if (auto s = writer.write_entry(source.root, entry, cpath); !s)
        return std::unexpected(std::move(s.error()).with_context("copying " + (src.empty() ? "." : src)));
    }
  }
  return writer.finish();
}

}  // namespace kiln::builder
