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
  return {};
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

Status replay_log_file(const std::string& path, const LogSink& sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("opening build log " + path);
  char buf[16384];
  Status status;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = errno_error("reading build log " + path);
      break;
    }
    if (n == 0) break;
    if (sink) sink(LogTag::kOutput, std::string_view(buf, static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return status;
}

}  // namespace kiln::builder
