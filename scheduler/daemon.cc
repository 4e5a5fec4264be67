#include "scheduler/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <mutex>
#include <zmq.hpp>

#include "common/proto/transport.h"
#include "scheduler/http/http_server.h"
#include "scheduler/rocksdb_job_db.h"

namespace kiln::scheduler {
namespace {

std::atomic<bool> g_signalled{false};
void on_signal(int) {
  g_signalled.store(true);
}

// Messages taken from one socket per loop turn before the other gets a go.
constexpr int kBatch = 2000;

}  // namespace

struct Daemon::Impl {
  DaemonOptions options;
  std::unique_ptr<Clock> clock = make_system_clock();
  std::unique_ptr<Scheduler> core;
  zmq::context_t context{1};
  zmq::socket_t clients{context, zmq::socket_type::router};
  zmq::socket_t workers{context, zmq::socket_type::router};
  std::int64_t started_at_ms = 0;
  std::unique_ptr<http::HttpServer> http;
  std::mutex view_mu;
  std::shared_ptr<const http::FarmView> view;
  std::chrono::steady_clock::time_point next_publish{};
  std::chrono::milliseconds publish_interval{250};

  void publish() {
    const auto began = std::chrono::steady_clock::now();
    Snapshot snap = core->snapshot();
    auto v = std::make_shared<http::FarmView>();
    v->now_ms = snap.now_ms;
    v->scheduler_id = snap.scheduler_id;
    v->placement_policy = snap.placement;
    v->started_at_ms = started_at_ms;
    v->heartbeat_ms = options.core.heartbeat_ms;
    v->workers = std::move(snap.workers);
    v->jobs = std::move(snap.jobs);
    v->jobs_total_by_state = std::move(snap.jobs_by_state);
    v->jobs_submitted_by_client = std::move(snap.jobs_by_client);
    v->low_disk_threshold_bytes = options.core.low_disk_bytes;
    v->expected_seconds = std::move(snap.expected_seconds);
    v->default_target_wait_seconds = options.core.target_wait_seconds;
    for (const auto& [pool, seconds] : options.pool_target_waits)
      v->pools.push_back({.name = pool, .target_wait_seconds = seconds});
    {
      std::lock_guard lock(view_mu);
      view = std::move(v);
    }
    // A big farm's snapshot costs more: publish it less often so that
    // building it stays under a tenth of the loop's time.
    const auto took = std::chrono::steady_clock::now() - began;
    publish_interval = std::max<std::chrono::milliseconds>(
        std::chrono::milliseconds(250), std::chrono::duration_cast<std::chrono::milliseconds>(took * 10));
    next_publish = std::chrono::steady_clock::now() + publish_interval;
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(const DaemonOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  KILN_ASSIGN_OR_RETURN(auto db, open_rocksdb_job_db(options.core.state_dir + "/db", {.sync = options.sync}));
  KILN_ASSIGN_OR_RETURN(auto policy, placement::make_policy(options.core.placement,
                                                            {.low_disk_bytes = options.core.low_disk_bytes}));
  impl->core = std::make_unique<Scheduler>(options.core, std::move(db), std::move(policy), *impl->clock);
  const auto started = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(impl->core->recover());
  spdlog::info("recovery took {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started)
                                          .count());
  proto::configure_router(impl->clients);
  proto::configure_router(impl->workers);
  for (auto [socket, endpoint] : {std::pair{&impl->clients, options.client_endpoint},
                                  std::pair{&impl->workers, options.worker_endpoint}}) {
    try {
      socket->bind(endpoint);
    } catch (const zmq::error_t& e) {
      return make_error(
          ErrorKind::kUnavailable,
          fmt::format("cannot listen on {}: {} (is another kiln-scheduler running? choose another "
                      "address with --listen/--listen-workers)",
                      endpoint, e.what()));
    }
  }
  impl->started_at_ms = impl->clock->wall_ms();
  if (options.http_address != "off") {
    KILN_ASSIGN_OR_RETURN(auto address, http::parse_http_address(options.http_address));
    Impl* d = impl.get();
    d->publish();
    d->http = std::make_unique<http::HttpServer>(
        [d] {
          std::lock_guard lock(d->view_mu);
          return d->view;
        },
        [d](const std::string& job, std::uint64_t offset) {
          return d->core->read_log_committed(job, offset, 64 << 10);
        },
        [d](const std::string& job) { return d->core->job_committed(job); });
    KILN_RETURN_IF_ERROR(d->http->start(address.host, address.port));
    spdlog::info("dashboard and metrics on http://{}:{}/", address.host, d->http->bound_port());
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Status Daemon::run() {
  Impl& d = *impl_;
  if (d.options.handle_signals) {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
  }
  spdlog::info("kiln-scheduler {} ready: clients on {}, workers on {}, state in {}", d.core->scheduler_id(),
               d.options.client_endpoint, d.options.worker_endpoint, d.options.core.state_dir);
  zmq::pollitem_t items[] = {{d.clients.handle(), 0, ZMQ_POLLIN, 0}, {d.workers.handle(), 0, ZMQ_POLLIN, 0}};
  const Port ports[] = {Port::kClients, Port::kWorkers};
  zmq::socket_t* sockets[] = {&d.clients, &d.workers};
  while (!stop_.load() && !g_signalled.load()) {
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(20));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return make_error(ErrorKind::kIo, fmt::format("zmq poll: {}", e.what()));
    }
    for (int i = 0; i < 2; ++i) {
      for (int n = 0; n < kBatch; ++n) {
        if (!(sockets[i]->get(zmq::sockopt::events) & ZMQ_POLLIN)) break;
        auto frame = proto::receive(*sockets[i], /*router=*/true);
        if (!frame) {
          d.core->handle_bad(ports[i], frame.error().routing_id, frame.error().error);
          continue;
        }
        d.core->handle(ports[i], Incoming{.routing_id = std::move(frame->routing_id),
                                          .type = frame->type,
                                          .type_text = std::move(frame->type_text),
                                          .body = std::move(frame->body)});
      }
    }
    d.core->tick();
    if (d.http && std::chrono::steady_clock::now() >= d.next_publish) d.publish();
    if (auto s = d.core->commit(); !s) {
      // Nothing may be acknowledged that is not stored: stop.
      return std::unexpected(std::move(s.error()).with_context("committing the job database"));
    }
    for (Outgoing& out : d.core->take_outbox()) {
      zmq::socket_t& socket = out.port == Port::kClients ? d.clients : d.workers;
      if (!proto::send_raw(socket, &out.routing_id, proto::type_name(out.type), out.body)) {
        spdlog::debug("dropped {} to a slow or gone peer", proto::type_name(out.type));
      }
    }
  }
  spdlog::info("kiln-scheduler stopping");
  if (d.http) d.http->stop();
  return {};
}

}  // namespace kiln::scheduler
