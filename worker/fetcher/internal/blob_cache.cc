#include "worker/fetcher/internal/blob_cache.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/fs.h"

namespace kiln::fetcher::internal {
namespace {

constexpr std::time_t kStaleTemporarySeconds = 3600;

std::string temp_name() {
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{}-{}-{}", ::getpid(), ::time(nullptr), counter.fetch_add(1));
}

std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

// The blob at `path`, share-locked and marked used; nullopt when there is
// none (or a prune unlinked it before the lock was ours).
Result<std::optional<UniqueFd>> open_leased(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::optional<UniqueFd>();
    return errno_error("cannot open " + path);
  }
  if (::flock(fd.get(), LOCK_SH) != 0) return errno_error("cannot lock " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + path);
  if (st.st_nlink == 0) return std::optional<UniqueFd>();
  // The LRU order prune() follows.
  if (::futimens(fd.get(), nullptr) != 0) return errno_error("cannot mark " + path + " used");
  return std::optional<UniqueFd>(std::move(fd));
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open " + dir);
  if (::fsync(fd.get()) != 0) return errno_error("cannot fsync " + dir);
  return {};
}

}  // namespace

BlobWriter::BlobWriter(std::string temp_path, std::string final_path, std::string digest,
                       std::int64_t expected_size, UniqueFd fd)
    : temp_path_(std::move(temp_path)),
      final_path_(std::move(final_path)),
      digest_(std::move(digest)),
      expected_size_(expected_size),
      fd_(std::move(fd)) {}

BlobWriter::~BlobWriter() {
  if (!committed_) ::unlink(temp_path_.c_str());
}

Status BlobWriter::write(std::string_view data) {
  if (expected_size_ >= 0 && written_ + data.size() > static_cast<std::uint64_t>(expected_size_))
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("blob {} is larger than the {} bytes its descriptor says", digest_, expected_size_));
  hash_.update(data);
  written_ += data.size();
  return write_all(fd_.get(), data, temp_path_);
}

Status BlobWriter::reset() {
  if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) != 0)
    return errno_error("cannot truncate " + temp_path_);
  hash_ = Sha256();
  actual_.reset();
  written_ = 0;
  return {};
}

Status BlobWriter::verify(std::string_view source) {
  if (!actual_) actual_ = "sha256:" + hash_.hex_digest();
  const std::string& actual = *actual_;
  if (actual != digest_)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{}: blob {} arrived with digest {} ({} bytes); it was refused and not "
                    "cached — the registry's copy is damaged or something altered it on the way",
                    source, digest_, actual, written_));
  if (expected_size_ >= 0 && written_ != static_cast<std::uint64_t>(expected_size_))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: blob {} has {} bytes but its descriptor says {}; it was not cached",
                                  source, digest_, written_, expected_size_));
  return {};
}

Status BlobWriter::commit(std::string_view source) {
  KILN_RETURN_IF_ERROR(verify(source));
  if (::fsync(fd_.get()) != 0) return errno_error("cannot fsync " + temp_path_);
  // Linked, not renamed over a copy another download put there first: that
  // copy may be leased by its pull, and replacing it would leave the name
  // unleased for a prune to take.
  if (::link(temp_path_.c_str(), final_path_.c_str()) != 0) {
    if (errno != EEXIST) return errno_error("cannot link " + temp_path_ + " to " + final_path_);
    KILN_ASSIGN_OR_RETURN(auto existing, open_leased(final_path_));
    if (existing) {
      fd_ = std::move(*existing);
    } else if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
      return errno_error("cannot rename " + temp_path_ + " to " + final_path_);
    }
  }
  ::unlink(temp_path_.c_str());
  committed_ = true;
  auto slash = final_path_.rfind('/');
  return fsync_dir(final_path_.substr(0, slash));
}

BlobLease BlobWriter::lease() {
  return BlobLease(std::move(fd_));
}

