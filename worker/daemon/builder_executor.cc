#include "worker/daemon/builder_executor.h"

#include <fcntl.h>

#include <atomic>
#include <cctype>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/context/context_tar.h"
#include "common/format.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "common/spec/spec.h"
#include "common/unique_fd.h"
#include "worker/daemon/context_fetch.h"
#include "worker/daemon/output_upload.h"

namespace kiln::worker {
namespace {

constexpr std::size_t kLogBatchBytes = 32u << 10;

// A job id as a directory name: kept when plainly safe, else hashed.
std::string job_dir_name(const std::string& job_id, std::uint32_t attempt) {
  bool safe = !job_id.empty() && job_id.size() <= 64 && job_id.front() != '.';
  for (char c : job_id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) safe = false;
  }
  std::string base = safe ? job_id : sha256_hex(job_id).substr(0, 16);
  return fmt::format("{}-{}", base, attempt);
}

}  // namespace

struct BuilderExecutor::Job {
  std::string job_id;
  std::uint32_t attempt = 0;
  proto::JobSpec spec;
  CancelToken cancel;
  std::atomic<bool> timed_out{false};
  std::atomic<bool> shutting_down{false};
  std::optional<SteadyTime> deadline;
  std::uint64_t max_output_bytes = 0;  // the scheduler's (Assign); 0: it takes none
  std::thread thread;
};

BuilderExecutor::BuilderExecutor(BuilderExecutorOptions options, builder::Builder& builder)
    : options_(std::move(options)), builder_(builder), zmq_(1) {}

BuilderExecutor::~BuilderExecutor() {
  if (maintenance_) maintenance_->stop();
  for (auto& [key, job] : jobs_) {
    job->cancel.cancel();
    if (job->thread.joinable()) job->thread.join();
  }
}

Status BuilderExecutor::open(const ExecutorHost& host) {
  namespace fs = std::filesystem;
  host_ = host;
  if (options_.state_dir.empty())
    return make_error(ErrorKind::kInvalidArgument, "the worker needs a state directory (--state-dir)");
  std::error_code ec;
  // Job directories left by a crash are of no use any more.
  fs::remove_all(options_.state_dir + "/jobs", ec);
  for (const char* sub : {"/jobs", "/contexts", "/git"}) {
    fs::create_directories(options_.state_dir + sub, ec);
    if (ec)
      return make_error(ErrorKind::kIo,
                        fmt::format("cannot create {}{}: {}", options_.state_dir, sub, ec.message()));
  }
  // Partial context downloads a crash left behind: nobody will finish them.
  remove_partial_contexts(options_.state_dir + "/contexts");
  log_window_ = std::make_unique<LogWindow>(host_.log_window_bytes);
  git_ = std::make_unique<GitContexts>(options_.state_dir + "/git");
  maintenance_ = std::make_unique<Maintenance>(
      MaintenanceOptions{.worker_name = host_.worker_name,
                         .contexts_dir = options_.state_dir + "/contexts",
                         .prune_below_bytes = options_.prune_below_bytes,
                         .prune_min_age = options_.prune_min_age,
                         .interval = options_.maintenance_interval,
                         .context_max_age = options_.context_max_age,
                         .image_cache_dir = options_.image_cache_dir,
                         .image_cache_max_bytes = options_.image_cache_max_bytes},
      builder_, [this](std::vector<std::string> removed) { push_inventory({}, std::move(removed)); });
  maintenance_->start();
  return {};
}

void BuilderExecutor::close() {
  if (maintenance_) maintenance_->stop();
}

void BuilderExecutor::fill_stats(proto::WorkerStats& stats) {
  if (maintenance_) maintenance_->fill_stats(stats);
}

// ---- the loop's side ----

void BuilderExecutor::start(proto::Assign assign, SteadyTime now) {
  auto job = std::make_shared<Job>();
  job->job_id = std::move(assign.job_id);
  job->attempt = assign.attempt;
  job->spec = std::move(assign.job);
  job->max_output_bytes = assign.max_output_bytes;
  if (job->spec.timeout_seconds > 0) job->deadline = now + std::chrono::seconds(job->spec.timeout_seconds);
  spdlog::info("kiln-worker {}: job {} (attempt {}) started: {}", host_.worker_name, job->job_id,
               job->attempt, job->spec.spec_name.empty() ? "spec" : job->spec.spec_name);
  jobs_.emplace(JobKey(job->job_id, job->attempt), job);
  job->thread = std::thread([this, job] { run_job(job); });
}

