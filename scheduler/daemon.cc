#include "scheduler/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <zmq.hpp>

#include "common/proto/transport.h"

namespace kiln::scheduler {
namespace {

std::atomic<bool> g_signalled{false};
void on_signal(int) { g_signalled.store(true); }

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
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(const DaemonOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  KILN_ASSIGN_OR_RETURN(auto db, JobDb::open(options.core.state_dir + "/db", {.sync = options.sync}));
  KILN_ASSIGN_OR_RETURN(auto policy, placement::make_policy(options.core.placement));
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
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("cannot listen on {}: {} (is another kiln-scheduler running? choose another "
                                    "address with --listen/--listen-workers)",
                                    endpoint, e.what()));
    }
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
  return {};
}

}  // namespace kiln::scheduler
