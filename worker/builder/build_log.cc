#include "worker/builder/build_log.h"

#include <cerrno>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/fs.h"

namespace kiln::builder {

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
  pieces_.emplace_back(tag, std::string(text));
  if (fd_ && !write_error_) {
    if (auto s = write_all(fd_.get(), text, "build log " + path_); !s) write_error_ = s.error();
  }
  for (const auto& [handle, sink] : sinks_) sink(tag, text);
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
  for (std::size_t i = 0; i < pieces_.size();) {
    LogTag tag = pieces_[i].first;
    std::size_t length = 0;
    for (; i < pieces_.size() && pieces_[i].first == tag; ++i) length += pieces_[i].second.size();
    index += fmt::format("{} {}\n", log_tag_name(tag), length);
  }
  return write_file(log_tags_path(path_), index);
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

// The tag runs of a saved log, or nullopt when the index is missing or does
// not add up to the log's size (then the log is replayed untagged).
std::optional<std::vector<std::pair<LogTag, std::size_t>>> read_tag_index(const std::string& log_path,
                                                                          std::size_t log_size) {
  auto text = read_file(log_tags_path(log_path));
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
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(path));
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
