#include "worker/daemon/output_upload.h"

#include <unistd.h>

#include <optional>

#include <fmt/format.h>

#include "common/proto/messages.h"
#include "common/proto/transport.h"

namespace kiln::worker {
namespace {

// The scheduler answered without progress this many times in a row: give up
// rather than spin (a bug on one side, not something waiting fixes).
constexpr int kMaxStalls = 16;

Status read_chunk(int fd, std::uint64_t offset, std::string& chunk) {
  std::size_t got = 0;
  while (got < chunk.size()) {
    ssize_t n = ::pread(fd, chunk.data() + got, chunk.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read the output tar");
    if (n == 0) return make_error(ErrorKind::kIo, "the output tar is shorter than its size");
    got += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

Status upload_output(zmq::context_t& context, const std::string& scheduler_address, const std::string& digest,
                     int fd, std::uint64_t size, const CancelToken* cancel, const OutputUploadOptions& options) {
  SchedulerChannel channel(context, scheduler_address, options.curve);

  std::uint64_t offset = 0;
  std::uint64_t request_id = 0;
  int attempts_left = options.retries;
  int stalls = 0;
  std::string chunk;
  while (true) {
    if (cancel != nullptr && cancel->cancelled())
      return make_error(ErrorKind::kCancelled, "cancelled while sending the output");
    chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(options.chunk_bytes, size - offset)));
    KILN_RETURN_IF_ERROR(read_chunk(fd, offset, chunk));
    ++request_id;
    proto::send(channel.socket(), proto::PutOutput{.request_id = request_id,
                                         .job_id = options.job_id,
                                         .attempt = options.attempt,
                                         .digest = digest,
                                         .total_size = size,
                                         .offset = offset,
                                         .data = chunk});
    KILN_ASSIGN_OR_RETURN(std::optional<proto::ContextAck> ack,
                          with_context(channel.await<proto::ContextAck>(request_id, options.chunk_timeout, cancel,
                                                                         "sending the output"),
                                       "sending output " + digest));
    if (!ack) {
      if (--attempts_left < 0)
        return make_error(ErrorKind::kUnavailable,
                          fmt::format("the scheduler at {} did not take output {} (no answer at offset {}); "
                                      "is kiln-scheduler running?",
                                      scheduler_address, digest, offset));
      continue;  // the same chunk again
    }
    attempts_left = options.retries;
    if (ack->complete) return {};
    if (ack->received > size)
      return make_error(ErrorKind::kInternal,
                        fmt::format("the scheduler holds {} bytes of the {}-byte output {}", ack->received,
                                    size, digest));
    if (ack->received == size)
      return make_error(ErrorKind::kInternal,
                        fmt::format("the scheduler holds all {} bytes of output {} but did not store it", size,
                                    digest));
    stalls = ack->received > offset ? 0 : stalls + 1;
    if (stalls >= kMaxStalls)
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("the scheduler does not accept output {} (stuck at offset {})", digest,
                                    ack->received));
    offset = ack->received;
  }
}

}  // namespace kiln::worker
