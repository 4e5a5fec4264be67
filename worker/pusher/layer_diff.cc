#include "worker/pusher/layer_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "common/context/tar_stream.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace kiln::pusher {
namespace {

constexpr std::time_t kCopiedMtime = 0;  // worker/builder/copy_files.h

Result<bool> same_content(const std::string& a, const std::string& b, std::uint64_t size) {
  UniqueFd fa(::open(a.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd fb(::open(b.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fa) return errno_error("cannot open " + a);
  if (!fb) return errno_error("cannot open " + b);
  std::vector<char> ba(1 << 16), bb(1 << 16);
  while (size > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, ba.size()));
    ssize_t na = ::read(fa.get(), ba.data(), want);
    ssize_t nb = ::read(fb.get(), bb.data(), want);
    if (na < 0) return errno_error("cannot read " + a);
    if (nb < 0) return errno_error("cannot read " + b);
    if (na == 0 || nb != na) return false;  // a short read: sizes changed under us
    if (std::memcmp(ba.data(), bb.data(), static_cast<std::size_t>(na)) != 0) return false;
    size -= static_cast<std::uint64_t>(na);
  }
  return true;
}

Result<std::string> link_target(const std::string& path) {
  std::vector<char> buffer(4096);
  ssize_t n = ::readlink(path.c_str(), buffer.data(), buffer.size());
  if (n < 0) return errno_error("cannot read the symlink " + path);
  return std::string(buffer.data(), static_cast<std::size_t>(n));
}

// Whether the entry at `upper` differs from the one at `lower` (both lstat'ed).
Result<bool> changed(const std::string& lower, const struct stat& l, const std::string& upper,
                     const struct stat& u) {
  if ((l.st_mode & S_IFMT) != (u.st_mode & S_IFMT) || l.st_mode != u.st_mode || l.st_uid != u.st_uid ||
      l.st_gid != u.st_gid || l.st_rdev != u.st_rdev)
    return true;
  if (S_ISDIR(u.st_mode))
    return l.st_mtim.tv_sec != u.st_mtim.tv_sec || l.st_mtim.tv_nsec != u.st_mtim.tv_nsec;
  if (l.st_size != u.st_size || l.st_mtim.tv_sec != u.st_mtim.tv_sec ||
      l.st_mtim.tv_nsec != u.st_mtim.tv_nsec)
    return true;
  if (S_ISLNK(u.st_mode)) {
    KILN_ASSIGN_OR_RETURN(std::string a, link_target(lower));
    KILN_ASSIGN_OR_RETURN(std::string b, link_target(upper));
    return a != b;
  }
  if (S_ISREG(u.st_mode) && u.st_mtim.tv_sec == kCopiedMtime && u.st_mtim.tv_nsec == 0) {
    KILN_ASSIGN_OR_RETURN(bool same, same_content(lower, upper, static_cast<std::uint64_t>(u.st_size)));
    return !same;
  }
  return false;
}

// The uncompressed tar: hashed (diff_id), gzipped, hashed again (digest), written.
class GzipSink {
 public:
  explicit GzipSink(int fd) : fd_(fd) {
    // windowBits 31: a gzip wrapper; deflateSetHeader is not called, so no name and mtime 0.
    deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  }
  ~GzipSink() { deflateEnd(&z_); }
  Status write(std::string_view data) {
    uncompressed_.update(data);
    return deflate_some(data, Z_NO_FLUSH);
  }
  Status finish() { return deflate_some({}, Z_FINISH); }
  std::string diff_id() { return "sha256:" + uncompressed_.hex_digest(); }
  std::string digest() { return "sha256:" + compressed_.hex_digest(); }
  std::uint64_t size() const { return size_; }

 private:
  Status deflate_some(std::string_view data, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    char out[1 << 16];
    int r = Z_OK;
    do {
      z_.next_out = reinterpret_cast<Bytef*>(out);
      z_.avail_out = sizeof out;
      r = ::deflate(&z_, flush);
      if (r == Z_STREAM_ERROR) return make_error(ErrorKind::kInternal, "gzip failed");
      std::string_view produced(out, sizeof out - z_.avail_out);
      compressed_.update(produced);
      size_ += produced.size();
      KILN_RETURN_IF_ERROR(write_all(fd_, produced, "the layer file"));
    } while (z_.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
    return {};
  }

  int fd_;
  z_stream z_{};
  Sha256 uncompressed_, compressed_;
  std::uint64_t size_ = 0;
};

class Differ {
 public:
  explicit Differ(context::TarStream& tar) : tar_(tar) {}

  // Compares directory `rel` ("" = the root) of both trees; returns whether
  // anything in it was written. The directory's own entry is written by the caller.
  Result<bool> diff_dir(const std::string& lower_root, const std::string& upper_root, const std::string& rel,
                        std::vector<std::string>& pending_parents) {
    std::string upper_dir = rel.empty() ? upper_root : upper_root + "/" + rel;
    std::string lower_dir = lower_root.empty() ? "" : (rel.empty() ? lower_root : lower_root + "/" + rel);
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> upper_names, list_dir(upper_dir));
    std::vector<std::string> lower_names;
    if (!lower_dir.empty()) {
      KILN_ASSIGN_OR_RETURN(lower_names, list_dir(lower_dir));
    }
    std::set<std::string> in_upper(upper_names.begin(), upper_names.end());
    bool wrote = false;
    // Whiteouts: `.wh.NAME` sorts among the names, but order within a layer does not matter to readers.
    for (const std::string& name : lower_names) {
      if (in_upper.contains(name)) continue;
      KILN_RETURN_IF_ERROR(write_parents(pending_parents, upper_root));
      KILN_RETURN_IF_ERROR(tar_.add_empty_file(join(rel, ".wh." + name), 0644));
      ++entries_;
      wrote = true;
    }
    for (const std::string& name : upper_names) {
      std::string child = join(rel, name);
      std::string upper = upper_root + "/" + child;
      struct stat u {};
      if (::lstat(upper.c_str(), &u) != 0) return errno_error("cannot stat " + upper);
      if (S_ISSOCK(u.st_mode)) continue;
      if (!S_ISDIR(u.st_mode) && !S_ISREG(u.st_mode) && !S_ISLNK(u.st_mode))
        return make_error(ErrorKind::kUnsupported,
                          fmt::format("/{}: a fifo or device node; kiln's image layers hold files, "
                                      "directories and symlinks only",
                                      child));
      struct stat l {};
      bool in_lower = !lower_dir.empty() && ::lstat((lower_root + "/" + child).c_str(), &l) == 0;
      bool lower_is_dir = in_lower && S_ISDIR(l.st_mode);
      bool differs = true;
      if (in_lower) {
        KILN_ASSIGN_OR_RETURN(differs, changed(lower_root + "/" + child, l, upper, u));
      }
      if (S_ISDIR(u.st_mode)) {
        pending_parents.push_back(child);
        std::size_t depth = pending_parents.size();
        if (differs) KILN_RETURN_IF_ERROR(write_parents(pending_parents, upper_root));
        KILN_ASSIGN_OR_RETURN(bool below,
                              diff_dir(lower_is_dir ? lower_root : "", upper_root, child, pending_parents));
        // Still pending (nothing below was written and it is unchanged): not written.
        if (pending_parents.size() >= depth) pending_parents.resize(depth - 1);
        wrote = wrote || differs || below;
        continue;
      }
      if (!differs) continue;
      KILN_RETURN_IF_ERROR(write_parents(pending_parents, upper_root));
      KILN_RETURN_IF_ERROR(tar_.add(child, upper, u));
      ++entries_;
      wrote = true;
    }
    return wrote;
  }

  std::uint64_t entries() const { return entries_; }

 private:
  static std::string join(const std::string& rel, const std::string& name) {
    return rel.empty() ? name : rel + "/" + name;
  }

  // Writes the directories above an entry that are not written yet.
  Status write_parents(std::vector<std::string>& pending, const std::string& upper_root) {
    for (const std::string& dir : pending) {
      std::string host = upper_root + "/" + dir;
      struct stat st {};
      if (::lstat(host.c_str(), &st) != 0) return errno_error("cannot stat " + host);
      KILN_RETURN_IF_ERROR(tar_.add(dir, host, st));
      ++entries_;
    }
    pending.clear();
    return {};
  }

  context::TarStream& tar_;
  std::uint64_t entries_ = 0;
};

}  // namespace

Result<LayerBlob> write_layer_diff(const std::string& lower, const std::string& upper,
                                   const std::string& out_path) {
  UniqueFd fd(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return errno_error("cannot create " + out_path);
  GzipSink gzip(fd.get());
  context::TarStream tar([&](std::string_view chunk) { return gzip.write(chunk); });
  Differ differ(tar);
  std::vector<std::string> pending;
  if (auto diffed = differ.diff_dir(lower, upper, "", pending); !diffed)
    return std::unexpected(
        std::move(diffed.error())
            .with_context(fmt::format("diffing {} against {}", upper, lower.empty() ? "nothing" : lower)));
  KILN_RETURN_IF_ERROR(tar.finish());
  KILN_RETURN_IF_ERROR(gzip.finish());
  if (int err = fd.close(); err != 0) return errno_error("cannot write " + out_path, err);
  LayerBlob blob;
  blob.path = out_path;
  blob.diff_id = gzip.diff_id();
  blob.digest = gzip.digest();
  blob.size = gzip.size();
  blob.entries = differ.entries();
  return blob;
}

}  // namespace kiln::pusher
