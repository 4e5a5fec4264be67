// Decoders for the two streamed answer formats of the docker engine API, fed
// piece by piece as the bytes arrive (docker_client.h uses them; pure, so
// they are unit-tested without a daemon).
//
//   StreamDemuxer demux([&](StreamKind kind, std::string_view bytes) { log.append(bytes); });
//   KILN_RETURN_IF_ERROR(demux.feed(chunk));      // for every chunk received
//   KILN_RETURN_IF_ERROR(demux.finish());         // at the end of the stream
//
//   JsonMessageStream messages([&](const nlohmann::json& m) -> Status { ...; return {}; });
//   KILN_RETURN_IF_ERROR(messages.feed(chunk));
//
// StreamDemuxer: the multiplexed stdout/stderr format of /containers/ID/attach
// and /logs for a container without a TTY — frames of an 8-byte header
// (stream type 0 stdin, 1 stdout, 2 stderr; three zero bytes; payload length,
// 32-bit big-endian) then the payload. Payload is passed on as it arrives,
// never buffered whole, so a frame of any size costs no memory.
//
// JsonMessageStream: the progress stream of /images/create (pull) and other
// endpoints — JSON objects one after another, each normally on its own line.
// A message that reports an error ({"error": ..., "errorDetail": ...}) is
// turned into an Error (the daemon answers 200 and reports failures in-band).
//
// Errors: kInvalidArgument for a malformed stream (a header with an unknown
// stream type: the container has a TTY; a message that is not JSON or longer
// than 1 MiB; a stream that ends inside a frame or message). Thread safety:
// none; one decoder per stream.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace kiln::docker {

enum class StreamKind : std::uint8_t { kStdin = 0, kStdout = 1, kStderr = 2 };

class StreamDemuxer {
 public:
  using Sink = std::function<void(StreamKind kind, std::string_view bytes)>;
  explicit StreamDemuxer(Sink sink) : sink_(std::move(sink)) {}

  // Decodes `bytes`, calling the sink for each piece of payload (never with an
  // empty piece). After an error the demuxer stays failed.
  Status feed(std::string_view bytes);
  // Checks that the stream ended on a frame boundary.
  Status finish() const;
  // Payload bytes passed to the sink so far.
  std::uint64_t payload_bytes() const { return payload_bytes_; }

 private:
  Sink sink_;
  std::array<unsigned char, 8> header_{};
  std::size_t header_len_ = 0;
  std::uint64_t remaining_ = 0;  // payload bytes left in the current frame
  StreamKind kind_ = StreamKind::kStdout;
  std::uint64_t payload_bytes_ = 0;
  bool failed_ = false;
};

class JsonMessageStream {
 public:
  // Called for each message that is not an error; an error it returns stops
  // the stream and is returned by feed().
  using Handler = std::function<Status(const nlohmann::json& message)>;
  static constexpr std::size_t kMaxMessageBytes = 1 << 20;

  explicit JsonMessageStream(Handler handler) : handler_(std::move(handler)) {}

  // Decodes every complete line in `bytes`. An error message in the stream
  // becomes kUnavailable with the daemon's text ("manifest unknown" and "not
  // found" answers: kNotFound).
  Status feed(std::string_view bytes);
  // Decodes a last message not followed by a newline.
  Status finish();

 private:
  Status handle_line(std::string_view line);

  Handler handler_;
  std::string pending_;
  bool failed_ = false;
};

}  // namespace kiln::docker
