#include "worker/fetcher/internal/image_files.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <utility>
#include <vector>

#include "common/path.h"
#include "common/unique_fd.h"

namespace kiln::fetcher::internal {
namespace {

// ---------------------------------------------------------------------------
// A directory.

class FileReader : public BlobReader {
 public:
  FileReader(UniqueFd fd, std::int64_t size, std::string path)
      : fd_(std::move(fd)), size_(size), path_(std::move(path)) {}

  Result<std::size_t> read(std::span<char> buffer) override {
    while (true) {
      ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return errno_error("cannot read " + path_);
    }
  }
  std::int64_t size() const override { return size_; }

 private:
  UniqueFd fd_;
  std::int64_t size_;
  std::string path_;
};

class DirectoryImageFiles : public ImageFiles {
 public:
  explicit DirectoryImageFiles(std::string dir) : dir_(std::move(dir)) {}

  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override {
    KILN_ASSIGN_OR_RETURN(auto reader, open(path));
    if (reader->size() > static_cast<std::int64_t>(max_bytes))
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("{} is {} bytes, more than the {} expected of an image's metadata file; "
                                    "is this really an image?",
                                    describe(path), reader->size(), max_bytes));
    std::string out;
    out.resize(static_cast<std::size_t>(reader->size()));
    std::size_t have = 0;
    while (have < out.size()) {
      KILN_ASSIGN_OR_RETURN(std::size_t n,
                            reader->read(std::span<char>(out.data() + have, out.size() - have)));
      if (n == 0) break;
      have += n;
    }
    out.resize(have);
    return out;
  }