Result<BlobCache> BlobCache::open(const std::string& dir) {
  for (const char* sub : {"/blobs/sha256", "/tags", "/tmp"})
    KILN_RETURN_IF_ERROR(with_context(ensure_dirs(dir + sub, 0700), "opening the image cache " + dir));
  KILN_RETURN_IF_ERROR(write_file_atomically(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  if (auto names = list_dir(dir + "/tmp")) {
    std::time_t now = ::time(nullptr);
    for (const auto& name : *names) {
      std::string path = dir + "/tmp/" + name;
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && now - st.st_mtime > kStaleTemporarySeconds)
        ::unlink(path.c_str());
    }
  }
  return BlobCache(dir);
}

std::string BlobCache::path_of(std::string_view digest) const {
  auto colon = digest.find(':');
  return dir_ + "/blobs/sha256/" + std::string(digest.substr(colon + 1));
}

bool BlobCache::contains(std::string_view digest) const {
  return path_exists(path_of(digest));
}

Result<std::unique_ptr<BlobWriter>> BlobCache::begin(std::string_view digest,
                                                     std::int64_t expected_size) const {
  std::string temp = dir_ + "/tmp/" + temp_name();
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return errno_error("cannot create " + temp);
  // Leased from the start: the lease goes with the inode when it is linked into place.
  if (::flock(fd.get(), LOCK_SH) != 0) return errno_error("cannot lock " + temp);
  return std::make_unique<BlobWriter>(temp, path_of(digest), std::string(digest), expected_size,
                                      std::move(fd));
}

Result<BlobLease> BlobCache::put(std::string_view digest, std::string_view content,
                                 std::string_view source) const {
  KILN_ASSIGN_OR_RETURN(auto writer, begin(digest, static_cast<std::int64_t>(content.size())));
  KILN_RETURN_IF_ERROR(writer->write(content));
  KILN_RETURN_IF_ERROR(writer->commit(source));
  return writer->lease();
}

Result<std::optional<BlobLease>> BlobCache::lease(std::string_view digest) const {
  KILN_ASSIGN_OR_RETURN(auto fd, open_leased(path_of(digest)));
  if (!fd) return std::optional<BlobLease>();
  return std::optional<BlobLease>(BlobLease(std::move(*fd)));
}

namespace {

struct CachedBlob {
  std::string path;
  std::uint64_t bytes = 0;
  std::chrono::system_clock::time_point used;
};

Result<std::vector<CachedBlob>> list_blobs(const std::string& dir) {
  std::vector<CachedBlob> out;
  std::string blobs = dir + "/blobs/sha256";
  if (!path_exists(blobs)) return out;
  KILN_ASSIGN_OR_RETURN(auto names, list_dir(blobs));
  for (const auto& name : names) {
    CachedBlob blob{blobs + "/" + name, 0, {}};
    struct stat st {};
    if (::lstat(blob.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // pruned meanwhile
    blob.bytes = static_cast<std::uint64_t>(st.st_size);
    blob.used = mtime_of(st);
    out.push_back(std::move(blob));
  }
  return out;
}

}  // namespace

Result<ImageCacheUsage> BlobCache::usage() const {
  KILN_ASSIGN_OR_RETURN(auto blobs, list_blobs(dir_));
  ImageCacheUsage usage;
  for (const auto& blob : blobs) usage.bytes += blob.bytes;
  usage.blobs = blobs.size();
  return usage;
}

Result<ImageCachePruneReport> BlobCache::prune(const ImageCachePruneOptions& options) const {
  KILN_ASSIGN_OR_RETURN(auto blobs, list_blobs(dir_));
  std::ranges::sort(blobs, {}, &CachedBlob::used);
  ImageCachePruneReport report;
  for (const auto& blob : blobs) report.bytes_left += blob.bytes;
  for (const auto& blob : blobs) {
    if (report.bytes_left <= options.max_bytes || blob.used >= options.used_before) break;
    UniqueFd fd(::open(blob.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;  // removed meanwhile
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return errno_error("cannot lock " + blob.path);
      ++report.kept_in_use;
      continue;
    }
    // A pull may have leased and released it since it was listed: then it is recent.
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + blob.path);
    if (st.st_nlink == 0 || mtime_of(st) >= options.used_before) continue;
    if (::unlink(blob.path.c_str()) != 0 && errno != ENOENT) return errno_error("cannot remove " + blob.path);
    ++report.removed;
    report.bytes += blob.bytes;
    report.bytes_left -= blob.bytes;
    if (options.enough && options.enough()) break;
  }
  return report;
}

Result<std::optional<TagRecord>> BlobCache::read_tag(const std::string& reference) const {
  std::string path = dir_ + "/tags/" + sha256_hex(reference);
  if (!path_exists(path)) return std::optional<TagRecord>();
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(path, 1 << 16));
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("digest") || !json["digest"].is_string() ||
      json.value("reference", "") != reference)
    return std::optional<TagRecord>();  // damaged or a hash collision: ask again
  TagRecord record;
  record.digest = json["digest"].get<std::string>();
  record.media_type = json.value("media_type", "");
  return std::optional<TagRecord>(std::move(record));
}

Status BlobCache::write_tag(const std::string& reference, const TagRecord& record) const {
  nlohmann::json json = {
      {"reference", reference}, {"digest", record.digest}, {"media_type", record.media_type}};
  return write_file_atomically(dir_ + "/tags/" + sha256_hex(reference), json.dump() + "\n");
}

std::unique_ptr<ImageFiles> BlobCache::files() const {
  return open_image_directory(dir_);
}

}  // namespace kiln::fetcher::internal
