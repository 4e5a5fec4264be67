// Jobs' outputs (`kiln submit --output SRC:DESTDIR`, docs/images.md "Results
// out"): the worker holding an attempt uploads the tar of each SRC with
// put-output before its job-done names them; the job's client (or an admin)
// reads them with get-output. The tars live in STATE/outputs, stored once per
// digest, removed after --output-retention or when all of them are over
// --output-store-bytes (the oldest first). (Scheduler's members; see
// scheduler.h.)
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/format.h"
#include "scheduler/internal/handler_support.h"
#include "scheduler/scheduler.h"

namespace kiln::scheduler {
namespace {

constexpr std::uint32_t kMaxOutputChunk = 1 << 20;
// How often the output store is checked for tars past their retention.
constexpr std::int64_t kExpiryIntervalMs = 60'000;

}  // namespace

void Scheduler::on_put_output(const Incoming& m) {
  KILN_DECODE_OR_REPLY(put, proto::PutOutput, Port::kWorkers, m);
  // Only the worker running the attempt, for a job that asked for outputs.
  // The upload comes on a socket of its own: with keys, the key names the
  // worker; without (a trusted network) a registered worker's own connection
  // is still refused for another worker's job.
  const Job* job = jobs_.find(put.job_id);
  const WorkerRecord* registered = workers_.by_route(m.routing_id);
  const bool assigned =
      job != nullptr && is_active(job->state) && job->info.attempt == put.attempt && !job->info.outputs.empty() &&
      (m.peer ? m.peer->name == job->info.worker : registered == nullptr || registered->name == job->info.worker);
  if (!assigned) {
    spdlog::warn("{} sent output {} for job {:?} attempt {}, which is not its to send: refused",
                 m.peer ? m.peer->user_id() : internal::peer(m), put.digest, put.job_id, put.attempt);
    return reply_error(Port::kWorkers, m.routing_id, put.request_id,
                       Error(ErrorKind::kPermissionDenied,
                             fmt::format("output {} belongs to no job with outputs assigned to this worker "
                                         "(job {:?} attempt {})",
                                         put.digest, put.job_id, put.attempt)));
  }
  if (put.data.size() > kMaxOutputChunk) {
    return reply_error(Port::kWorkers, m.routing_id, put.request_id,
                       Error(ErrorKind::kInvalidArgument,
                             fmt::format("output chunk of {} bytes is over the 1 MiB limit", put.data.size())));
  }
  if (put.offset == 0 && !outputs_.has(put.digest)) {
    // Room for it first: the oldest outputs go when all of them would be over the bound.
    const std::uint64_t room =
        options_.output_store_bytes > put.total_size ? options_.output_store_bytes - put.total_size : 0;
    if (auto gone = outputs_.expire(clock_.wall_ms() - options_.output_retention_ms, room); gone.removed > 0)
      spdlog::info("outputs: removed {} ({}) to make room for {} of job {}", gone.removed,
                   human_bytes(gone.removed_bytes), put.digest, put.job_id);
  }
  auto result = outputs_.put(put.digest, put.total_size, put.offset, put.data);
  if (!result) {
    spdlog::warn("output upload {} of job {} failed: {}", put.digest, put.job_id, result.error().message());
    return reply_error(Port::kWorkers, m.routing_id, put.request_id, result.error());
  }
  if (result->complete && put.offset + put.data.size() == put.total_size)
    spdlog::info("output {} of job {} stored ({})", put.digest, put.job_id, human_bytes(put.total_size));
  reply(Port::kWorkers, m.routing_id,
        proto::ContextAck{.request_id = put.request_id,
                          .digest = put.digest,
                          .received = result->received,
                          .complete = result->complete});
}

void Scheduler::on_get_output(const Incoming& m) {
  KILN_DECODE_OR_REPLY(get, proto::GetOutput, Port::kClients, m);
  const Job* job = jobs_.find(get.job_id);
  auto info = job ? Result<proto::JobInfo>(job->info) : load_job(get.job_id, false);
  if (!info) return reply_error(Port::kClients, m.routing_id, get.request_id, info.error());
  if (auto denied = require_owner(m, get.job_id, info->client))
    return reply_error(Port::kClients, m.routing_id, get.request_id, *denied);
  const auto& files = info->output_files;
  if (std::none_of(files.begin(), files.end(), [&](const proto::Output& o) { return o.digest == get.digest; })) {
    return reply_error(Port::kClients, m.routing_id, get.request_id,
                       Error(ErrorKind::kNotFound,
                             fmt::format("job {} has no output {} (its state: {}; outputs exist once it "
                                         "succeeded)",
                                         get.job_id, get.digest, info->state)));
  }
  const std::size_t max = get.max_bytes == 0 ? kMaxOutputChunk : std::min(get.max_bytes, kMaxOutputChunk);
  auto chunk = outputs_.read(get.digest, get.offset, max);
  if (!chunk && chunk.error().kind() == ErrorKind::kNotFound) {
    return reply_error(
        Port::kClients, m.routing_id, get.request_id,
        Error(ErrorKind::kNotFound,
              fmt::format("output {} of job {} is no longer held by the scheduler (outputs are kept {} "
                          "and {} in all, --output-retention and --output-store-bytes); build it again",
                          get.digest, get.job_id, human_duration(std::chrono::milliseconds(options_.output_retention_ms)),
                          human_bytes(options_.output_store_bytes))));
  }
  if (!chunk) return reply_error(Port::kClients, m.routing_id, get.request_id, chunk.error());
  reply(Port::kClients, m.routing_id,
        proto::ContextChunk{.request_id = get.request_id,
                            .digest = get.digest,
                            .total_size = chunk->total_size,
                            .offset = get.offset,
                            .data = std::move(chunk->data)});
}

std::optional<std::string> Scheduler::check_outputs(const Job& job, const std::vector<proto::Output>& outputs) {
  if (outputs.size() != job.info.outputs.size())
    return fmt::format("the worker reported {} output(s) for the {} the job asked for", outputs.size(),
                       job.info.outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].src != job.info.outputs[i])
      return fmt::format("the worker reported output {:?} where the job asked for {:?}", outputs[i].src,
                         job.info.outputs[i]);
    if (!outputs_.has(outputs[i].digest))
      return fmt::format("the worker reported output {} ({}) but the scheduler does not hold it",
                         outputs[i].src, outputs[i].digest);
  }
  return std::nullopt;
}

void Scheduler::expire_outputs(std::int64_t now_steady_ms) {
  if (now_steady_ms - last_output_expiry_ms_ < kExpiryIntervalMs) return;
  last_output_expiry_ms_ = now_steady_ms;
  auto gone = outputs_.expire(clock_.wall_ms() - options_.output_retention_ms, options_.output_store_bytes);
  if (gone.removed > 0)
    spdlog::info("outputs: removed {} past their retention or over the store's bound ({}); {} kept",
                 gone.removed, human_bytes(gone.removed_bytes), human_bytes(gone.kept_bytes));
}

}  // namespace kiln::scheduler
