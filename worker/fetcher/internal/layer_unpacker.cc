#include "worker/fetcher/internal/layer_unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/format.h"
#include "common/fs.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace kiln::fetcher::internal {
namespace {

constexpr std::size_t kReadBlock = 1 << 20;

// ---------------------------------------------------------------------------
// Reading: blob bytes -> (digest, decompression, digest) -> tar entries.
//
// libarchive pulls bytes through C callbacks, which cannot return an Error;
// the callbacks keep the first error here and return -1, and the caller
// reports it in preference to libarchive's own message.

class BlobStream {
 public:
  BlobStream(BlobReader& reader, const LayerPosition& position, const Progress& progress, std::uint64_t total)
      : reader_(reader), position_(position), progress_(progress), total_(total), buffer_(kReadBlock) {}

  // Reads the first block so its magic bytes can be looked at.
  Status peek() {
    KILN_ASSIGN_OR_RETURN(std::size_t n, read_block());
    pending_ = n;
    return {};
  }
  std::string_view first_bytes() const { return {buffer_.data(), pending_}; }

  // Next block of the blob (empty at the end). Valid until the next call.
  Result<std::string_view> next() {
    if (pending_ > 0) {
      std::string_view out(buffer_.data(), pending_);
      pending_ = 0;
      return out;
    }
    KILN_ASSIGN_OR_RETURN(std::size_t n, read_block());
    return std::string_view(buffer_.data(), n);
  }

  Status drain() {
    while (true) {
      KILN_ASSIGN_OR_RETURN(std::string_view block, next());
      if (block.empty()) return {};
    }
  }

  std::string hex_digest() { return hash_.hex_digest(); }
  std::uint64_t bytes() const { return bytes_; }

  std::optional<Error> error;  // set by the libarchive callbacks

 private:
  Result<std::size_t> read_block() {
    KILN_ASSIGN_OR_RETURN(std::size_t n, reader_.read(std::span<char>(buffer_.data(), buffer_.size())));
    hash_.update(std::string_view(buffer_.data(), n));
    std::uint64_t before = bytes_;
    bytes_ += n;
    if (progress_ && bytes_ / kProgressEveryBytes != before / kProgressEveryBytes)
      progress_(ProgressKind::kBytesRead,
                fmt::format("  layer {}/{}: {} of {}", position_.number, position_.count, human_bytes(bytes_),
                            total_ > 0 ? human_bytes(total_) : std::string("?")));
    return n;
  }

  BlobReader& reader_;
  const LayerPosition& position_;
  const Progress& progress_;
  std::uint64_t total_;
  std::vector<char> buffer_;
  std::size_t pending_ = 0;  // bytes of buffer_ peeked but not yet handed out
  Sha256 hash_;
  std::uint64_t bytes_ = 0;
};

la_ssize_t read_blob_callback(archive*, void* data, const void** out) {
  auto* stream = static_cast<BlobStream*>(data);
  auto block = stream->next();
  if (!block) {
    stream->error = std::move(block).error();
    return -1;
  }
  *out = block->data();
  return static_cast<la_ssize_t>(block->size());
}

// The uncompressed tar stream of a compressed blob, with its own digest (the
// layer's diff_id).
struct DecompressedStream {
  archive* decompressor = nullptr;
  BlobStream* blob = nullptr;
  Sha256 hash;
  std::vector<char> buffer = std::vector<char>(kReadBlock);
  std::optional<Error> error;

  ~DecompressedStream() {
    if (decompressor != nullptr) archive_read_free(decompressor);
  }

