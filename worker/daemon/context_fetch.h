// Fetching an uploaded build context (a tar named by its SHA-256) from the
// scheduler with `get-context` (docs/protocol.md), into a cache of tars under
// the worker's state directory, so a context is fetched once per worker.
//
//   KILN_ASSIGN_OR_RETURN(std::string tar,
//       fetch_context_tar(zmq_ctx, "tcp://127.0.0.1:7801", "sha256:" + hex, state + "/contexts", &cancel));
//   // tar == state + "/contexts/" + hex + ".tar", its SHA-256 verified
//
// The fetch uses a DEALER socket of its own (the caller's thread owns it for
// the call), asks for 1 MiB chunks in order, writes them to a temporary file
// and checks the digest before renaming it into the cache: a cached tar is
// always complete and correct. A chunk that does not come within
// `chunk_timeout` is asked for again (the scheduler may be restarting), up to
// `retries` times. Errors: kInvalidArgument for a digest that is not
// "sha256:" + 64 lowercase hex, kNotFound when the scheduler does not have
// the context, kFailedPrecondition when the bytes do not match the digest,
// kUnavailable when the scheduler does not answer, kCancelled.
// Thread safety: concurrent calls (even for one digest) are fine.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <string>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/daemon/scheduler_transfer.h"

namespace kiln::worker {

using ContextFetchOptions = TransferOptions;

// The 64 hex characters of a "sha256:HEX" digest, or an error.
Result<std::string> context_digest_hex(const std::string& digest);

// Removes cached context tars (and partial downloads) not used for
// `max_age`: a cache hit in fetch_context_tar renews a tar's mtime. A tar
// a job has open stays readable to it. Returns how many files went.
std::size_t remove_unused_contexts(const std::string& cache_dir, std::chrono::system_clock::duration max_age);

// Removes every partial download in `cache_dir` (at start, when no fetch runs).
void remove_partial_contexts(const std::string& cache_dir);

Result<std::string> fetch_context_tar(zmq::context_t& context, const std::string& scheduler_address,
                                      const std::string& digest, const std::string& cache_dir,
                                      const CancelToken* cancel, const ContextFetchOptions& options = {});

}  // namespace kiln::worker