std::vector<JobKey> BuilderExecutor::running_jobs() const {
  std::vector<JobKey> keys;
  keys.reserve(jobs_.size());
  for (const auto& [key, job] : jobs_) keys.push_back(key);
  return keys;
}

bool BuilderExecutor::cancel(const JobKey& key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return false;
  it->second->cancel.cancel();  // its thread reports it cancelled
  log_window_->wake_all();      // if it waits to hand on log text
  return true;
}

void BuilderExecutor::interrupt_all(const std::string& reason) {
  interrupt_reason_ = reason;
  for (auto& [key, job] : jobs_) {
    job->shutting_down = true;
    job->cancel.cancel();
  }
  if (log_window_) log_window_->wake_all();
}

bool BuilderExecutor::idle() const {
  if (!jobs_.empty()) return false;
  std::lock_guard lock(events_mu_);
  return events_.empty();
}

void BuilderExecutor::log_released(const JobKey& key, std::uint64_t offset) {
  if (log_window_) log_window_->release(key, offset);
}

void BuilderExecutor::log_unwanted(const JobKey& key) {
  if (log_window_) log_window_->drop_rest(key);
}

void BuilderExecutor::poll(SteadyTime now) {
  drain_events();
  check_timeouts(now);
}

std::optional<std::chrono::milliseconds> BuilderExecutor::poll_timeout(SteadyTime) const {
  // Job threads wake the loop for big log batches and every other event;
  // smaller log batches wait for this.
  if (jobs_.empty()) return std::nullopt;
  return options_.log_flush_interval;
}

void BuilderExecutor::drain_events() {
  std::deque<Pending> pending;
  {
    std::lock_guard lock(events_mu_);
    pending.swap(events_);
  }
  for (Pending& p : pending) {
    if (!p.event) {
      host_.events->store_changed(p.added_hex, p.removed_hex);
      continue;
    }
    proto::JobEvent& e = *p.event;
    if (e.type == proto::Type::kJobDone) {
      if (auto it = jobs_.find(JobKey(e.job_id, e.attempt)); it != jobs_.end()) {
        // The job's thread pushes its job-done last: it is ending now.
        if (it->second->thread.joinable()) it->second->thread.join();
        jobs_.erase(it);
        log_window_->forget(JobKey(e.job_id, e.attempt));
      }
      spdlog::info("kiln-worker {}: job {} (attempt {}) {}{}", host_.worker_name, e.job_id, e.attempt,
                   e.outcome, e.error.empty() ? "" : ": " + e.error.substr(0, e.error.find('\n')));
    }
    host_.events->job_event(std::move(e));
  }
}

void BuilderExecutor::check_timeouts(SteadyTime now) {
  for (auto& [key, job] : jobs_) {
    if (job->deadline && *job->deadline <= now && !job->timed_out.load()) {
      spdlog::info("kiln-worker {}: job {} ran past its timeout of {} s; cancelling it", host_.worker_name,
                   job->job_id, job->spec.timeout_seconds);
      job->timed_out = true;
      job->cancel.cancel();
      log_window_->wake_all();
    }
  }
}

// ---- job threads ----

void BuilderExecutor::push_event(proto::JobEvent event) {
  {
    std::lock_guard lock(events_mu_);
    events_.push_back(Pending{std::move(event), {}, {}});
  }
  host_.wake();
}

void BuilderExecutor::push_log(const Job& job, std::string_view text) {
  // Back-pressure: wait while this job has a window's worth in flight (not
  // under events_mu_, which the loop needs to drain what is in flight).
  if (!log_window_->acquire(JobKey(job.job_id, job.attempt), text.size(), job.cancel)) return;
  bool full = false;
  {
    std::lock_guard lock(events_mu_);
    Pending* tail = events_.empty() ? nullptr : &events_.back();
    if (tail != nullptr && tail->event && tail->event->type == proto::Type::kJobLog &&
        tail->event->job_id == job.job_id && tail->event->attempt == job.attempt &&
        tail->event->log.size() < kLogBatchBytes) {
      tail->event->log.append(text);
      full = tail->event->log.size() >= kLogBatchBytes;
    } else {
      proto::JobEvent e{.type = proto::Type::kJobLog, .job_id = job.job_id, .attempt = job.attempt};
      e.log.assign(text);
      full = e.log.size() >= kLogBatchBytes;
      events_.push_back(Pending{std::move(e), {}, {}});
    }
  }
  // Otherwise the loop sends it within log_flush_interval.
  if (full) host_.wake();
}

