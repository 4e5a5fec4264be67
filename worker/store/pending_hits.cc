#include "worker/store/pending_hits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace kiln::store {

Status append_pending_hits(const std::string& path, const std::vector<PendingHit>& hits) {
  if (hits.empty()) return {};
  std::string text;
  for (const auto& hit : hits) text += fmt::format("{} {}\n", hit.id, hit.used_us);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return errno_error("opening " + path);
  // Bounded: past the size the next writable open reads, hits are dropped.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("reading the size of " + path);
  if (static_cast<std::uint64_t>(st.st_size) + text.size() > kMaxPendingHitsBytes) return {};
  ssize_t n = ::write(fd.get(), text.data(), text.size());
  if (n < 0) return errno_error("writing " + path);
  if (static_cast<std::size_t>(n) != text.size())
    return make_error(ErrorKind::kIo,
                      fmt::format("writing {}: short write ({} of {} bytes)", path, n, text.size()));
  return {};
}

Result<std::vector<PendingHit>> read_pending_hits(const std::string& path) {
  std::vector<PendingHit> hits;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return hits;
    return errno_error("opening " + path);
  }
  std::string text(kMaxPendingHitsBytes, '\0');
  std::size_t size = 0;
  while (size < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading " + path);
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  text.resize(size);
  std::string_view rest(text);
  while (!rest.empty()) {
    std::size_t end = rest.find('\n');
    if (end == std::string_view::npos) break;  // a torn last line (or the size cap)
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    std::size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos) continue;
    PendingHit hit{.id = std::string(line.substr(0, space))};
    std::string_view number = line.substr(space + 1);
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), hit.used_us);
    if (ec != std::errc() || ptr != number.data() + number.size()) continue;
    hits.push_back(std::move(hit));
  }
  return hits;
}

Result<std::vector<PendingHit>> take_pending_hits(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(auto hits, read_pending_hits(path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("removing " + path);
  return hits;
}

}  // namespace kiln::store