  Result<std::size_t> read() {
    la_ssize_t n = archive_read_data(decompressor, buffer.data(), buffer.size());
    if (n < 0) {
      if (blob->error) return std::unexpected(*blob->error);
      const char* reason = archive_error_string(decompressor);
      return make_error(ErrorKind::kInvalidArgument,
                        std::string("cannot decompress: ") + (reason != nullptr ? reason : "corrupt data"));
    }
    hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    return static_cast<std::size_t>(n);
  }
};

la_ssize_t read_decompressed_callback(archive*, void* data, const void** out) {
  auto* stream = static_cast<DecompressedStream*>(data);
  auto n = stream->read();
  if (!n) {
    stream->error = std::move(n).error();
    return -1;
  }
  *out = stream->buffer.data();
  return static_cast<la_ssize_t>(*n);
}

Compression sniff(std::string_view bytes) {
  auto starts = [&](std::string_view magic) { return bytes.starts_with(magic); };
  if (starts("\x1f\x8b")) return Compression::kGzip;
  if (starts("\x28\xb5\x2f\xfd")) return Compression::kZstd;
  return Compression::kNone;
}

// Names compressions kiln does not unpack, so the error can say what it found.
std::optional<std::string> unsupported_compression(std::string_view bytes) {
  if (bytes.starts_with(std::string_view("\xfd"
                                         "7zXZ\0",
                                         6)))
    return "xz";
  if (bytes.starts_with("BZh")) return "bzip2";
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Writing: one tar entry at a time into the root filesystem.

bool ignorable_xattr_errno(int err) {
  // "where the filesystem allows": unsupported namespaces, names the kernel
  // refuses for this file type (user.* on symlinks), or no privilege.
  return err == ENOTSUP || err == EOPNOTSUPP || err == EPERM || err == EACCES || err == EINVAL;
}

class LayerWriter {
 public:
  LayerWriter(std::string rootfs, std::string layer) : rootfs_(std::move(rootfs)), layer_(std::move(layer)) {}

  Status write_entry(archive* a, archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) raw = archive_entry_pathname_utf8(e);
    if (raw == nullptr) return refuse("(unnamed)", "has no name libarchive can decode");
    std::string name(raw);
    KILN_ASSIGN_OR_RETURN(std::string rel, checked_relative(name, name, ""));
    if (rel.empty()) return write_root(e);

    auto slash = rel.rfind('/');
    std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
    std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);

    if (base.starts_with(".wh.")) return whiteout(name, parent, base);

    KILN_ASSIGN_OR_RETURN(std::string host_parent, make_parent(name, parent));
    std::string target = path::join(host_parent, base);
    keep_times_of(host_parent);
    const char* hardlink = archive_entry_hardlink(e);
    if (hardlink != nullptr) return write_hardlink(name, hardlink, target);

    auto type = archive_entry_filetype(e);
    if (type == AE_IFSOCK) return {};  // sockets are made by programs, never unpacked
    if (type != AE_IFDIR && type != AE_IFREG && type != AE_IFLNK && type != AE_IFCHR && type != AE_IFBLK &&
        type != AE_IFIFO)
      return refuse(name, fmt::format("has an unknown file type {:o}", static_cast<unsigned>(type)));

    struct stat existing {};
    bool exists = ::lstat(target.c_str(), &existing) == 0;
    if (!exists && errno != ENOENT) return errno_error("cannot inspect " + target);
    if (exists && !(type == AE_IFDIR && S_ISDIR(existing.st_mode))) KILN_RETURN_IF_ERROR(remove_tree(target));

    switch (type) {
      case AE_IFDIR:
        if (!(exists && S_ISDIR(existing.st_mode)) && ::mkdir(target.c_str(), 0700) != 0)
          return errno_error("cannot create directory " + target);
        KILN_RETURN_IF_ERROR(apply_metadata(target, -1, e));
        break;
      case AE_IFREG: KILN_RETURN_IF_ERROR(write_file(a, e, name, target)); break;
      case AE_IFLNK: {
        const char* link_target = archive_entry_symlink(e);
        if (link_target == nullptr) return refuse(name, "is a symlink without a target");
        // A symlink may point anywhere: it is only followed inside the root,
        // by this code and later by the container.
        if (::symlink(link_target, target.c_str()) != 0)
          return errno_error("cannot create symlink " + target);
        KILN_RETURN_IF_ERROR(apply_metadata(target, -1, e));
        break;
      }
      default: {
        if (::mknod(target.c_str(), type | (archive_entry_perm(e) & 07777), archive_entry_rdev(e)) != 0) {
          // Device nodes need root; elsewhere they are left out, as rootless engines do.
          if (errno == EPERM && ::geteuid() != 0) return {};
          return errno_error("cannot create device node or fifo " + target);
        }
        KILN_RETURN_IF_ERROR(apply_metadata(target, -1, e));
      }
    }
    mark_unpacked(target);
    return {};
  }

