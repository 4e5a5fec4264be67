// Sending a job's output tar (`kiln submit --output`, docs/protocol.md
// "Outputs") to the scheduler with `put-output`, in chunks, before the job's
// job-done names it.
//
//   KILN_RETURN_IF_ERROR(upload_output(zmq_ctx, "tcp://127.0.0.1:7801", "sha256:" + hex, tar_fd, size,
//                                      &cancel, {.job_id = "j42", .attempt = 1}));
//
// The upload uses a DEALER socket of its own (the caller's thread owns it for
// the call) and sends 1 MiB chunks read with pread from `fd` (not moved),
// each answered by a context-ack saying how much the scheduler holds; the
// next chunk starts there (so a resumed or shared upload of the same digest
// skips what is stored). A chunk not answered within `chunk_timeout` is sent
// again (the scheduler may be restarting), up to `retries` times. Errors:
// the scheduler's refusal (kPermissionDenied for an attempt not assigned to
// this worker, kInvalidArgument for a tar over its --max-output-bytes or
// bytes that do not match the digest), kUnavailable when it does not answer,
// kCancelled, kIo reading `fd`.
// Thread safety: concurrent calls are fine.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/daemon/scheduler_transfer.h"

namespace kiln::worker {

using OutputUploadOptions = TransferOptions;

Status upload_output(zmq::context_t& context, const std::string& scheduler_address, const std::string& digest,
                     int fd, std::uint64_t size, const CancelToken* cancel, const OutputUploadOptions& options);

}  // namespace kiln::worker
