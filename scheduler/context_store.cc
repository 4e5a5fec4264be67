#include "scheduler/context_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/sha256.h"

namespace kiln::scheduler {
namespace fs = std::filesystem;

ContextStore::ContextStore(std::string dir, std::uint64_t max_bytes, BlobNames names)
    : dir_(std::move(dir)), max_bytes_(max_bytes), names_(std::move(names)) {}

Status ContextStore::init() {
  std::error_code ec;
  fs::create_directories(dir_ + "/partial", ec);
  if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot create {}/partial: {}", dir_, ec.message()));
  return {};
}

Result<std::string> ContextStore::hex_of(const std::string& digest) {
  constexpr std::string_view kPrefix = "sha256:";
  bool ok = digest.size() == kPrefix.size() + 64 && digest.starts_with(kPrefix);
  for (std::size_t i = kPrefix.size(); ok && i < digest.size(); ++i) {
    char c = digest[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }
  if (!ok) {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("digest {:?} is not \"sha256:\" and 64 lowercase hex digits", digest));
  }
  return digest.substr(kPrefix.size());
}

bool ContextStore::has(const std::string& digest) const {
  auto hex = hex_of(digest);
  if (!hex) return false;
  struct stat st;
  return ::stat((dir_ + "/" + *hex + ".tar").c_str(), &st) == 0;
}

Result<ContextPutResult> ContextStore::put(const std::string& digest, std::uint64_t total_size,
                                           std::uint64_t offset, std::string_view data) {
  KILN_ASSIGN_OR_RETURN(std::string hex, hex_of(digest));
  const std::string final_path = dir_ + "/" + hex + ".tar";
  struct stat st;
  if (::stat(final_path.c_str(), &st) == 0)
    return ContextPutResult{static_cast<std::uint64_t>(st.st_size), true};
  if (total_size > max_bytes_) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} {} is {} bytes, over the scheduler's limit of {} bytes ({}); {}",
                                  names_.noun, digest, total_size, max_bytes_, names_.limit_flag,
                                  names_.too_big_hint));
  }
  const std::string partial = dir_ + "/partial/" + hex;
  std::uint64_t received = ::stat(partial.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  if (offset != received || received + data.size() > total_size) {
    // Out of order or a repeat: say where to resume.
    return ContextPutResult{received, false};
  }
  int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error(fmt::format("cannot write {}", partial));
  std::size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = errno_error(fmt::format("cannot write {}", partial));
      ::close(fd);
      return err;
    }
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);
  received += data.size();
  if (received < total_size) return ContextPutResult{received, false};

  KILN_ASSIGN_OR_RETURN(Digest digest_bytes, sha256_file(partial));
  const std::string actual = to_hex(digest_bytes);
  if (actual != hex) {
    ::unlink(partial.c_str());
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} upload does not match its digest: announced sha256:{}, received "
                                  "sha256:{} ({} bytes); upload it again",
                                  names_.noun, hex, actual, received));
  }
  if (::rename(partial.c_str(), final_path.c_str()) != 0)
    return errno_error(fmt::format("cannot store {}", final_path));
  return ContextPutResult{received, true};
}

Result<ContextRead> ContextStore::read(const std::string& digest, std::uint64_t offset,
                                       std::size_t max_bytes) const {
  KILN_ASSIGN_OR_RETURN(std::string hex, hex_of(digest));
  const std::string path = dir_ + "/" + hex + ".tar";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(ErrorKind::kNotFound,
                        fmt::format("the scheduler holds no {} {}", names_.noun, digest));
    }
    return errno_error(fmt::format("cannot read {}", path));
  }
  struct stat st;
  ::fstat(fd, &st);
  ContextRead out;
  out.total_size = static_cast<std::uint64_t>(st.st_size);
  if (offset < out.total_size) {
    out.data.resize(std::min<std::uint64_t>(max_bytes, out.total_size - offset));
    ssize_t n = ::pread(fd, out.data.data(), out.data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      auto err = errno_error(fmt::format("cannot read {}", path));
      ::close(fd);
      return err;
    }
    out.data.resize(static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

ExpireResult ContextStore::expire(std::int64_t older_than_ms, std::uint64_t max_total_bytes) {
  struct Tar {
    std::int64_t mtime_ms;
    std::uint64_t bytes;
    std::string path;
  };
  auto mtime_ms = [](const struct stat& st) {
    return std::int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
  };
  ExpireResult out;
  auto remove = [&](const std::string& path, std::uint64_t bytes) {
    if (::unlink(path.c_str()) == 0) {
      ++out.removed;
      out.removed_bytes += bytes;
    }
  };
  std::vector<Tar> tars;
  for (const std::string& sub : {std::string(), std::string("/partial")}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_ + sub, ec)) {
      struct stat st;
      const std::string path = entry.path().string();
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      const auto bytes = static_cast<std::uint64_t>(st.st_size);
      if (mtime_ms(st) < older_than_ms) {
        remove(path, bytes);
      } else if (sub.empty()) {
        tars.push_back({mtime_ms(st), bytes, path});
      }
    }
  }
  std::sort(tars.begin(), tars.end(), [](const Tar& a, const Tar& b) { return a.mtime_ms < b.mtime_ms; });
  std::uint64_t total = 0;
  for (const Tar& t : tars) total += t.bytes;
  for (const Tar& t : tars) {
    if (total <= max_total_bytes) break;
    remove(t.path, t.bytes);
    total -= t.bytes;
  }
  out.kept_bytes = total;
  return out;
}

}  // namespace kiln::scheduler