  // Directory times last: creating entries inside a directory changes its
  // mtime. First the kept times of changed directories, then the times of
  // this layer's directory entries, which win.
  Status finish() {
    for (const auto& kept : kept_times_)
      if (::utimensat(AT_FDCWD, kept.path.c_str(), kept.times, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
        return errno_error("cannot restore the times of " + kept.path);
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it)
      if (::utimensat(AT_FDCWD, it->path.c_str(), it->times, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
        return errno_error("cannot set the times of " + it->path);
    return {};
  }

 private:
  struct DirTimes {
    std::string path;
    struct timespec times[2];
  };

  std::unexpected<Error> refuse(const std::string& name, const std::string& why) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: entry \"{}\" {}; refusing to unpack it (the layer is malformed or "
                                  "hostile)",
                                  layer_, name, why));
  }

  // Normalises an archive path, refusing absolute ones and "..".
  Result<std::string> checked_relative(const std::string& name, const std::string& path,
                                       std::string_view as) {
    if (!path.empty() && path.front() == '/') return refuse(name, fmt::format("{}is an absolute path", as));
    auto rel = path::normalize_relative(path);
    if (!rel) return refuse(name, fmt::format("{}contains \"..\" and could leave the root filesystem", as));
    return std::move(*rel);
  }

  // The host path of `rel` (relative to the root), following symlinks inside
  // the root only. `as` says what the entry does, for the refusal. For
  // whiteouts, "" when `rel` lies below a non-directory (nothing to remove).
  Result<std::string> resolve_in_root(const std::string& name, const std::string& rel, std::string_view as) {
    auto host = path::resolve_beneath(rootfs_, rel, path::AbsoluteSymlinks::kRelativeToRoot);
    if (host) return std::move(*host);
    // resolve_beneath reports a file used as a directory as an I/O error
    // (ENOTDIR from lstat); for a layer it is a structural problem.
    if (host.error().message().ends_with(std::strerror(ENOTDIR))) {
      // Whiteouts only remove: below a file there is nothing to remove.
      if (as.starts_with("is a whiteout") || as.starts_with("marks")) return std::string();
      return refuse(name, fmt::format("{} below something that is not a directory", as));
    }
    if (host.error().kind() != ErrorKind::kInvalidArgument)
      return std::unexpected(
          std::move(host).error().with_context(fmt::format("{}: entry \"{}\"", layer_, name)));
    return refuse(name, fmt::format("{} through a symlink that leaves the root filesystem ({})", as,
                                    host.error().message()));
  }

