#include "worker/daemon/worker.h"

#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ids/step_id.h"
#include "common/proto/transport.h"
#include "common/sha256.h"
#include "common/spec/spec.h"
#include "worker/daemon/context_fetch.h"
#include "worker/daemon/context_unpack.h"

namespace kiln::worker {
namespace {

using Clock = std::chrono::steady_clock;
using Key = std::pair<std::string, std::uint32_t>;

constexpr std::size_t kLogBatchBytes = 32u << 10;
constexpr std::size_t kMaxRecentDone = 10000;
constexpr std::chrono::milliseconds kFirstRegisterBackoff{20};

// 64 hex characters -> 32 raw bytes (the inventory's id encoding).
std::string hex_to_bytes(const std::string& hex) {
  auto nibble = [](char c) -> int { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

// A job id as a directory name: kept when plainly safe, else hashed.
std::string job_dir_name(const std::string& job_id, std::uint32_t attempt) {
  bool safe = !job_id.empty() && job_id.size() <= 64 && job_id.front() != '.';
  for (char c : job_id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) safe = false;
  }
  std::string base = safe ? job_id : sha256_hex(job_id).substr(0, 16);
  return fmt::format("{}-{}", base, attempt);
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30));
  if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1ull << 20));
  return fmt::format("{} bytes", bytes);
}

struct DiskSpace {
  std::uint64_t free = 0;
  std::uint64_t total = 0;
};
// Of the filesystem `path` is on, or would be on once created (a fake-build
// worker never creates its state directory).
std::optional<DiskSpace> disk_space(const std::string& path) {
  struct statvfs st {};
  std::filesystem::path at(path);
  while (::statvfs(at.c_str(), &st) != 0) {
    if (errno != ENOENT || !at.has_relative_path()) return std::nullopt;
    at = at.parent_path();
  }
  return DiskSpace{static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize,
                   static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize};
}

}  // namespace

struct Worker::Job {
  std::string job_id;
  std::uint32_t attempt = 0;
  proto::JobSpec spec;
  sandbox::CancelToken cancel;
  std::atomic<bool> timed_out{false};
  std::atomic<bool> shutting_down{false};
  std::optional<Clock::time_point> deadline;
  std::thread thread;
};

struct Worker::FakeJob {
  std::string job_id;
  std::uint32_t attempt = 0;
  std::string spec_text;
  Clock::time_point due;
};

Worker::Worker(WorkerOptions options, builder::Builder* builder, store::Store* store)
    : options_(std::move(options)), builder_(builder), store_(store), context_(1) {
  // Made here, not in run(), so that stop() from another thread never races its creation.
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // The first maintenance pass runs at start: prune at once if the disk is already low.
  maintenance_now_ = true;
}

