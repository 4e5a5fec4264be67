#include "worker/builder/build_log.h"

#include <algorithm>
#include <cerrno>
#include <optional>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/fs.h"

namespace kiln::builder {
namespace {

// Pieces kept in memory for requesters who join late; past this (with a
// file attached) they are read back from the file.
constexpr std::size_t kMemoryPiecesBytes = 256u << 10;
// What tail() looks at.
constexpr std::size_t kTailBytes = 64u << 10;
// Reads of a log file when replaying it.
constexpr std::size_t kReplayChunk = 64u << 10;

// Sends `length` bytes of `fd` from `offset` to `sink` as `tag`, in chunks.
// False when the file ends early or cannot be read.
bool replay_range(int fd, std::uint64_t offset, std::uint64_t length, LogTag tag, const LogSink& sink) {
  std::string buf;
  while (length > 0) {
    buf.resize(std::min<std::uint64_t>(length, kReplayChunk));
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sink(tag, std::string_view(buf.data(), static_cast<std::size_t>(n)));
    offset += static_cast<std::uint64_t>(n);
    length -= static_cast<std::uint64_t>(n);
  }
  return true;
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

BuildLog::~BuildLog() = default;

void BuildLog::append_line(LogTag tag, std::string_view line) {
  std::string text(line);
  if (!text.ends_with('\n')) text += '\n';
  append(tag, text);
}

void BuildLog::append(LogTag tag, std::string_view text) {
  if (text.empty()) return;
  std::lock_guard lock(mu_);
  if (!runs_.empty() && runs_.back().first == tag) {
    runs_.back().second += text.size();
  } else {
    runs_.emplace_back(tag, text.size());
  }
  total_bytes_ += text.size();
  tail_.append(text.substr(text.size() > kTailBytes ? text.size() - kTailBytes : 0));
  if (tail_.size() > 2 * kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
  if (!spilled_) {
    if (fd_ && pieces_bytes_ + text.size() > kMemoryPiecesBytes) {
      // The file holds everything so far (attach_file wrote the pieces):
      // replays read it from now on.
      pieces_.clear();
      pieces_.shrink_to_fit();
      pieces_bytes_ = 0;
      spilled_ = true;
    } else {
      pieces_.emplace_back(tag, std::string(text));
      pieces_bytes_ += text.size();
    }
  }
  if (fd_ && !write_error_) {
    if (auto s = write_all(fd_.get(), text, "build log " + path_); !s) write_error_ = s.error();
  }
  for (const auto& [handle, sink] : sinks_) sink(tag, text);
}

void BuildLog::replay_locked(const LogSink& sink) const {
  if (!spilled_) {
    for (const auto& [tag, text] : pieces_) sink(tag, text);
    return;
  }
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  std::uint64_t offset = 0;
  for (const auto& [tag, length] : runs_) {
    if (!fd || write_error_ || !replay_range(fd.get(), offset, length, tag, sink)) {
      // The file is gone (moved into the store already) or incomplete.
      sink(LogTag::kNote, fmt::format("[kiln: {} bytes of this step's log could not be read back from {}]\n",
                                      total_bytes_ - offset, path_));
      return;
    }
    offset += length;
  }
}

std::size_t BuildLog::memory_bytes() const {
  std::lock_guard lock(mu_);
  return pieces_bytes_ + tail_.size();
}

void BuildLog::progress(std::string_view line) {
  std::string text(line);
  if (!text.ends_with('\n')) text += '\n';
  std::lock_guard lock(mu_);
  for (const auto& [handle, sink] : sinks_) sink(LogTag::kNote, text);
}

Status BuildLog::attach_file(const std::string& path) {
  // O_TRUNC: on a store that clones the base, the directory starts with the
  // base step's log, which is not this step's.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return errno_error("creating build log " + path);
  std::lock_guard lock(mu_);
  fd_ = std::move(fd);
  path_ = path;
  write_error_.reset();
  for (const auto& [tag, text] : pieces_) {
    if (auto s = write_all(fd_.get(), text, "build log " + path_); !s) {
      write_error_ = s.error();
      break;
    }
  }
  return {};
}

Status BuildLog::detach_file() {
  std::lock_guard lock(mu_);
  if (!fd_) return {};
  int close_error = fd_.close();
  if (write_error_) return std::unexpected(*write_error_);
  if (close_error != 0) return errno_error("closing build log " + path_, close_error);
  // The tags, as one "TAG LENGTH" line per run of pieces with the same tag.
  std::string index;
  for (const auto& [tag, length] : runs_) index += fmt::format("{} {}\n", log_tag_name(tag), length);
  return write_file(log_tags_path(path_), index);
}

std::uint64_t BuildLog::subscribe(LogSink sink) {
  std::lock_guard lock(mu_);
  std::uint64_t handle = next_handle_++;
  if (!sink) return handle;
  replay_locked(sink);
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
  replay_locked([&](LogTag, std::string_view text) { out.append(text); });
  return out;
}

std::string BuildLog::tail(std::size_t max_lines) const {
  std::string all;
  {
    std::lock_guard lock(mu_);
    all = tail_;
  }
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

// The tag runs of a saved log, or nullopt when the index is missing or does
// not add up to the log's size (then the log is replayed untagged).
std::optional<std::vector<std::pair<LogTag, std::uint64_t>>> read_tag_index(const std::string& log_path,
                                                                            std::uint64_t log_size) {
  auto text = read_file(log_tags_path(log_path), 1 << 20);
  if (!text) return std::nullopt;
  std::vector<std::pair<LogTag, std::uint64_t>> runs;
  std::uint64_t total = 0;
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
    std::uint64_t length = std::stoull(std::string(digits));
    total += length;
    runs.emplace_back(tag, length);
  }
  if (total != log_size) return std::nullopt;
  return runs;
}

}  // namespace

Status replay_log_file(const std::string& path, const LogSink& sink) {
  // Read a piece at a time: a step may have printed gigabytes.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("reading build log " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("reading build log " + path);
  if (!sink) return {};
  const auto size = static_cast<std::uint64_t>(st.st_size);
  auto runs = read_tag_index(path, size);
  if (!runs) runs = std::vector<std::pair<LogTag, std::uint64_t>>{{LogTag::kOutput, size}};
  std::uint64_t offset = 0;
  for (const auto& [tag, length] : *runs) {
    if (length > 0 && !replay_range(fd.get(), offset, length, tag, sink))
      return make_error(ErrorKind::kIo, fmt::format("cannot read build log {} to its end", path));
    offset += length;
  }
  return {};
}

}  // namespace kiln::builder