  // The host path of directory `parent` (relative to the root), following
  // symlinks within the root, creating missing directories as 0755.
  Result<std::string> make_parent(const std::string& name, const std::string& parent) {
    auto host = resolve_in_root(name, parent, "would be written");
    if (!host) return host;
    std::string current = rootfs_;
    for (auto part : path::components(std::string_view(*host).substr(rootfs_.size()))) {
      current = path::join(current, part);
      struct stat st {};
      if (::lstat(current.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode))
          return refuse(name, "would be written below " + current + ", which is not a directory");
        continue;
      }
      if (errno != ENOENT) return errno_error("cannot inspect " + current);
      keep_times_of(current.substr(0, current.rfind('/')));
      if (::mkdir(current.c_str(), 0755) != 0) return errno_error("cannot create directory " + current);
      mark_unpacked(current);
    }
    return std::move(*host);
  }

  Status write_root(archive_entry* e) {
    // "./" describes the root directory itself: keep its metadata.
    if (archive_entry_filetype(e) != AE_IFDIR) return refuse(".", "names the root but is not a directory");
    return apply_metadata(rootfs_, -1, e);
  }

  Status whiteout(const std::string& name, const std::string& parent, const std::string& base) {
    if (base == ".wh..wh..opq") return opaque(name, parent);
    if (base.starts_with(".wh..wh.")) return {};  // other aufs bookkeeping: nothing to apply
    std::string hidden = base.substr(4);
    if (hidden.empty() || hidden == "." || hidden == "..") return refuse(name, "is a whiteout of nothing");
    KILN_ASSIGN_OR_RETURN(std::string host_parent, resolve_in_root(name, parent, "is a whiteout"));
    if (host_parent.empty()) return {};
    keep_times_of(host_parent);
    return remove_tree(path::join(host_parent, hidden));
  }

  // Everything lower layers put under `parent` disappears; what this layer
  // unpacks there (before or after the marker) stays.
  Status opaque(const std::string& name, const std::string& parent) {
    auto dir = resolve_in_root(name, parent, "marks a directory opaque");
    if (!dir) return std::unexpected(std::move(dir).error());
    if (dir->empty()) return {};
    struct stat st {};
    if (::lstat(dir->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {};
    mark_unpacked(*dir);
    return remove_lower_content(*dir);
  }

  Status remove_lower_content(const std::string& dir) {
    keep_times_of(dir);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_error("cannot list " + dir);
    std::vector<std::string> children;
    while (dirent* entry = ::readdir(d)) {
      std::string_view child(entry->d_name);
      if (child != "." && child != "..") children.push_back(path::join(dir, child));
    }
    ::closedir(d);
    for (const auto& child : children) {
      if (!unpacked_.contains(child) && !ancestors_.contains(child)) {
        KILN_RETURN_IF_ERROR(remove_tree(child));
        continue;
      }
      struct stat st {};
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        KILN_RETURN_IF_ERROR(remove_lower_content(child));
    }
    return {};
  }

  Status write_hardlink(const std::string& name, const std::string& link_name, const std::string& target) {
    KILN_ASSIGN_OR_RETURN(
        std::string rel, checked_relative(name, link_name, "is a hardlink to \"" + link_name + "\", which "));
    if (rel.empty()) return refuse(name, "is a hardlink to the root directory");
    auto slash = rel.rfind('/');
    std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
    std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
    KILN_ASSIGN_OR_RETURN(std::string host_parent, resolve_in_root(name, parent, "is a hardlink"));
    std::string source = path::join(host_parent, base);
    if (source == target) return {};
    struct stat st {};
    if (::lstat(source.c_str(), &st) != 0)
      return refuse(name, "is a hardlink to \"" + link_name + "\", which does not exist");
    if (S_ISDIR(st.st_mode)) return refuse(name, "is a hardlink to a directory");
    KILN_RETURN_IF_ERROR(remove_tree(target));
    if (::link(source.c_str(), target.c_str()) != 0)
      return errno_error("cannot link " + target + " to " + source);
    mark_unpacked(target);
    return {};
  }

  Status write_file(archive* a, archive_entry* e, const std::string& name, const std::string& target) {
    UniqueFd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return errno_error("cannot create " + target);
    while (true) {
      const void* block = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a, &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return make_error(ErrorKind::kInvalidArgument, archive_failure(a, name));
      // Blocks come with offsets so sparse files stay sparse.
      const char* bytes = static_cast<const char*>(block);
      while (size > 0) {
        ssize_t n = ::pwrite(fd.get(), bytes, size, offset);
        if (n < 0) {
          if (errno == EINTR) continue;
          return errno_error("cannot write " + target);
        }
        bytes += n;
        size -= static_cast<std::size_t>(n);
        offset += n;
      }
    }
    if (archive_entry_size_is_set(e) && ::ftruncate(fd.get(), archive_entry_size(e)) != 0)
      return errno_error("cannot size " + target);
    return apply_metadata(target, fd.get(), e);
  }

  std::string archive_failure(archive* a, const std::string& name) {
    const char* reason = archive_error_string(a);
    return fmt::format("{}: cannot read entry \"{}\": {}", layer_, name,
                       reason != nullptr ? reason : "corrupt tar");
  }

  // Owner, then mode (chown clears set-id bits), xattrs, times. `fd` is the
  // open file for regular files, -1 otherwise.
  Status apply_metadata(const std::string& target, int fd, archive_entry* e) {
    auto type = archive_entry_filetype(e);
    bool is_link = type == AE_IFLNK;
    auto uid = static_cast<uid_t>(archive_entry_uid(e));
    auto gid = static_cast<gid_t>(archive_entry_gid(e));
    int r = fd >= 0 ? ::fchown(fd, uid, gid) : ::lchown(target.c_str(), uid, gid);
    if (r != 0 && !(errno == EPERM && ::geteuid() != 0))
      return errno_error(fmt::format("cannot give {} to {}:{}", target, uid, gid));
    if (!is_link) {
      mode_t mode = archive_entry_perm(e) & 07777;
      r = fd >= 0 ? ::fchmod(fd, mode) : ::chmod(target.c_str(), mode);
      if (r != 0) return errno_error(fmt::format("cannot set mode {:o} on {}", mode, target));
    }
    if (archive_entry_xattr_reset(e) > 0) {
      const char* xname = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        r = fd >= 0 ? ::fsetxattr(fd, xname, value, size, 0)
                    : ::lsetxattr(target.c_str(), xname, value, size, 0);
        if (r != 0 && !ignorable_xattr_errno(errno))
          return errno_error(fmt::format("cannot set extended attribute {} on {}", xname, target));
      }
    }
    struct timespec times[2];
    times[1] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    times[0] = archive_entry_atime_is_set(e) ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)}
                                             : times[1];
    if (type == AE_IFDIR) {
      dir_times_.push_back({target, {times[0], times[1]}});
      return {};
    }
    r = fd >= 0 ? ::futimens(fd, times) : ::utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (r != 0) return errno_error("cannot set the times of " + target);
    return {};
  }

  // A directory whose content this layer changes keeps its times unless the
  // layer has an entry for it (as umoci does), so a rootfs depends only on
  // its layers, never on when it was unpacked.
  void keep_times_of(const std::string& dir) {
    if (!times_kept_.insert(dir).second) return;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    kept_times_.push_back({dir, {st.st_atim, st.st_mtim}});
  }

  void mark_unpacked(const std::string& host) {
    unpacked_.insert(host);
    std::string_view p(host);
    while (true) {
      auto slash = p.rfind('/');
      if (slash == std::string_view::npos || slash <= rootfs_.size()) break;
      p = p.substr(0, slash);
      if (!ancestors_.emplace(p).second) break;
    }
  }

  std::string rootfs_;
  std::string layer_;
  std::unordered_set<std::string> unpacked_;    // host paths this layer wrote
  std::unordered_set<std::string> ancestors_;   // their parent directories
  std::vector<DirTimes> dir_times_;             // from this layer's directory entries
  std::vector<DirTimes> kept_times_;            // of directories changed by this layer
  std::unordered_set<std::string> times_kept_;  // paths in kept_times_
};