Worker::~Worker() {
  {
    std::lock_guard lock(maintenance_mu_);
    maintenance_stop_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
  for (auto& [key, job] : jobs_) {
    job->cancel.cancel();
    if (job->thread.joinable()) job->thread.join();
  }
  socket_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Worker::stop() {
  stopping_.store(true);
  wake();
}

void Worker::wake() {
  if (wake_fd_ < 0) return;
  std::uint64_t one = 1;
  // A full counter already means "wake up"; nothing to do on failure.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

Status Worker::run() {
  const bool fake = options_.fake_build_seconds.has_value();
  if (options_.name.empty())
    return make_error(ErrorKind::kInvalidArgument, "the worker needs a name (--name)");
  if (!fake && (builder_ == nullptr || store_ == nullptr))
    return make_error(ErrorKind::kInvalidArgument,
                      "a worker without --fake-build needs a builder and a store");
  if (!fake && options_.state_dir.empty())
    return make_error(ErrorKind::kInvalidArgument, "the worker needs a state directory (--state-dir)");
  if (wake_fd_ < 0) return errno_error("cannot create an eventfd");

  if (!fake) {
    namespace fs = std::filesystem;
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
    git_ = std::make_unique<GitContexts>(options_.state_dir + "/git");
    maintenance_ = std::thread([this] { maintenance_loop(); });
  }

  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  proto::configure_dealer(*socket_);
  socket_->set(zmq::sockopt::routing_id, options_.name);
  try {
    socket_->connect(options_.scheduler);
  } catch (const zmq::error_t& e) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("cannot connect to scheduler address {:?}: {}; expected tcp://HOST:PORT",
                                  options_.scheduler, e.what()));
  }
  spdlog::info("kiln-worker {}: connecting to {} (pool {}, capacity {}{})", options_.name, options_.scheduler,
               options_.pool, options_.capacity, fake ? ", fake builds" : "");
  send_register();

  bool shutting_down = false;
  for (;;) {
    if (stopping_.load() && !shutting_down) {
      shutting_down = true;
      spdlog::info("kiln-worker {}: stopping: cancelling {} running job(s)", options_.name,
                   jobs_.size() + fake_jobs_.size());
      for (auto& [key, job] : jobs_) {
        job->shutting_down = true;
        job->cancel.cancel();
      }
      while (!fake_jobs_.empty()) {
        auto it = fake_jobs_.begin();
        // "interrupted": the scheduler runs the job again elsewhere.
        finish_fake(*it->second, "interrupted",
                    fmt::format("kiln-worker {} is shutting down", options_.name));
        fake_jobs_.erase(it);
      }
    }
    if (shutting_down && jobs_.empty()) {
      std::lock_guard lock(events_mu_);
      if (events_.empty()) break;
    }

    zmq::pollitem_t items[] = {
        {static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_fd_, ZMQ_POLLIN, 0},
    };
    zmq::poll(items, 2, next_timeout());
    if (items[1].revents & ZMQ_POLLIN) {
      std::uint64_t count = 0;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    // Many messages per wake-up: a benchmark drives thousands a second.
    for (int i = 0; i < 1000; ++i) {
      if (!(socket_->get(zmq::sockopt::events) & ZMQ_POLLIN)) break;
      auto frame = proto::receive(*socket_, /*router=*/false);
      if (!frame) {
        spdlog::warn("kiln-worker: malformed message from the scheduler: {}",
                     frame.error().error.to_string());
        continue;
      }
      handle(*frame);
    }
    drain_job_events();
    fire_fake_timers();
    check_job_timeouts();
    const auto now = Clock::now();
    if (!registered_ && now >= next_register_) send_register();
    if (registered_ && now - last_heartbeat_ >= std::chrono::milliseconds(heartbeat_ms_)) send_heartbeat();
    flush_buffered();
    forget_old_done(now);
    if (fatal_ && !shutting_down) stopping_.store(true);
  }

  flush_buffered();
  if (!buffered_.empty())
    spdlog::warn("kiln-worker {}: exiting with {} report(s) the scheduler has not received", options_.name,
                 buffered_.size());
  // Give what was sent a moment to leave (the socket's linger is 0 otherwise).
  socket_->set(zmq::sockopt::linger, 2000);
  socket_.reset();
  {
    std::lock_guard lock(maintenance_mu_);
    maintenance_stop_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
  spdlog::info("kiln-worker {}: stopped", options_.name);
  if (fatal_) return std::unexpected(*fatal_);
  return {};
}

std::chrono::milliseconds Worker::next_timeout() const {
  using std::chrono::milliseconds;
  const auto now = Clock::now();
  auto until = [&](Clock::time_point t) {
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(t - now) + milliseconds(1));
  };
  milliseconds timeout(1000);
  if (stopping_.load()) timeout = milliseconds(50);
  if (!jobs_.empty()) timeout = std::min(timeout, options_.log_flush_interval);
  if (!registered_) timeout = std::min(timeout, until(next_register_));
  if (registered_) timeout = std::min(timeout, until(last_heartbeat_ + milliseconds(heartbeat_ms_)));
  for (const auto& [key, job] : fake_jobs_) timeout = std::min(timeout, until(job->due));
  return timeout;
}

void Worker::handle(const proto::Frame& frame) {
  if (!frame.type) {
    spdlog::warn("kiln-worker: ignoring a message of unknown type {:?} from the scheduler", frame.type_text);
    return;
  }
  auto decode_failed = [&](const Error& e) {
    spdlog::warn("kiln-worker: ignoring a malformed {} from the scheduler: {}", frame.type_text,
                 e.to_string());
  };
  switch (*frame.type) {
    case proto::Type::kRegistered: {
      auto m = proto::decode<proto::Registered>(frame.body);
      if (!m) return decode_failed(m.error());
      on_registered(*m);
      return;
    }
    case proto::Type::kReregister: {
      auto m = proto::decode<proto::Reregister>(frame.body);
      if (!m) return decode_failed(m.error());
      spdlog::info("kiln-worker {}: the scheduler asks to register again ({}); {} job(s) still running",
                   options_.name, m->reason, jobs_.size() + fake_jobs_.size());
      // Every event a restarted scheduler did not recognise is answered so:
      // one register answers them all.
      const bool just_sent = !registered_ && Clock::now() - last_register_ < std::chrono::milliseconds(500);
      registered_ = false;
      if (!just_sent) send_register();
      return;
    }
    case proto::Type::kAssign: {
      auto m = proto::decode<proto::Assign>(frame.body);
      if (!m) return decode_failed(m.error());
      on_assign(std::move(*m));
      return;
    }
    case proto::Type::kCancelAssigned: {
      auto m = proto::decode<proto::CancelAssigned>(frame.body);
      if (!m) return decode_failed(m.error());
      on_cancel(*m);
      return;
    }
    case proto::Type::kWorkerState: {
      auto m = proto::decode<proto::WorkerState>(frame.body);
      if (!m) return decode_failed(m.error());
      if (m->state != scheduler_state_)
        spdlog::info("kiln-worker {}: the scheduler set this worker {} (was {})", options_.name, m->state,
                     scheduler_state_.empty() ? "unknown" : scheduler_state_);
      scheduler_state_ = m->state;
      return;
    }
    case proto::Type::kError: {
      auto m = proto::decode<proto::ErrorReply>(frame.body);
      if (!m) return decode_failed(m.error());
      Error e = proto::to_error(*m);
      // Only a register goes unanswered by anything but `registered`: an
      // error then is the scheduler refusing this worker.
      if (!registered_ && e.kind() == ErrorKind::kFailedPrecondition) {
        spdlog::error("kiln-worker {}: the scheduler refused the registration: {}", options_.name,
                      e.to_string());
        fatal_ =
            Error(ErrorKind::kFailedPrecondition,
                  fmt::format("the scheduler at {} refused to register this worker: {}; run a kiln-worker "
                              "of the scheduler's version",
                              options_.scheduler, e.message()));
        return;
      }
      spdlog::warn("kiln-worker {}: the scheduler answered with an error: {}", options_.name, e.to_string());
      return;
    }
    default:
      spdlog::warn("kiln-worker: ignoring an unexpected {} from the scheduler", frame.type_text);
      return;
  }
}

void Worker::on_registered(const proto::Registered& registered) {
  const bool again = ever_registered_;
  registered_ = true;
  ever_registered_ = true;
  if (registered.heartbeat_ms > 0) heartbeat_ms_ = registered.heartbeat_ms;
  if (registered.lease_ms > 0) lease_ms_ = registered.lease_ms;
  last_heartbeat_ = Clock::now();
  spdlog::info("kiln-worker {}: {} with scheduler {} (state {}, heartbeat {} ms, lease {} ms)", options_.name,
               again ? "registered again" : "registered", registered.scheduler_id,
               registered.state.empty() ? "active" : registered.state, heartbeat_ms_, lease_ms_);
  if (!registered.state.empty() && registered.state != scheduler_state_ && again)
    spdlog::info("kiln-worker {}: the scheduler has this worker {}", options_.name, registered.state);
  scheduler_state_ = registered.state;
  // A scheduler that restarted may have lost the last outcomes sent to it.
  std::deque<Outgoing> resend;
  for (auto& [when, out] : recent_done_) resend.push_back(out);
  recent_done_.clear();
  for (auto& out : resend) {
    if (proto::send_raw(*socket_, nullptr, proto::type_name(out.type), out.body)) {
      recent_done_.emplace_back(Clock::now(), std::move(out));
    } else {
      buffer(std::move(out));
    }
  }
  flush_buffered();
  inventory_sent_ = false;
  if (store_ != nullptr) send_full_inventory();
}

void Worker::send_register() {
  proto::Register m;
  m.name = options_.name;
  m.pool = options_.pool;
  m.capacity = options_.capacity;
  m.labels = options_.labels;
  m.running = running_jobs(/*with_recent_done=*/true);
  m.stats = stats();
  last_register_ = Clock::now();
  if (proto::send(*socket_, m)) {
    register_backoff_ = kFirstRegisterBackoff;
    next_register_ = last_register_ + options_.register_retry;
  } else {
    // Not connected (yet): try again soon after a start, backing off to
    // register_retry while the scheduler stays down.
    next_register_ = last_register_ + register_backoff_;
    register_backoff_ = std::min(register_backoff_ * 2, options_.register_retry);
  }
}

void Worker::send_heartbeat() {
  proto::Heartbeat m;
  m.stats = stats();
  m.running = running_jobs(/*with_recent_done=*/false);
  // The periodic drift check: what the scheduler was told the store holds.
  // (Sent on the same socket after every inventory message so far, so the
  // scheduler has applied them all when it compares.)
  if (inventory_sent_) {
    Digest d = held_digest_.value();
    m.inventory_digest.assign(reinterpret_cast<const char*>(d.data()), d.size());
  }
  proto::send(*socket_, m);
  last_heartbeat_ = Clock::now();
}

std::vector<proto::RunningJob> Worker::running_jobs(bool with_recent_done) const {
  std::set<Key> keys;
  for (const auto& [key, job] : jobs_) keys.insert(key);
  for (const auto& [key, job] : fake_jobs_) keys.insert(key);
  // Listed so that the scheduler keeps them until their job-done arrives.
  for (const auto& out : buffered_) {
    if (out.type == proto::Type::kJobDone) keys.emplace(out.job_id, out.attempt);
  }
  if (with_recent_done) {
    for (const auto& [when, out] : recent_done_) keys.emplace(out.job_id, out.attempt);
  }
  std::vector<proto::RunningJob> out;
  for (const auto& [id, attempt] : keys) out.push_back({id, attempt});
  return out;
}

proto::WorkerStats Worker::stats() {
  proto::WorkerStats s;
  std::string where = store_ != nullptr            ? store_->root()
                      : options_.state_dir.empty() ? "."
                                                   : options_.state_dir;
  if (auto space = disk_space(where)) {
    s.disk_free_bytes = space->free;
    s.disk_total_bytes = space->total;
  }
  s.healthy = true;
  if (builder_ != nullptr) {
    // A store that cannot answer this cannot build either.
    if (auto count = builder_->count()) {
      s.store_items = *count;
    } else {
      s.healthy = false;
    }
    if (auto cache = builder_->cache_stats()) {
      s.cache_hits = cache->hits;
      s.cache_misses = cache->misses;
    }
  }
  s.store_bytes = store_bytes_.load();
  s.running_jobs = static_cast<std::uint32_t>(jobs_.size() + fake_jobs_.size());
  return s;
}

void Worker::on_assign(proto::Assign assign) {
  Key key(assign.job_id, assign.attempt);
  if (stopping_.load()) {
    spdlog::info("kiln-worker {}: not starting job {} (attempt {}): shutting down", options_.name,
                 assign.job_id, assign.attempt);
    return;
  }
  if (jobs_.contains(key) || fake_jobs_.contains(key)) {
    spdlog::debug("kiln-worker: job {} attempt {} is already running", assign.job_id, assign.attempt);
    return;
  }
  spdlog::debug("kiln-worker {}: job {} (attempt {}) assigned", options_.name, assign.job_id, assign.attempt);
  proto::JobEvent started{
      .type = proto::Type::kJobStarted, .job_id = assign.job_id, .attempt = assign.attempt};
  emit({proto::Type::kJobStarted, proto::encode(started), assign.job_id, assign.attempt});

  if (options_.fake_build_seconds) {
    auto job = std::make_unique<FakeJob>();
    job->job_id = assign.job_id;
    job->attempt = assign.attempt;
    job->spec_text = std::move(assign.job.spec);
    double seconds = *options_.fake_build_seconds;
    if (seconds <= 0) {
      finish_fake(*job, "succeeded", "");
      return;
    }
    job->due =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    // A line while it "runs", as a real build streams its log.
    proto::JobEvent log{.type = proto::Type::kJobLog, .job_id = job->job_id, .attempt = job->attempt};
    log.log =
        fmt::format("fake build of job {} on {}: running for {:g} s\n", job->job_id, options_.name, seconds);
    emit({proto::Type::kJobLog, proto::encode(log), job->job_id, job->attempt});
    fake_jobs_.emplace(key, std::move(job));
    return;
  }

  auto job = std::make_shared<Job>();
  job->job_id = assign.job_id;
  job->attempt = assign.attempt;
  job->spec = std::move(assign.job);
  if (job->spec.timeout_seconds > 0)
    job->deadline = Clock::now() + std::chrono::seconds(job->spec.timeout_seconds);
  spdlog::info("kiln-worker {}: job {} (attempt {}) started: {}", options_.name, job->job_id, job->attempt,
               job->spec.spec_name.empty() ? "spec" : job->spec.spec_name);
  jobs_.emplace(key, job);
  job->thread = std::thread([this, job] { run_job(job); });
}

void Worker::finish_fake(FakeJob& job, const std::string& outcome, const std::string& error) {
  // The steps a real build of this spec would report (its step ids, when it
  // needs no context), so that the scheduler's placement sees a fake farm's
  // caches as it would a real one's; else one step named by the spec's hash.
  std::vector<proto::StepInfo> steps;
  const double seconds = options_.fake_build_seconds.value_or(0);
  if (auto parsed = spec::parse_spec(job.spec_text, "fake")) {
    if (auto ids = ids::compute_step_ids(*parsed, nullptr, "fake"); ids && !ids->empty()) {
      for (const ids::Step& s : *ids) {
        steps.push_back({.id = s.id,
                         .description = s.description,
                         .cached = false,
                         .seconds = seconds / static_cast<double>(ids->size())});
      }
    }
  }
  if (steps.empty()) {
    steps.push_back({.id = sha256_hex(job.spec_text),
                     .description = "(fake build)",
                     .cached = false,
                     .seconds = seconds});
  }
  if (outcome == "succeeded") {
    proto::JobEvent log{.type = proto::Type::kJobLog, .job_id = job.job_id, .attempt = job.attempt};
    log.log = fmt::format("fake build of job {} on {}: done\n", job.job_id, options_.name);
    emit({proto::Type::kJobLog, proto::encode(log), job.job_id, job.attempt});
  }
  proto::JobEvent done{.type = proto::Type::kJobDone, .job_id = job.job_id, .attempt = job.attempt};
  if (outcome == "succeeded") {
    for (const proto::StepInfo& step : steps) {
      proto::JobEvent step_event{.type = proto::Type::kJobStep, .job_id = job.job_id, .attempt = job.attempt};
      step_event.step = step;
      emit({proto::Type::kJobStep, proto::encode(step_event), job.job_id, job.attempt});
    }
    done.result = steps.back().id;
    done.steps = std::move(steps);
  }
  done.outcome = outcome;
  done.error = error;
  emit({proto::Type::kJobDone, proto::encode(done), job.job_id, job.attempt});
}

void Worker::fire_fake_timers() {
  if (fake_jobs_.empty()) return;
  const auto now = Clock::now();
  for (auto it = fake_jobs_.begin(); it != fake_jobs_.end();) {
    if (it->second->due <= now) {
      finish_fake(*it->second, "succeeded", "");
      it = fake_jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Worker::on_cancel(const proto::CancelAssigned& cancel) {
  Key key(cancel.job_id, cancel.attempt);
  if (auto it = fake_jobs_.find(key); it != fake_jobs_.end()) {
    spdlog::info("kiln-worker {}: cancelling job {} (attempt {})", options_.name, cancel.job_id,
                 cancel.attempt);
    finish_fake(*it->second, "cancelled", "cancelled by the scheduler");
    fake_jobs_.erase(it);
    return;
  }
  if (auto it = jobs_.find(key); it != jobs_.end()) {
    spdlog::info("kiln-worker {}: cancelling job {} (attempt {})", options_.name, cancel.job_id,
                 cancel.attempt);
    it->second->cancel.cancel();
    return;
  }
  spdlog::debug("kiln-worker: cancel-job for job {} attempt {}, which is not running here", cancel.job_id,
                cancel.attempt);
}

void Worker::check_job_timeouts() {
  const auto now = Clock::now();
  for (auto& [key, job] : jobs_) {
    if (job->deadline && *job->deadline <= now && !job->timed_out.load()) {
      spdlog::info("kiln-worker {}: job {} ran past its timeout of {} s; cancelling it", options_.name,
                   job->job_id, job->spec.timeout_seconds);
      job->timed_out = true;
      job->cancel.cancel();
    }
  }
}

void Worker::forget_old_done(std::chrono::steady_clock::time_point now) {
  // A scheduler that dies loses what it had not processed yet: the last few
  // seconds are enough (a fake-build benchmark completes thousands a second).
  const auto window = std::min(std::chrono::milliseconds(lease_ms_), std::chrono::milliseconds(5000));
  while (!recent_done_.empty() &&
         (now - recent_done_.front().first > window || recent_done_.size() > kMaxRecentDone))
    recent_done_.pop_front();
}

void Worker::emit(Outgoing out) {
  if (registered_ && buffered_.empty() &&
      proto::send_raw(*socket_, nullptr, proto::type_name(out.type), out.body)) {
    if (out.type == proto::Type::kJobDone) recent_done_.emplace_back(Clock::now(), std::move(out));
    return;
  }
  buffer(std::move(out));
}

void Worker::buffer(Outgoing out) {
  buffered_bytes_ += out.body.size();
  buffered_.push_back(std::move(out));
  // Over the bound, log text goes first (oldest first); outcomes and steps stay.
  for (auto it = buffered_.begin(); buffered_bytes_ > options_.max_buffered_bytes && it != buffered_.end();) {
    if (it->type != proto::Type::kJobLog) {
      ++it;
      continue;
    }
    if (dropped_log_bytes_ == 0)
      spdlog::warn("kiln-worker {}: not connected and over {} of buffered reports: dropping job log text",
                   options_.name, human_bytes(options_.max_buffered_bytes));
    dropped_log_bytes_ += it->body.size();
    dropped_by_job_[Key(it->job_id, it->attempt)] += it->body.size();
    buffered_bytes_ -= it->body.size();
    it = buffered_.erase(it);
  }
}

void Worker::flush_buffered() {
  while (registered_ && !buffered_.empty()) {
    Outgoing& out = buffered_.front();
    // Where a job's log has a gap, say so in the log itself.
    if (auto gap = dropped_by_job_.find(Key(out.job_id, out.attempt)); gap != dropped_by_job_.end()) {
      proto::JobEvent marker{.type = proto::Type::kJobLog, .job_id = out.job_id, .attempt = out.attempt};
      marker.log = fmt::format(
          "\n[kiln-worker {}: about {} of this job's log were dropped while the scheduler was "
          "unreachable]\n",
          options_.name, human_bytes(gap->second));
      if (!proto::send_event(*socket_, marker)) return;
      dropped_by_job_.erase(gap);
    }
    if (!proto::send_raw(*socket_, nullptr, proto::type_name(out.type), out.body)) return;
    buffered_bytes_ -= out.body.size();
    if (out.type == proto::Type::kJobDone) recent_done_.emplace_back(Clock::now(), std::move(out));
    buffered_.pop_front();
  }
  if (buffered_.empty()) dropped_by_job_.clear();  // jobs whose every later event was dropped too
  if (buffered_.empty() && dropped_log_bytes_ > 0) {
    spdlog::warn("kiln-worker {}: {} of job log text were dropped while disconnected", options_.name,
                 human_bytes(dropped_log_bytes_));
    dropped_log_bytes_ = 0;
  }
}

void Worker::drain_job_events() {
  std::deque<Pending> pending;
  {
    std::lock_guard lock(events_mu_);
    pending.swap(events_);
  }
  for (Pending& p : pending) {
    if (!p.event) {
      send_inventory_delta(p.added_hex, p.removed_hex);
      continue;
    }
    proto::JobEvent& e = *p.event;
    if (e.type == proto::Type::kJobDone) {
      if (auto it = jobs_.find(Key(e.job_id, e.attempt)); it != jobs_.end()) {
        // The job's thread pushes its job-done last: it is ending now.
        if (it->second->thread.joinable()) it->second->thread.join();
        jobs_.erase(it);
      }
      spdlog::info("kiln-worker {}: job {} (attempt {}) {}{}", options_.name, e.job_id, e.attempt, e.outcome,
                   e.error.empty() ? "" : ": " + e.error.substr(0, e.error.find('\n')));
    }
    emit({e.type, proto::encode(e), e.job_id, e.attempt});
  }
}

void Worker::send_full_inventory() {
  auto ids = store_->list_results();
  if (!ids) {
    spdlog::warn("kiln-worker {}: cannot list the store for the scheduler's inventory: {}", options_.name,
                 ids.error().to_string());
    return;
  }
  held_ids_.clear();
  for (const std::string& hex : *ids) {
    if (is_sha256_hex(hex)) held_ids_.insert(hex_to_bytes(hex));
  }
  // One message holds at most inventory_chunk_ids ids (a message must stay under
  // proto::kMaxBodyBytes): the first says full, the rest add to it. Each
  // carries the digest of everything sent so far.
  std::vector<std::string> sorted(held_ids_.begin(), held_ids_.end());
  std::size_t sent = 0;
  inventory_sent_ = false;
  held_digest_.clear();
  do {
    proto::Inventory m;
    m.full = sent == 0;
    std::size_t end = std::min(sorted.size(), sent + std::max<std::size_t>(options_.inventory_chunk_ids, 1));
    m.added.assign(sorted.begin() + static_cast<std::ptrdiff_t>(sent),
                   sorted.begin() + static_cast<std::ptrdiff_t>(end));
    for (const std::string& id : m.added) held_digest_.add(id);
    Digest d = held_digest_.value();
    m.set_digest.assign(reinterpret_cast<const char*>(d.data()), d.size());
    if (!proto::send(*socket_, m)) {
      // Register again (and so send it all again) rather than stay silent.
      registered_ = false;
      return;
    }
    sent = end;
  } while (sent < sorted.size());
  inventory_sent_ = true;
}

void Worker::send_inventory_delta(const std::vector<std::string>& added_hex,
                                  const std::vector<std::string>& removed_hex) {
  // Until a full inventory went out, changes are part of the next full one.
  if (!registered_ || !inventory_sent_) return;
  proto::Inventory m;
  for (const std::string& hex : added_hex) {
    if (!is_sha256_hex(hex)) continue;
    std::string id = hex_to_bytes(hex);
    if (held_ids_.insert(id).second) {
      held_digest_.add(id);
      m.added.push_back(std::move(id));
    }
  }
  for (const std::string& hex : removed_hex) {
    if (!is_sha256_hex(hex)) continue;
    std::string id = hex_to_bytes(hex);
    if (held_ids_.erase(id) > 0) {
      held_digest_.remove(id);
      m.removed.push_back(std::move(id));
    }
  }
  if (m.added.empty() && m.removed.empty()) return;
  Digest d = held_digest_.value();
  m.set_digest.assign(reinterpret_cast<const char*>(d.data()), d.size());
  // A lost change makes the digests disagree: held_digest_ includes it, so
  // the next heartbeat's digest differs from the scheduler's, which then asks
  // for the full set again.
  (void)proto::send(*socket_, m);
}

// ---- job threads ----

void Worker::push_event(proto::JobEvent event) {
  {
    std::lock_guard lock(events_mu_);
    events_.push_back(Pending{std::move(event), {}, {}});
  }
  wake();
}

void Worker::push_log(const Job& job, std::string_view text) {
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
  if (full) wake();
}

void Worker::push_inventory(std::vector<std::string> added_hex, std::vector<std::string> removed_hex) {
  {
    std::lock_guard lock(events_mu_);
    events_.push_back(Pending{std::nullopt, std::move(added_hex), std::move(removed_hex)});
  }
  wake();
}

void Worker::run_job(std::shared_ptr<Job> job) {
  std::vector<proto::StepInfo> steps;
  auto result = build_job(*job, steps);
  proto::JobEvent done{.type = proto::Type::kJobDone, .job_id = job->job_id, .attempt = job->attempt};
  done.steps = steps;
  if (result) {
    done.outcome = "succeeded";
    done.result = *result;
  } else if (job->timed_out.load()) {
    done.outcome = "failed";
    done.error =
        fmt::format("the job ran past its timeout of {} s and was stopped", job->spec.timeout_seconds);
  } else if (result.error().kind() == ErrorKind::kCancelled || job->cancel.cancelled()) {
    // Stopped by this worker's shutdown, the job did not fail: "interrupted"
    // makes the scheduler run it again elsewhere.
    done.outcome = job->shutting_down.load() ? "interrupted" : "cancelled";
    done.error = job->shutting_down.load() ? fmt::format("kiln-worker {} is shutting down", options_.name)
                                           : "cancelled";
  } else {
    done.outcome = "failed";
    done.error = result.error().to_string();
  }
  if (done.outcome != "succeeded")
    push_log(*job, fmt::format("kiln-worker {}: {}: {}\n", options_.name, done.outcome, done.error));
  std::vector<std::string> ids;
  for (const auto& step : steps) ids.push_back(step.id);
  if (!ids.empty()) push_inventory(std::move(ids), {});
  push_event(std::move(done));
  // A finished job may have filled the disk.
  {
    std::lock_guard lock(maintenance_mu_);
    maintenance_now_ = true;
  }
  maintenance_cv_.notify_all();
}

Result<std::string> Worker::build_job(Job& job, std::vector<proto::StepInfo>& steps) {
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

  const proto::ContextRef& context = job.spec.context;
  switch (context.kind) {
    case proto::ContextRef::Kind::kNone: break;
    case proto::ContextRef::Kind::kTar: {
      push_log(job,
               fmt::format("kiln-worker {}: fetching build context {}\n", options_.name, context.digest));
      auto tar = fetch_context_tar(context_, options_.scheduler, context.digest,
                                   options_.state_dir + "/contexts", &job.cancel);
      if (!tar) return std::unexpected(std::move(tar.error()).with_context("preparing the build context"));
      if (auto s = unpack_context_tar(*tar, dir); !s)
        return std::unexpected(
            std::move(s.error()).with_context("unpacking build context " + context.digest));
      break;
    }
    case proto::ContextRef::Kind::kGit: {
      push_log(job, fmt::format("kiln-worker {}: checking out {} of {}\n", options_.name, context.git_commit,
                                redact_url(context.git_repo)));
      if (auto s = git_->checkout(context.git_repo, context.git_commit, dir, &job.cancel); !s)
        return std::unexpected(std::move(s.error()).with_context("preparing the build context"));
      break;
    }
  }
  if (job.cancel.cancelled()) return make_error(ErrorKind::kCancelled, "build cancelled");

  const std::string spec_name = job.spec.spec_name.empty() ? "spec" : job.spec.spec_name;
  KILN_ASSIGN_OR_RETURN(spec::Spec spec, spec::parse_spec(job.spec.spec, spec_name));
  builder::BuildRequest request;
  request.spec = std::move(spec);
  request.spec_name = spec_name;
  request.context_dir = dir;
  for (const proto::Secret& secret : job.spec.secrets) request.secrets[secret.id] = secret.value;
  request.log = [this, &job](builder::LogTag, std::string_view text) { push_log(job, text); };
  request.cancel = &job.cancel;
  request.on_step = [this, &job, &steps](const builder::StepEvent& e) {
    proto::StepInfo info{.id = e.id, .description = e.description, .cached = e.cached, .seconds = e.seconds};
    steps.push_back(info);
    proto::JobEvent event{.type = proto::Type::kJobStep, .job_id = job.job_id, .attempt = job.attempt};
    event.step = std::move(info);
    push_event(std::move(event));
    // The store holds the step from now on: tell placement at once, not
    // when the job ends (other jobs sharing the step can use it meanwhile).
    push_inventory({e.id}, {});
  };
  return builder_->build(request);
}

// ---- maintenance ----

void Worker::maintenance_loop() {
  for (;;) {
    {
      std::unique_lock lock(maintenance_mu_);
      maintenance_cv_.wait_for(lock, options_.maintenance_interval,
                               [this] { return maintenance_stop_ || maintenance_now_; });
      if (maintenance_stop_) return;
      maintenance_now_ = false;
    }
    prune_if_low();
    if (std::size_t n = remove_unused_contexts(options_.state_dir + "/contexts", options_.context_max_age))
      spdlog::info("kiln-worker {}: removed {} build context(s) unused for {} h", options_.name, n,
                   options_.context_max_age.count());
    // The store's size for heartbeats: results are measured after they are built.
    if (auto ids = store_->list_results()) {
      std::uint64_t bytes = 0;
      for (const std::string& id : *ids) {
        if (auto info = store_->info(id)) bytes += info->size_bytes;
      }
      store_bytes_ = bytes;
    }
  }
}

void Worker::prune_if_low() {
  auto space = disk_space(store_->root());
  if (!space || space->free >= options_.prune_below_bytes) return;
  spdlog::info("kiln-worker {}: {} free in the store, below {}: pruning least recently used results",
               options_.name, human_bytes(space->free), human_bytes(options_.prune_below_bytes));
  std::size_t total = 0;
  for (;;) {
    std::vector<std::string> removed;
    auto n = builder_->prune(std::chrono::system_clock::now(), 32,
                             [&removed](const std::string& id) { removed.push_back(id); });
    if (!n) {
      spdlog::warn("kiln-worker {}: pruning failed: {}", options_.name, n.error().to_string());
      break;
    }
    if (auto s = store_->complete_deletes(); !s)
      spdlog::warn("kiln-worker {}: completing deletes: {}", options_.name, s.error().to_string());
    total += *n;
    if (!removed.empty()) push_inventory({}, std::move(removed));
    space = disk_space(store_->root());
    if (!space || space->free >= options_.prune_below_bytes) break;
    if (*n == 0) {
      spdlog::warn("kiln-worker {}: nothing left to prune, {} free (below {}): free some disk space",
                   options_.name, human_bytes(space->free), human_bytes(options_.prune_below_bytes));
      break;
    }
    std::lock_guard lock(maintenance_mu_);
    if (maintenance_stop_) break;
  }
  spdlog::info("kiln-worker {}: pruned {} result(s); {} free", options_.name, total,
               space ? human_bytes(space->free) : "unknown");
}

}  // namespace kiln::worker