void BuilderExecutor::push_inventory(std::vector<std::string> added_hex,
                                     std::vector<std::string> removed_hex) {
  {
    std::lock_guard lock(events_mu_);
    events_.push_back(Pending{std::nullopt, std::move(added_hex), std::move(removed_hex)});
  }
  host_.wake();
}

void BuilderExecutor::run_job(std::shared_ptr<Job> job) {
  Reported reported;
  auto result = build_job(*job, reported);
  const std::vector<proto::StepInfo>& steps = reported.steps;
  proto::JobEvent done{.type = proto::Type::kJobDone, .job_id = job->job_id, .attempt = job->attempt};
  done.steps = steps;
  if (result) {
    done.outcome = "succeeded";
    done.result = *result;
    done.pushed = std::move(reported.pushed);
    done.outputs = std::move(reported.outputs);
  } else if (job->timed_out.load()) {
    done.outcome = "failed";
    done.error =
        fmt::format("the job ran past its timeout of {} s and was stopped", job->spec.timeout_seconds);
  } else if (result.error().kind() == ErrorKind::kCancelled || job->cancel.cancelled()) {
    // Stopped by this worker's shutdown, the job did not fail: "interrupted"
    // makes the scheduler run it again elsewhere.
    const bool interrupted = job->shutting_down.load();
    done.outcome = interrupted ? "interrupted" : "cancelled";
    done.error = interrupted ? interrupt_reason_ : "cancelled";
  } else {
    done.outcome = "failed";
    done.error = result.error().to_string();
  }
  if (done.outcome != "succeeded")
    push_log(*job, fmt::format("kiln-worker {}: {}: {}\n", host_.worker_name, done.outcome, done.error));
  std::vector<std::string> ids;
  for (const auto& step : steps) ids.push_back(step.id);
  if (!ids.empty()) push_inventory(std::move(ids), {});
  // The log's whole length, with what was dropped here once it was unwanted.
  done.log_end = log_window_->produced(JobKey(job->job_id, job->attempt));
  push_event(std::move(done));
  // A finished job may have filled the disk.
  maintenance_->request();
}

Result<std::string> BuilderExecutor::build_job(Job& job, Reported& reported) {
  namespace fs = std::filesystem;
  const std::string dir = options_.state_dir + "/jobs/" + job_dir_name(job.job_id, job.attempt);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(ErrorKind::kIo,
                      fmt::format("cannot create the job directory {}: {}", dir, ec.message()));
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } cleanup{dir};

  KILN_RETURN_IF_ERROR(prepare_context(job, dir));
  if (job.cancel.cancelled()) return make_error(ErrorKind::kCancelled, "build cancelled");

  const std::string spec_name = job.spec.spec_name.empty() ? "spec" : job.spec.spec_name;
  KILN_ASSIGN_OR_RETURN(spec::Spec spec, spec::parse_spec(job.spec.spec, spec_name));
  if (!job.spec.push.empty() && !options_.push)
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("the job asks to push its result to {}, and this worker cannot push "
                                  "(a worker with --fake-build, or a test's executor)",
                                  job.spec.push));
  if (!job.spec.outputs.empty() && (!options_.write_output || job.max_output_bytes == 0))
    return make_error(ErrorKind::kUnsupported,
                      !options_.write_output
                          ? "the job asks for outputs (--output), and this worker cannot send them (a test's "
                            "executor)"
                          : "the job asks for outputs (--output), and the scheduler takes none (an older "
                            "kiln-scheduler); update it");
  builder::BuildRequest request;
  request.spec = spec;
  request.spec_name = spec_name;
  request.context_dir = dir;
  for (const proto::Secret& secret : job.spec.secrets) request.secrets[secret.id] = secret.value;
  request.log = [this, &job](builder::LogTag, std::string_view text) { push_log(job, text); };
  request.cancel = &job.cancel;
  if (!job.spec.pull.empty()) {
    KILN_ASSIGN_OR_RETURN(request.pull,
                          with_context(fetcher::parse_pull_policy(job.spec.pull), "the job's pull policy"));
  }
  request.on_step = [this, &job, &steps = reported.steps](const builder::StepEvent& e) {
    proto::StepInfo info{
        .id = e.id, .description = e.description, .cached = e.cached, .seconds = e.seconds, .image = e.image};
    steps.push_back(info);
    proto::JobEvent event{.type = proto::Type::kJobStep, .job_id = job.job_id, .attempt = job.attempt};
    event.step = std::move(info);
    push_event(std::move(event));
    // The store holds the step from now on: tell placement at once, not
    // when the job ends (other jobs sharing the step can use it meanwhile).
    push_inventory({e.id}, {});
  };
  KILN_ASSIGN_OR_RETURN(std::string id, builder_.build(request));
  if (!job.spec.push.empty()) {
    KILN_ASSIGN_OR_RETURN(reported.pushed, push_result(job, spec, id));
  }
  if (!job.spec.outputs.empty()) {
    KILN_ASSIGN_OR_RETURN(reported.outputs, send_outputs(job, id));
  }
  return id;
}