// Reads the tar entries of `source` (a libarchive read callback) into the rootfs.
Status unpack_tar(archive_read_callback* read, void* source, const std::optional<Error>* source_error,
                  LayerWriter& writer, const std::string& layer) {
  archive* tar = archive_read_new();
  if (tar == nullptr) return make_error(ErrorKind::kInternal, "archive_read_new failed");
  archive_read_support_format_tar(tar);
  auto failure = [&](std::string what) -> std::unexpected<Error> {
    if (*source_error) return std::unexpected(**source_error);
    const char* reason = archive_error_string(tar);
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: {}: {}", layer, what, reason != nullptr ? reason : "corrupt tar"));
  };
  auto status = [&]() -> Status {
    if (archive_read_open(tar, source, nullptr, read, nullptr) != ARCHIVE_OK)
      return failure("not a tar archive");
    while (true) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(tar, &entry);
      if (r == ARCHIVE_EOF) return {};
      if (r < ARCHIVE_WARN) return failure("cannot read the next entry");
      KILN_RETURN_IF_ERROR(writer.write_entry(tar, entry));
    }
  }();
  archive_read_free(tar);
  KILN_RETURN_IF_ERROR(status);
  return writer.finish();
}

Status check_layer_digest(const std::string& actual_hex, const std::string& expected,
                          const std::string& layer, const char* what) {
  if (expected.empty()) return {};
  if (!expected.starts_with("sha256:"))
    return make_error(
        ErrorKind::kUnsupported,
        fmt::format("{}: {} {} is not a sha256 digest; kiln verifies sha256 only", layer, what, expected));
  std::string actual = "sha256:" + actual_hex;
  if (actual != expected)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: {} is {} but the image says {}; the blob is damaged or was changed "
                                  "(re-create or re-copy the image)",
                                  layer, what, actual, expected));
  return {};
}

