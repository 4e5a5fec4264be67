// unpack_context_tar and check_symlinks_stay_inside (context_tar.h). What a
// tar may hold is decided by ContextTarReader; this file only makes the
// entries on disk, each one below a directory opened component by component
// without following symlinks.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "common/context/context_tar.h"
#include "common/context/context_tar_reader.h"
#include "common/path.h"
#include "common/unique_fd.h"

namespace kiln::context {
namespace {

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
        return refused_entry(rel, fmt::format("goes through {:?}, a symlink or a file", name));
      return errno_error(fmt::format("cannot open directory {:?} while unpacking {:?}", name, rel));
    }
    dir = UniqueFd(fd);
  }
  return dir;
}

// Removes whatever `dest_dir` already holds at `name` in `dir`, unless it is
// a directory and `keep_directory`.
Status clear_name(int dir, const std::string& name, const TarEntry& entry, bool keep_directory) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("cannot stat " + entry.name);
  }
  if (S_ISDIR(st.st_mode)) {
    if (keep_directory) return {};
    return refused_entry(entry.name, "replaces a directory");
  }
  if (::unlinkat(dir, name.c_str(), 0) != 0) return errno_error("cannot replace " + entry.name);
  return {};
}

Status write_file(ContextTarReader& reader, int dir, const std::string& name, const TarEntry& entry) {
  KILN_RETURN_IF_ERROR(clear_name(dir, name, entry, false));
  UniqueFd out(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) return errno_error("cannot create " + entry.name);
  KILN_RETURN_IF_ERROR(reader.read_content([&](std::string_view bytes) -> Status {
    while (!bytes.empty()) {
      ssize_t n = ::write(out.get(), bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("cannot write " + entry.name);
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }));
  if (::fchmod(out.get(), entry.permissions) != 0) return errno_error("cannot set the mode of " + entry.name);
  if (int err = out.close(); err != 0) return errno_error("cannot write " + entry.name, err);
  return {};
}

Status make_entry(ContextTarReader& reader, int root, const TarEntry& entry) {
  std::string last;
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_parent(root, entry.path, &last));
  switch (entry.kind) {
    case TarEntry::Kind::kDirectory: {
      KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, true));
      if (::mkdirat(dir.get(), last.c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error("cannot create directory " + entry.name);
      UniqueFd made(::openat(dir.get(), last.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (made.get() < 0) return errno_error("cannot open directory " + entry.name);
      if (::fchmod(made.get(), entry.permissions) != 0)
        return errno_error("cannot set the mode of " + entry.name);
      return {};
    }
    case TarEntry::Kind::kFile: return write_file(reader, dir.get(), last, entry);
    case TarEntry::Kind::kSymlink:
      KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, false));
      if (::symlinkat(entry.target.c_str(), dir.get(), last.c_str()) != 0)
        return errno_error("cannot create symlink " + entry.name);
      return {};
    case TarEntry::Kind::kHardLink: {
      std::string target_last;
      KILN_ASSIGN_OR_RETURN(UniqueFd target_dir, open_parent(root, entry.target, &target_last));
      KILN_RETURN_IF_ERROR(clear_name(dir.get(), last, entry, false));
      if (::linkat(target_dir.get(), target_last.c_str(), dir.get(), last.c_str(), 0) != 0)
        return errno_error(fmt::format("cannot link {:?} to {:?}", entry.name, entry.target));
      return {};
    }
  }
  return {};
}

}  // namespace

Status unpack_context_tar(const std::string& tar_path, const std::string& dest_dir) {
  KILN_ASSIGN_OR_RETURN(ContextTarReader reader, ContextTarReader::open(tar_path));
  UniqueFd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return errno_error("cannot open " + dest_dir);
  for (;;) {
    // The last next() checks that the symlinks made stay inside.
    KILN_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, reader.next());
    if (!entry) return {};
    KILN_RETURN_IF_ERROR(make_entry(reader, root.get(), *entry));
  }
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
      return refused_entry(rel, fmt::format("is a symlink to {:?}, which leads outside the context", target));
    }
  }
  return {};
}

}  // namespace kiln::context
