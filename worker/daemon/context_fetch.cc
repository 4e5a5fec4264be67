#include "worker/daemon/context_fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "common/proto/transport.h"
#include "common/sha256.h"

namespace kiln::worker {

Result<std::string> context_digest_hex(const std::string& digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!digest.starts_with(kPrefix) || !is_sha256_hex(std::string_view(digest).substr(kPrefix.size())))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("context digest {:?} is not \"sha256:\" followed by 64 lowercase hex "
                                  "characters",
                                  digest));
  return digest.substr(kPrefix.size());
}

Result<std::string> fetch_context_tar(zmq::context_t& context, const std::string& scheduler_address,
                                      const std::string& digest, const std::string& cache_dir,
                                      const CancelToken* cancel, const ContextFetchOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::string hex, context_digest_hex(digest));
  namespace fs = std::filesystem;
  const std::string final_path = cache_dir + "/" + hex + ".tar";
  std::error_code ec;
  if (fs::is_regular_file(final_path, ec)) {
    // Its mtime says when it was last used: the worker removes long-unused contexts.
    ::utimensat(AT_FDCWD, final_path.c_str(), nullptr, 0);
    return final_path;
  }
  fs::create_directories(cache_dir, ec);
  if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot create {}: {}", cache_dir, ec.message()));

  // Unique per call: two jobs fetching the same context do not share a file.
  static std::atomic<std::uint64_t> counter{0};
  const std::string tmp_path = fmt::format("{}/.{}.{}.{}.part", cache_dir, hex, ::getpid(), ++counter);
  struct RemoveOnExit {
    std::string path;
    ~RemoveOnExit() {
      std::error_code ignored;
      fs::remove(path, ignored);
    }
  } cleanup{tmp_path};
  std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
  if (!out) return errno_error("cannot create " + tmp_path);

  SchedulerChannel channel(context, scheduler_address, options.curve);

  Sha256 hash;
  std::uint64_t offset = 0;
  std::uint64_t total = 0;
  bool know_total = false;
  std::uint64_t request_id = 0;
  int attempts_left = options.retries;
  while (!know_total || offset < total) {
    if (cancel != nullptr && cancel->cancelled())
      return make_error(ErrorKind::kCancelled, "cancelled while fetching the build context");
    ++request_id;
    proto::GetContext request{.request_id = request_id,
                              .digest = digest,
                              .offset = offset,
                              .max_bytes = options.chunk_bytes,
                              .job_id = options.job_id,
                              .attempt = options.attempt};
    proto::send(channel.socket(), request);
    auto answered = channel.await<proto::ContextChunk>(request_id, options.chunk_timeout, cancel,
                                                       "fetching the build context");
    if (!answered) {
      Error e = std::move(answered.error());
      if (e.kind() == ErrorKind::kNotFound)
        return make_error(ErrorKind::kNotFound,
                          fmt::format("the scheduler does not have build context {} ({}); resubmit the job "
                                      "so that the client uploads it again",
                                      digest, e.message()));
      if (e.kind() == ErrorKind::kCancelled) return std::unexpected(std::move(e));
      return std::unexpected(std::move(e).with_context("fetching build context " + digest));
    }
    std::optional<proto::ContextChunk>& chunk = *answered;
    if (!chunk) {
      if (--attempts_left < 0)
        return make_error(
            ErrorKind::kUnavailable,
            fmt::format("the scheduler at {} did not send build context {} (no answer at offset "
                        "{}); is kiln-scheduler running?",
                        scheduler_address, digest, offset));
      continue;  // asked again
    }
    if (chunk->offset != offset || chunk->digest != digest)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("the scheduler answered offset {} of {} when asked for offset {} of {}",
                                    chunk->offset, chunk->digest, offset, digest));
    if (know_total && chunk->total_size != total)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("build context {} changed size while being fetched", digest));
    total = chunk->total_size;
    know_total = true;
    if (chunk->data.empty() && offset < total)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("the scheduler sent an empty chunk of {} at offset {}", digest, offset));
    if (offset + chunk->data.size() > total)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("the scheduler sent more than the {} bytes of {}", total, digest));
    out.write(chunk->data.data(), static_cast<std::streamsize>(chunk->data.size()));
    if (!out) return errno_error("cannot write " + tmp_path);
    hash.update(chunk->data);
    offset += chunk->data.size();
    attempts_left = options.retries;
  }
  out.close();
  if (!out) return errno_error("cannot write " + tmp_path);
  std::string got = hash.hex_digest();
  if (got != hex)
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("build context {} arrived with SHA-256 {}; the scheduler's copy is damaged, "
                    "upload it again",
                    digest, got));
  fs::rename(tmp_path, final_path, ec);
  if (ec)
    return make_error(ErrorKind::kIo, fmt::format("cannot move {} into place: {}", tmp_path, ec.message()));
  return final_path;
}

std::size_t remove_unused_contexts(const std::string& cache_dir,
                                   std::chrono::system_clock::duration max_age) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  std::size_t removed = 0;
  for (fs::directory_iterator it(cache_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // Cached tars, and partial downloads a crash left behind.
    if (!name.ends_with(".tar") && !name.ends_with(".part")) continue;
    std::error_code time_ec;
    auto mtime = it->last_write_time(time_ec);
    if (time_ec || now - mtime < max_age) continue;
    if (fs::remove(it->path(), time_ec)) ++removed;
  }
  return removed;
}

void remove_partial_contexts(const std::string& cache_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(cache_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->path().filename().string().ends_with(".part")) continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

}  // namespace kiln::worker
