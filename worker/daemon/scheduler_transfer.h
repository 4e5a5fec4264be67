// What a worker's chunked transfers with the scheduler share (context_fetch.h
// reads a build context with get-context, output_upload.h sends a job's
// output with put-output): their options, the DEALER socket of their own, and
// waiting for the answer to one request.
//
//   SchedulerChannel channel(zmq_ctx, "tcp://127.0.0.1:7801", options.curve);
//   proto::send(channel.socket(), proto::PutOutput{.request_id = 7, ...});
//   KILN_ASSIGN_OR_RETURN(std::optional<proto::ContextAck> ack,
//                         channel.await<proto::ContextAck>(7, options.chunk_timeout, cancel, "sending the output"));
//   if (!ack) ...  // no answer in time: send it again
//
// await() polls in 100 ms slices so that a cancel is noticed; it skips
// malformed frames and answers to earlier (timed-out) requests. Errors: the
// scheduler's error reply to this request (its kind and message), kCancelled
// ("cancelled while WHAT"), a failed CurveZMQ handshake.
// Thread safety: one thread per channel.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/cancel_token.h"
#include "common/error.h"
#include "common/proto/curve.h"
#include "common/proto/messages.h"
#include "common/proto/transport.h"

namespace kiln::worker {

struct TransferOptions {
  std::chrono::milliseconds chunk_timeout{10000};
  int retries = 5;
  std::uint32_t chunk_bytes = 1u << 20;
  // The assigned attempt the transfer is for: the scheduler serves a context,
  // and takes an output, only from the worker holding a job that has it.
  std::string job_id;
  std::uint32_t attempt = 0;
  // The worker's CurveZMQ keys (empty: plaintext).
  proto::CurveClientKeys curve;
};

class SchedulerChannel {
 public:
  SchedulerChannel(zmq::context_t& context, const std::string& scheduler_address,
                   const proto::CurveClientKeys& curve);

  zmq::socket_t& socket() { return socket_; }

  // The answer of type Reply to request `request_id`, or nullopt when none
  // came within `timeout`.
  template <class Reply>
  Result<std::optional<Reply>> await(std::uint64_t request_id, std::chrono::milliseconds timeout,
                                     const CancelToken* cancel, std::string_view what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      KILN_ASSIGN_OR_RETURN(std::optional<proto::Frame> frame, next_frame(cancel, what));
      if (!frame) continue;
      if (frame->type == proto::Type::kError) {
        auto reply = proto::decode<proto::ErrorReply>(frame->body);
        if (!reply || (reply->request_id != 0 && reply->request_id != request_id)) continue;
        return std::unexpected(proto::to_error(*reply));
      }
      if (frame->type != Reply::kType) continue;
      auto answer = proto::decode<Reply>(frame->body);
      if (!answer || answer->request_id != request_id) continue;  // an answer to an earlier request
      return std::optional<Reply>(std::move(*answer));
    }
    return std::optional<Reply>();
  }

 private:
  // One 100 ms slice: a received frame, or nullopt.
  Result<std::optional<proto::Frame>> next_frame(const CancelToken* cancel, std::string_view what);

  zmq::socket_t socket_;
  proto::HandshakeWatch watch_;
};

}  // namespace kiln::worker
