#include "worker/builder/build_log.h"

#include <cerrno>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kiln::builder {

namespace {

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("writing build log " + path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

std::string_view log_tag_name(LogTag tag) {
  switch (tag) {
    case LogTag::kHeading: return "heading";
    case LogTag::kNote: return "note";
    case LogTag::kOutput: return "output";
  }
  return "unknown";
}

BuildLog::~BuildLog() {
  if (fd_ >= 0) ::close(fd_);
}

void BuildLog::append_line(LogTag tag, std::string_view line) {
  std::string text(line);
  if (!text.ends_with('\n')) text += '\n';
  append(tag, text);
}

void BuildLog::append(LogTag tag, std::string_view text) {
  if (text.empty()) return;
  std::lock_guard lock(mu_);
  pieces_.emplace_back(tag, std::string(text));
  if (fd_ >= 0 && !write_error_) {
    if (auto s = write_all(fd_, text, path_); !s) write_error_ = s.error();
  }
  for (const auto& [handle, sink] : sinks_) sink(tag, text);
}

Status BuildLog::attach_file(const std::string& path) {
  // O_TRUNC: on a store that clones the base, the directory starts with the
  // base step's log, which is not this step's.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno_error("creating build log " + path);
  std::lock_guard lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  path_ = path;
  write_error_.reset();
  for (const auto& [tag, text] : pieces_) {
    if (auto s = write_all(fd_, text, path_); !s) {
      write_error_ = s.error();
      break;
    }
  }
  return {};
}

Status BuildLog::detach_file() {
  std::lock_guard lock(mu_);
  if (fd_ < 0) return {};
  int rc = ::close(fd_);
  fd_ = -1;
  if (write_error_) return std::unexpected(*write_error_);
  if (rc != 0) return errno_error("closing build log " + path_);
  // The tags, as one "TAG LENGTH" line per run of pieces with the same tag.
  std::string index;
  for (std::size_t i = 0; i < pieces_.size();) {
    LogTag tag = pieces_[i].first;
    std::size_t length = 0;
    for (; i < pieces_.size() && pieces_[i].first == tag; ++i) length += pieces_[i].second.size();
    index += fmt::format("{} {}\n", log_tag_name(tag), length);
  }
  std::string tags_path = log_tags_path(path_);
  int tags = ::open(tags_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (tags < 0) return errno_error("creating build log tags " + tags_path);
  Status written = write_all(tags, index, tags_path);
  if (::close(tags) != 0 && written) written = errno_error("closing build log tags " + tags_path);
  return written;
}

std::uint64_t BuildLog::subscribe(LogSink sink) {
  std::lock_guard lock(mu_);
  std::uint64_t handle = next_handle_++;
  if (!sink) return handle;
  for (const auto& [tag, text] : pieces_) sink(tag, text);
  sinks_.emplace(handle, std::move(sink));
  return handle;
}

void BuildLog::unsubscribe(std::uint64_t handle) {
  std::lock_guard lock(mu_);
  sinks_.erase(handle);
}

std::string BuildLog::text() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& piece : pieces_) out += piece.second;
  return out;
}

std::string BuildLog::tail(std::size_t max_lines) const {
  std::string all = text();
  if (all.ends_with('\n')) all.pop_back();
  // Walk back over `max_lines` newlines; what follows the last one found is the tail.
  std::size_t start = all.size();
  std::size_t lines = 0;
  while (start > 0 && lines < max_lines) {
    std::size_t nl = all.rfind('\n', start - 1);
    ++lines;
    if (nl == std::string::npos) {
      start = 0;
      break;
    }
    if (lines == max_lines) {
      start = nl + 1;
      break;
    }
    start = nl;
  }
  return all.substr(start);
}

std::string log_tags_path(const std::string& log_path) {
  return log_path + ".tags";
}

namespace {

Result<std::string> read_whole_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("opening " + path);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return errno_error("reading " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// The tag runs of a saved log, or nullopt when the index is missing or does
// not add up to the log's size (then the log is replayed untagged).
std::optional<std::vector<std::pair<LogTag, std::size_t>>> read_tag_index(const std::string& log_path,
                                                                          std::size_t log_size) {
  auto text = read_whole_file(log_tags_path(log_path));
  if (!text) return std::nullopt;
  std::vector<std::pair<LogTag, std::size_t>> runs;
  std::size_t total = 0;
  std::size_t pos = 0;
  while (pos < text->size()) {
    std::size_t nl = text->find('\n', pos);
    if (nl == std::string::npos) return std::nullopt;
    std::string_view line(text->data() + pos, nl - pos);
    pos = nl + 1;
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    std::string_view name = line.substr(0, space);
    std::string_view digits = line.substr(space + 1);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    LogTag tag;
    if (name == "heading") {
      tag = LogTag::kHeading;
    } else if (name == "note") {
      tag = LogTag::kNote;
    } else if (name == "output") {
      tag = LogTag::kOutput;
    } else {
      return std::nullopt;
    }
    std::size_t length = std::stoull(std::string(digits));
    total += length;
    runs.emplace_back(tag, length);
  }
  if (total != log_size) return std::nullopt;
  return runs;
}

}  // namespace

Status replay_log_file(const std::string& path, const LogSink& sink) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_whole_file(path));
  if (!sink) return {};
  auto runs = read_tag_index(path, text.size());
  if (!runs) {
    if (!text.empty()) sink(LogTag::kOutput, text);
    return {};
  }
  std::size_t offset = 0;
  for (const auto& [tag, length] : *runs) {
    if (length > 0) sink(tag, std::string_view(text).substr(offset, length));
    offset += length;
  }
  return {};
}

}  // namespace kiln::builder