  Result<std::unique_ptr<BlobReader>> open(const std::string& path) override {
    KILN_ASSIGN_OR_RETURN(std::string rel, path::normalize_relative(path));
    std::string host = path::join(dir_, rel);
    UniqueFd fd(::open(host.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_error("cannot open " + host);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return make_error(ErrorKind::kInvalidArgument, host + " is not a regular file");
    return std::make_unique<FileReader>(std::move(fd), st.st_size, host);
  }

  std::string describe(const std::string& path) const override { return path::join(dir_, path); }

 private:
  std::string dir_;
};

// ---------------------------------------------------------------------------
// A tarball. libarchive reads it as a stream; finding a file means scanning
// forward from the current entry, and wrapping around (reopening) when the
// file lies before it. Layers are usually stored in the order they are
// applied, so a fetch reads the tarball about once; small files met on the
// way (manifests, configs) are kept in memory so looking them up later costs
// no rescan.

constexpr std::size_t kCacheEntryMax = 1 << 20;
constexpr std::size_t kCacheTotalMax = 64 << 20;
constexpr int kMaxLinkHops = 16;

class MemoryReader : public BlobReader {
 public:
  explicit MemoryReader(const std::string& data) : data_(data) {}
  Result<std::size_t> read(std::span<char> buffer) override {
    std::size_t n = std::min(buffer.size(), data_.size() - offset_);
    std::copy_n(data_.data() + offset_, n, buffer.data());
    offset_ += n;
    return n;
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(data_.size()); }

 private:
  std::string data_;
  std::size_t offset_ = 0;
};

// Lexical path of a symlink's target, relative to the tarball's root.
Result<std::string> link_target_path(const std::string& link_path, const std::string& target) {
  std::vector<std::string> parts;
  if (!target.empty() && target.front() != '/') {
    for (auto p : path::components(link_path)) parts.emplace_back(p);
    if (!parts.empty()) parts.pop_back();
  }
  for (auto p : path::components(target)) {
    if (p == "..") {
      if (parts.empty())
        return make_error(ErrorKind::kInvalidArgument,
                          "symlink " + link_path + " -> " + target + " leaves the tarball");
      parts.pop_back();
    } else {
      parts.emplace_back(p);
    }
  }
  std::string out;
  for (auto& p : parts) out = out.empty() ? p : out + "/" + p;
  return out;
}

class TarballImageFiles;

class TarEntryReader : public BlobReader {
 public:
  TarEntryReader(TarballImageFiles* owner, std::uint64_t generation, std::int64_t size)
      : owner_(owner), generation_(generation), size_(size) {}
  Result<std::size_t> read(std::span<char> buffer) override;
  std::int64_t size() const override { return size_; }

 private:
  TarballImageFiles* owner_;
  std::uint64_t generation_;
  std::int64_t size_;
};

class TarballImageFiles : public ImageFiles {
 public:
  explicit TarballImageFiles(std::string file) : file_(std::move(file)) {}
  ~TarballImageFiles() override { close_archive(); }

  Status reopen() {
    close_archive();
    archive_ = archive_read_new();
    if (archive_ == nullptr) return make_error(ErrorKind::kInternal, "archive_read_new failed");
    // Built-in decompressors only: archive_read_support_filter_all would also
    // run external programs for exotic formats.
    archive_read_support_filter_gzip(archive_);
    archive_read_support_filter_zstd(archive_);
    archive_read_support_filter_xz(archive_);
    archive_read_support_filter_bzip2(archive_);
    archive_read_support_format_tar(archive_);
    if (archive_read_open_filename(archive_, file_.c_str(), 1 << 20) != ARCHIVE_OK)
      return archive_error("cannot open the image tarball " + file_);
    index_ = -1;
    at_end_ = false;
    ++generation_;
    return {};
  }

  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override {
    KILN_ASSIGN_OR_RETURN(std::string name, find(path));
    if (auto it = cache_.find(name); it != cache_.end()) {
      if (it->second.size() > max_bytes) return too_big(path, it->second.size(), max_bytes);
      return it->second;
    }
    std::int64_t size = archive_entry_size(current_);
    if (size > static_cast<std::int64_t>(max_bytes))
      return too_big(path, static_cast<std::size_t>(size), max_bytes);
    return read_current(path);
  }

  Result<std::unique_ptr<BlobReader>> open(const std::string& path) override {
    KILN_ASSIGN_OR_RETURN(std::string name, find(path));
    if (auto it = cache_.find(name); it != cache_.end()) return std::make_unique<MemoryReader>(it->second);
    return std::make_unique<TarEntryReader>(this, generation_, archive_entry_size(current_));
  }

  std::string describe(const std::string& path) const override { return file_ + " (entry " + path + ")"; }

  Result<std::size_t> read_data(std::uint64_t generation, std::span<char> buffer) {
    if (generation != generation_)
      return make_error(ErrorKind::kInternal, "a tarball entry was read after another one was opened");
    la_ssize_t n = archive_read_data(archive_, buffer.data(), buffer.size());
    if (n < 0) return archive_error("cannot read " + file_);
    return static_cast<std::size_t>(n);
  }

 private:
  std::unexpected<Error> archive_error(const std::string& what) {
    const char* reason = archive_ != nullptr ? archive_error_string(archive_) : nullptr;
    return make_error(ErrorKind::kIo,
                      what + ": " + (reason != nullptr ? reason : "unknown libarchive error"));
  }

  std::unexpected<Error> too_big(const std::string& path, std::size_t size, std::size_t max) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} is {} bytes, more than the {} expected of an image's metadata file",
                                  describe(path), size, max));
  }

  void close_archive() {
    if (archive_ != nullptr) archive_read_free(archive_);
    archive_ = nullptr;
    current_ = nullptr;
  }

  Result<std::string> read_current(const std::string& path) {
    std::string out;
    char buffer[64 * 1024];
    while (true) {
      la_ssize_t n = archive_read_data(archive_, buffer, sizeof buffer);
      if (n < 0) return archive_error("cannot read " + describe(path));
      if (n == 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }

  // Finds `path`, following symlink and hardlink entries; returns the name of
  // the regular file found. Afterwards either cache_ holds it or current_ is
  // its header and its data is next to read.
  Result<std::string> find(const std::string& path) {
    KILN_ASSIGN_OR_RETURN(std::string name, path::normalize_relative(path));
    for (int hop = 0; hop < kMaxLinkHops; ++hop) {
      if (cache_.contains(name)) return name;
      if (auto it = links_.find(name); it != links_.end()) {
        name = it->second;
        continue;
      }
      KILN_RETURN_IF_ERROR(scan_to(name, path));
      archive_entry* e = current_;
      if (archive_entry_hardlink(e) != nullptr) {
        KILN_ASSIGN_OR_RETURN(name, path::normalize_relative(archive_entry_hardlink(e)));
        continue;
      }
      if (archive_entry_filetype(e) == AE_IFLNK) {
        KILN_ASSIGN_OR_RETURN(name, link_target_path(name, archive_entry_symlink(e)));
        continue;
      }
      if (archive_entry_filetype(e) != AE_IFREG)
        return make_error(ErrorKind::kInvalidArgument, describe(path) + " is not a regular file");
      return name;
    }
    return make_error(ErrorKind::kInvalidArgument, "too many links to follow for " + describe(path));
  }

  // Positions current_ on the entry named `name`, scanning forward and then
  // once around from the start.
  Status scan_to(const std::string& name, const std::string& asked) {
    // After an unsuccessful scan the reader sits at the end: start afresh.
    if (archive_ == nullptr || at_end_) KILN_RETURN_IF_ERROR(reopen());
    const std::int64_t start = index_;
    bool wrapped = false;
    while (true) {
      archive_entry* e = nullptr;
      int r = archive_read_next_header(archive_, &e);
      if (r == ARCHIVE_EOF) {
        at_end_ = true;
        if (wrapped || start < 0) break;
        KILN_RETURN_IF_ERROR(reopen());
        wrapped = true;
        continue;
      }
      if (r < ARCHIVE_WARN) return archive_error("cannot read the image tarball " + file_);
      ++index_;
      ++generation_;  // readers of the previous entry are no longer valid
      if (wrapped && index_ > start) break;
      current_ = e;
      const char* raw = archive_entry_pathname(e);
      if (raw == nullptr) continue;
      auto entry_name = path::normalize_relative(raw);
      if (!entry_name) continue;
      if (*entry_name == name) return {};
      remember(*entry_name, e);
    }
    current_ = nullptr;
    return make_error(ErrorKind::kNotFound, describe(asked) + " does not exist in the tarball");
  }

  // Keeps what a passed-over entry can tell later lookups.
  void remember(const std::string& name, archive_entry* e) {
    if (archive_entry_hardlink(e) != nullptr) {
      if (auto target = path::normalize_relative(archive_entry_hardlink(e))) links_[name] = *target;
      return;
    }
    if (archive_entry_filetype(e) == AE_IFLNK) {
      if (auto target = link_target_path(name, archive_entry_symlink(e))) links_[name] = *target;
      return;
    }
    if (archive_entry_filetype(e) != AE_IFREG) return;
    auto size = static_cast<std::size_t>(archive_entry_size(e));
    if (size > kCacheEntryMax || cached_bytes_ + size > kCacheTotalMax) return;
    if (auto data = read_current(name)) {
      cached_bytes_ += data->size();
      cache_.emplace(name, std::move(*data));
    }
  }

  std::string file_;
  archive* archive_ = nullptr;
  archive_entry* current_ = nullptr;
  std::int64_t index_ = -1;  // index of current_ in the tarball
  bool at_end_ = false;      // the last header read was the end of the tarball
  std::uint64_t generation_ = 0;
  std::map<std::string, std::string> cache_;
  std::size_t cached_bytes_ = 0;
  std::map<std::string, std::string> links_;
};

Result<std::size_t> TarEntryReader::read(std::span<char> buffer) {
  return owner_->read_data(generation_, buffer);
}

}  // namespace

std::unique_ptr<ImageFiles> open_image_directory(const std::string& dir) {
  return std::make_unique<DirectoryImageFiles>(dir);
}

Result<std::unique_ptr<ImageFiles>> open_image_tarball(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return errno_error("cannot read the image tarball " + file);
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorKind::kInvalidArgument, "the image tarball " + file + " is not a regular file");
  auto files = std::make_unique<TarballImageFiles>(file);
  KILN_RETURN_IF_ERROR(files->reopen());
  return std::unique_ptr<ImageFiles>(std::move(files));
}

}  // namespace kiln::fetcher::internal
