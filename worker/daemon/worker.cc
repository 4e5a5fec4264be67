#include "worker/daemon/worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/proto/transport.h"

namespace kiln::worker {
namespace {

using Clock = std::chrono::steady_clock;

// Messages handled per wake-up before the loop looks at its timers again
// (a benchmark drives thousands a second).
constexpr int kMaxMessagesPerTurn = 1000;

}  // namespace

bool Worker::SocketOut::send(proto::Type type, std::string_view body) {
  return proto::send_raw(*socket_, nullptr, proto::type_name(type), body);
}

Worker::Worker(WorkerOptions options, std::unique_ptr<JobExecutor> executor)
    : options_(std::move(options)), executor_(std::move(executor)), context_(1) {
  if (executor_)
    session_ = std::make_unique<SchedulerSession>(options_, out_, *executor_, [] { return Clock::now(); });
  // Made here, not in run(), so that stop() from another thread never races its creation.
  wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

Worker::~Worker() {
  // First: the executor's threads may still wake the loop.
  executor_.reset();
  socket_.reset();
}

void Worker::stop() {
  stopping_.store(true);
  wake();
}

void Worker::wake() {
  if (!wake_fd_) return;
  std::uint64_t one = 1;
  // A full counter already means "wake up"; nothing to do on failure.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

Status Worker::connect() {
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  proto::configure_dealer(*socket_);
  if (options_.curve.enabled()) {
    // With CurveZMQ the scheduler names the connection and the key names
    // the worker: no routing id of our own.
    proto::configure_curve_client(*socket_, options_.curve);
  } else {
    socket_->set(zmq::sockopt::routing_id, options_.name);
  }
  watch_ =
      std::make_unique<proto::HandshakeWatch>(context_, *socket_,
                                              proto::HandshakeWatchOptions{.address = options_.scheduler,
                                                                           .curve = options_.curve.enabled(),
                                                                           .key_file = options_.key_file,
                                                                           .role_hint = "workers/"});
  try {
    socket_->connect(options_.scheduler);
  } catch (const zmq::error_t& e) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("cannot connect to scheduler address {:?}: {}; expected tcp://HOST:PORT",
                                  options_.scheduler, e.what()));
  }
  return {};
}

Status Worker::run() {
  if (options_.name.empty())
    return make_error(ErrorKind::kInvalidArgument, "the worker needs a name (--name)");
  if (!executor_)
    return make_error(ErrorKind::kInvalidArgument, "the worker needs a job executor (real or fake builds)");
  if (!wake_fd_) return errno_error("cannot create an eventfd");
  KILN_RETURN_IF_ERROR(executor_->open({.worker_name = options_.name,
                                        .scheduler = options_.scheduler,
                                        .curve = options_.curve,
                                        .events = session_.get(),
                                        .wake = [this] { wake(); },
                                        .log_window_bytes = options_.log_window_bytes}));
  KILN_RETURN_IF_ERROR(connect());
  const std::string_view mode = executor_->mode();
  spdlog::info("kiln-worker {}: connecting to {} (pool {}, capacity {}{}{})", options_.name,
               options_.scheduler, options_.pool, options_.capacity, mode.empty() ? "" : ", ", mode);
  session_->start();

  bool shutting_down = false;
  for (;;) {
    if (stopping_.load() && !shutting_down) {
      shutting_down = true;
      session_->refuse_new_jobs();
      spdlog::info("kiln-worker {}: stopping: cancelling {} running job(s)", options_.name,
                   executor_->running_count());
      executor_->interrupt_all(fmt::format("kiln-worker {} is shutting down", options_.name));
    }
    if (shutting_down && executor_->idle()) break;

    zmq::pollitem_t items[] = {
        {static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_fd_.get(), ZMQ_POLLIN, 0},
    };
    zmq::poll(items, 2, poll_timeout());
    if (items[1].revents & ZMQ_POLLIN) {
      std::uint64_t count = 0;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_.get(), &count, sizeof count);
    }
    receive_messages();
    executor_->poll(Clock::now());
    session_->tick();
    if (session_->fatal() && !shutting_down) stopping_.store(true);
    // A refused key (also one revoked while connected) or a wrong
    // scheduler key: no retry can help.
    if (!handshake_fatal_) {
      if (auto failed = watch_->failure()) {
        spdlog::error("kiln-worker {}: {}", options_.name, failed->message());
        handshake_fatal_ = std::move(*failed);
        stopping_.store(true);
      }
    }
  }

  session_->flush();
  if (session_->buffered_count() > 0)
    spdlog::warn("kiln-worker {}: exiting with {} report(s) the scheduler has not received", options_.name,
                 session_->buffered_count());
  // Give what was sent a moment to leave (the socket's linger is 0 otherwise).
  socket_->set(zmq::sockopt::linger, 2000);
  watch_.reset();
  socket_.reset();
  executor_->close();
  spdlog::info("kiln-worker {}: stopped", options_.name);
  if (session_->fatal()) return std::unexpected(*session_->fatal());
  if (handshake_fatal_) return std::unexpected(*handshake_fatal_);
  return {};
}

void Worker::receive_messages() {
  for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
    if (!(socket_->get(zmq::sockopt::events) & ZMQ_POLLIN)) break;
    auto frame = proto::receive(*socket_, /*router=*/false);
    if (!frame) {
      spdlog::warn("kiln-worker: malformed message from the scheduler: {}", frame.error().error.to_string());
      continue;
    }
    // stop() may come at any moment: an assign after it is not started.
    if (stopping_.load()) session_->refuse_new_jobs();
    session_->receive(frame->type, frame->type_text, frame->body);
  }
}

std::chrono::milliseconds Worker::poll_timeout() const {
  using std::chrono::milliseconds;
  milliseconds timeout(1000);
  if (stopping_.load()) timeout = milliseconds(50);
  if (auto executor = executor_->poll_timeout(Clock::now())) timeout = std::min(timeout, *executor);
  return std::min(timeout, session_->timeout());
}

}  // namespace kiln::worker