// When unpacking fails on a blob whose digest is known, a damaged blob is
// the likelier story than a malformed one: read the rest and, if the digest
// is wrong, say that instead.
Status prefer_digest_error(Status unpacked, BlobStream& blob, const LayerDescriptor& layer,
                           const std::string& label) {
  if (unpacked || layer.digest.empty() || blob.error) return unpacked;
  if (!blob.drain()) return unpacked;
  auto digest = check_layer_digest(blob.hex_digest(), layer.digest, label, "the blob's digest");
  return digest ? unpacked : digest;
}

}  // namespace

Status unpack_layer(ImageFiles& files, const LayerDescriptor& layer, const LayerPosition& position,
                    const std::string& rootfs, const Progress& progress) {
  std::string label = fmt::format("image {}: layer {}/{} ({})", position.image, position.number,
                                  position.count, files.describe(layer.path));
  auto opened = files.open(layer.path);
  if (!opened) {
    if (opened.error().kind() == ErrorKind::kNotFound)
      return make_error(
          ErrorKind::kNotFound,
          fmt::format("{} is missing; the image is incomplete (re-create or re-copy it)", label));
    return std::unexpected(std::move(opened).error().with_context(label));
  }
  BlobReader& reader = **opened;
  std::uint64_t total = reader.size() >= 0
                            ? static_cast<std::uint64_t>(reader.size())
                            : static_cast<std::uint64_t>(std::max<std::int64_t>(layer.size, 0));
  if (progress) {
    // docker-archive layers are known by their diff_id, if at all.
    std::string digest = !layer.digest.empty()    ? layer.digest
                         : !layer.diff_id.empty() ? layer.diff_id
                                                  : layer.path;
    // "sha256:" and 12 hex digits identify a layer well enough for a human.
    if (digest.starts_with("sha256:") && digest.size() > 19) digest = digest.substr(0, 19) + "…";
    progress(ProgressKind::kLayer, fmt::format("unpacking layer {}/{} {} {}", position.number, position.count,
                                               digest, human_bytes(total)));
  }

  BlobStream blob(reader, position, progress, total);
  KILN_RETURN_IF_ERROR(with_context(blob.peek(), label));
  Compression found = sniff(blob.first_bytes());
  if (auto other = unsupported_compression(blob.first_bytes()))
    return make_error(
        ErrorKind::kUnsupported,
        fmt::format("{} is {}-compressed; kiln unpacks plain, gzip and zstd tar layers", label, *other));
  // The media type says what to expect; the magic bytes decide when it says
  // nothing (docker-archive) or "tar" for what is in fact compressed.
  if ((layer.compression == Compression::kGzip || layer.compression == Compression::kZstd) &&
      found != layer.compression)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{}: its media type {} says {} but the blob is {}; the image is damaged", label,
                    layer.media_type, compression_name(layer.compression), compression_name(found)));

  LayerWriter writer(rootfs, label);
  std::string diff_hex;
  if (found == Compression::kNone) {
    // Zero bytes are an empty layer, not a malformed tar (libarchive would say "unrecognized format").
    bool empty = blob.first_bytes().empty();
    if (!empty)
      KILN_RETURN_IF_ERROR(prefer_digest_error(
          unpack_tar(read_blob_callback, &blob, &blob.error, writer, label), blob, layer, label));
    KILN_RETURN_IF_ERROR(with_context(blob.drain(), label));
    diff_hex = blob.hex_digest();
    KILN_RETURN_IF_ERROR(check_layer_digest(diff_hex, layer.digest, label, "the blob's digest"));
  } else {
    DecompressedStream tar_stream;
    tar_stream.blob = &blob;
    tar_stream.decompressor = archive_read_new();
    if (tar_stream.decompressor == nullptr)
      return make_error(ErrorKind::kInternal, "archive_read_new failed");
    if (found == Compression::kGzip)
      archive_read_support_filter_gzip(tar_stream.decompressor);
    else
      archive_read_support_filter_zstd(tar_stream.decompressor);
    // The "raw" format hands the decompressed bytes through untouched: the
    // tar reader below sees them, and they are hashed on the way (diff_id).
    // "empty" recognises a stream that decompresses to nothing: an empty layer.
    archive_read_support_format_raw(tar_stream.decompressor);
    archive_read_support_format_empty(tar_stream.decompressor);
    archive_entry* raw_entry = nullptr;
    int header = ARCHIVE_FATAL;
    if (archive_read_open(tar_stream.decompressor, &blob, nullptr, read_blob_callback, nullptr) == ARCHIVE_OK)
      header = archive_read_next_header(tar_stream.decompressor, &raw_entry);
    if (header != ARCHIVE_OK && header != ARCHIVE_EOF) {
      if (blob.error) return std::unexpected(*blob.error);
      const char* reason = archive_error_string(tar_stream.decompressor);
      return prefer_digest_error(
          make_error(ErrorKind::kInvalidArgument,
                     fmt::format("{}: cannot decompress ({}): {}", label, compression_name(found),
                                 reason != nullptr ? reason : "corrupt data")),
          blob, layer, label);
    }
    if (header == ARCHIVE_OK)
      KILN_RETURN_IF_ERROR(prefer_digest_error(
          unpack_tar(read_decompressed_callback, &tar_stream, &tar_stream.error, writer, label), blob, layer,
          label));
    // Whatever the tar reader left (padding after the end-of-archive blocks)
    // still counts towards both digests.
    while (header == ARCHIVE_OK) {
      auto n = tar_stream.read();
      if (!n) return std::unexpected(std::move(n).error().with_context(label));
      if (*n == 0) break;
    }
    KILN_RETURN_IF_ERROR(with_context(blob.drain(), label));
    KILN_RETURN_IF_ERROR(check_layer_digest(blob.hex_digest(), layer.digest, label, "the blob's digest"));
    diff_hex = tar_stream.hash.hex_digest();
  }
  return check_layer_digest(diff_hex, layer.diff_id, label, "the uncompressed layer's digest (diff_id)");
}

}  // namespace kiln::fetcher::internal