Result<std::string> BuilderExecutor::push_result(Job& job, const spec::Spec& spec, const std::string& id) {
  std::string login;
  for (const proto::Secret& secret : job.spec.secrets)
    if (secret.id == proto::kPushLoginSecret) login = secret.value;
  push_log(job, fmt::format("kiln-worker {}: pushing {} as {}{}\n", host_.worker_name, id.substr(0, 12),
                            job.spec.push, login.empty() ? "" : " with the login sent with the job"));
  return with_context(options_.push(id, spec, job.spec.push, login,
                                    [&](std::string_view line) { push_log(job, fmt::format("push: {}\n", line)); }),
                      "pushing the result to " + job.spec.push);
}

Result<std::vector<proto::Output>> BuilderExecutor::send_outputs(Job& job, const std::string& id) {
  const std::string tmp_dir = options_.state_dir + "/tmp";
  KILN_RETURN_IF_ERROR(ensure_dirs(tmp_dir, 0700));
  std::vector<proto::Output> outputs;
  for (const std::string& src : job.spec.outputs) {
    if (job.cancel.cancelled()) return make_error(ErrorKind::kCancelled, "cancelled while sending outputs");
    // An unnamed file: nothing to clean up whatever happens.
    UniqueFd tar(::open(tmp_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tar) return errno_error("cannot make a temporary file in " + tmp_dir);
    Sha256 hash;
    // (Its errors name the --output already.)
    KILN_ASSIGN_OR_RETURN(context::ResultTar written, options_.write_output(
                                                          id, src,
                                                          [&](std::string_view chunk) {
                                                            hash.update(chunk);
                                                            return write_all(tar.get(), chunk, "the output tar");
                                                          },
                                                          job.max_output_bytes));
    proto::Output output{.src = src,
                         .digest = "sha256:" + to_hex(hash.digest()),
                         .size = written.bytes,
                         .entries = written.entries};
    for (const std::string& skipped : written.skipped)
      push_log(job, fmt::format("kiln-worker {}: --output {}: left out {}: not a file, directory or symlink\n",
                                host_.worker_name, src, skipped));
    push_log(job, fmt::format("kiln-worker {}: sending output {} ({} entries, {})\n", host_.worker_name, src,
                              written.entries, human_bytes(written.bytes)));
    KILN_RETURN_IF_ERROR(with_context(
        upload_output(zmq_, host_.scheduler, output.digest, tar.get(), written.bytes, &job.cancel,
                      {.job_id = job.job_id, .attempt = job.attempt, .curve = host_.curve}),
        "sending output " + src));
    outputs.push_back(std::move(output));
  }
  return outputs;
}

Status BuilderExecutor::prepare_context(Job& job, const std::string& dir) {
  const proto::ContextRef& context = job.spec.context;
  switch (context.kind) {
    case proto::ContextRef::Kind::kNone: return {};
    case proto::ContextRef::Kind::kTar: {
      push_log(job,
               fmt::format("kiln-worker {}: fetching build context {}\n", host_.worker_name, context.digest));
      auto tar = fetch_context_tar(zmq_, host_.scheduler, context.digest, options_.state_dir + "/contexts",
                                   &job.cancel,
                                   {.job_id = job.job_id, .attempt = job.attempt, .curve = host_.curve});
      if (!tar) return std::unexpected(std::move(tar.error()).with_context("preparing the build context"));
      if (auto s = context::unpack_context_tar(*tar, dir); !s)
        return std::unexpected(
            std::move(s.error()).with_context("unpacking build context " + context.digest));
      return {};
    }
    case proto::ContextRef::Kind::kGit: {
      push_log(job, fmt::format("kiln-worker {}: checking out {} of {}\n", host_.worker_name,
                                context.git_commit, redact_url(context.git_repo)));
      if (auto s = git_->checkout(context.git_repo, context.git_commit, dir, &job.cancel); !s)
        return std::unexpected(std::move(s.error()).with_context("preparing the build context"));
      return {};
    }
  }
  return {};
}

}  // namespace kiln::worker
