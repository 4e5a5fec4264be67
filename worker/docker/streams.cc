#include "worker/docker/streams.h"

#include <algorithm>

#include <fmt/format.h>

namespace kiln::docker {

Status StreamDemuxer::feed(std::string_view bytes) {
  if (failed_) return make_error(ErrorKind::kInvalidArgument, "the output stream is already malformed");
  while (!bytes.empty()) {
    if (remaining_ == 0) {
      std::size_t take = std::min(bytes.size(), header_.size() - header_len_);
      std::copy_n(bytes.begin(), take, header_.begin() + static_cast<std::ptrdiff_t>(header_len_));
      header_len_ += take;
      bytes.remove_prefix(take);
      if (header_len_ < header_.size()) return {};
      header_len_ = 0;
      if (header_[0] > 2 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0) {
        failed_ = true;
        return make_error(
            ErrorKind::kInvalidArgument,
            fmt::format("the container's output is not in docker's multiplexed format (a frame "
                        "header starts {:02x} {:02x} {:02x} {:02x}); was it created with a TTY?",
                        header_[0], header_[1], header_[2], header_[3]));
      }
      kind_ = static_cast<StreamKind>(header_[0]);
      remaining_ = (std::uint64_t{header_[4]} << 24) | (std::uint64_t{header_[5]} << 16) |
                   (std::uint64_t{header_[6]} << 8) | std::uint64_t{header_[7]};
      continue;  // a zero-length frame is only a header
    }
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), remaining_));
    sink_(kind_, bytes.substr(0, take));
    payload_bytes_ += take;
    remaining_ -= take;
    bytes.remove_prefix(take);
  }
  return {};
}

Status StreamDemuxer::finish() const {
  if (failed_) return make_error(ErrorKind::kInvalidArgument, "the output stream was malformed");
  if (header_len_ != 0)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("the output stream ended inside a frame header ({} of 8 bytes)", header_len_));
  if (remaining_ != 0)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the output stream ended {} bytes before the end of a frame", remaining_));
  return {};
}

Status JsonMessageStream::feed(std::string_view bytes) {
  if (failed_) return make_error(ErrorKind::kInvalidArgument, "the message stream already failed");
  while (!bytes.empty()) {
    std::size_t newline = bytes.find('\n');
    std::string_view piece = bytes.substr(0, newline);
    if (pending_.size() + piece.size() > kMaxMessageBytes) {
      failed_ = true;
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("a message in dockerd's stream is longer than {} bytes", kMaxMessageBytes));
    }
    pending_.append(piece);
    if (newline == std::string_view::npos) return {};
    bytes.remove_prefix(newline + 1);
    std::string line = std::move(pending_);
    pending_.clear();
    if (auto s = handle_line(line); !s) {
      failed_ = true;
      return s;
    }
  }
  return {};
}

Status JsonMessageStream::finish() {
  if (failed_) return make_error(ErrorKind::kInvalidArgument, "the message stream failed");
  std::string line = std::move(pending_);
  pending_.clear();
  return handle_line(line);
}

Status JsonMessageStream::handle_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return {};
  nlohmann::json message = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("dockerd's stream holds a line that is not a JSON object: {:.200}", line));
  std::string error;
  if (auto detail = message.find("errorDetail"); detail != message.end() && detail->is_object()) {
    if (auto m = detail->find("message"); m != detail->end() && m->is_string()) error = m->get<std::string>();
  }
  if (error.empty()) {
    if (auto e = message.find("error"); e != message.end() && e->is_string()) error = e->get<std::string>();
  }
  if (!error.empty()) {
    bool missing = error.find("not found") != std::string::npos ||
                   error.find("manifest unknown") != std::string::npos ||
                   error.find("does not exist") != std::string::npos;
    return make_error(missing ? ErrorKind::kNotFound : ErrorKind::kUnavailable, error);
  }
  return handler_(message);
}

}  // namespace kiln::docker
