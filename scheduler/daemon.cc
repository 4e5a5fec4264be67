#include "scheduler/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <mutex>
#include <unordered_map>
#include <zmq.hpp>

#include "common/auth/curve_keys.h"
#include "common/auth/zap_handler.h"
#include "common/proto/curve.h"
#include "common/proto/transport.h"
#include "scheduler/http/http_server.h"
#include "scheduler/http/stats.h"
#include "scheduler/http/stats_history.h"
#include "scheduler/rocksdb_job_db.h"

namespace kiln::scheduler {
namespace {

std::atomic<bool> g_signalled{false};
void on_signal(int) {
  g_signalled.store(true);
}

// Messages taken from one socket per loop turn before the other gets a go.
constexpr int kBatch = 2000;
// Connections remembered for revocation (routing id -> who, which fd).
constexpr std::size_t kMaxTrackedConnections = 100000;

// "tcp://127.0.0.1:7800", "tcp://localhost:1", "tcp://[::1]:1", ipc:// and
// inproc:// stay on this host; "tcp://*:7800", "tcp://0.0.0.0:1" or any
// other address do not.
bool is_local_endpoint(const std::string& endpoint) {
  if (!endpoint.starts_with("tcp://")) return true;
  std::string host = endpoint.substr(6);
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') - 1);
  } else {
    host = host.substr(0, host.rfind(':'));
  }
  return host.starts_with("127.") || host == "localhost" || host == "::1";
}

bool is_local_http(const std::string& host) {
  return host.starts_with("127.") || host == "localhost" || host == "::1";
}

// "client:alice" of a User-Id "client:alice:KEY" (a Z85 key may hold ':').
std::string identity_text(const std::string& user_id) {
  const auto first = user_id.find(':');
  const auto second = first == std::string::npos ? first : user_id.find(':', first + 1);
  return second == std::string::npos ? user_id : user_id.substr(0, second);
}

// Ends the TCP connection behind `fd` (a revoked peer's): libzmq then closes
// it as if the peer had gone. Only if `fd` is still a socket.
void cut_connection(int fd) {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  ::shutdown(fd, SHUT_RDWR);
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return errno_error("cannot read the HTTP token file " + path);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16) {
    return make_error(ErrorKind::kInvalidArgument,
                      path + ": the HTTP token must be at least 16 characters (e.g. `openssl rand -hex 32`)");
  }
  return token;
}

}  // namespace

struct Daemon::Impl {
  DaemonOptions options;
  std::unique_ptr<Clock> clock = make_system_clock();
  std::unique_ptr<Scheduler> core;
  zmq::context_t context{1};
  zmq::socket_t clients{context, zmq::socket_type::router};
  zmq::socket_t workers{context, zmq::socket_type::router};
  std::unique_ptr<auth::ZapHandler> zap;  // after the context: stopped before it
  std::uint64_t zap_generation = 0;
  struct Connection {
    Port port;
    std::string user_id;
    int fd = -1;
  };
  std::unordered_map<std::string, Connection> connections;  // by routing id, with authentication
  std::int64_t started_at_ms = 0;
  std::unique_ptr<http::HttpServer> http;
  std::mutex view_mu;
  std::shared_ptr<const http::FarmView> view;
  std::chrono::steady_clock::time_point next_publish{};
  std::chrono::milliseconds publish_interval{250};
  std::unique_ptr<http::StatsHistory> history;

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
    v->pool_counters = std::move(snap.pool_counters);
    v->default_target_wait_seconds = options.core.target_wait_seconds;
    for (const auto& [pool, seconds] : options.pool_target_waits)
      v->pools.push_back({.name = pool, .target_wait_seconds = seconds});
    if (history && history->due(v->now_ms)) history->record(*v, http::compute_stats(*v));
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
  if (options.key_file.empty() != options.auth_dir.empty()) {
    return make_error(
        ErrorKind::kInvalidArgument,
        "--key and --auth-dir go together: the scheduler's secret key, and the directory of the "
        "public keys it accepts (docs/security.md)");
  }
  const bool authenticate = !options.auth_dir.empty();
  const bool local = is_local_endpoint(options.client_endpoint) && is_local_endpoint(options.worker_endpoint);
  if (!authenticate && !local) {
    if (!options.insecure) {
      return make_error(
          ErrorKind::kFailedPrecondition,
          fmt::format("refusing to listen on {} and {} without authentication: anyone who reaches "
                      "them could run jobs, read their secrets and forge results; pass --key and "
                      "--auth-dir (docs/security.md), or --insecure on a network you trust",
                      options.client_endpoint, options.worker_endpoint));
    }
  }
  if (options.insecure && !authenticate) {
    spdlog::warn("--insecure: no authentication; anyone who can reach {} and {} controls this farm",
                 options.client_endpoint, options.worker_endpoint);
  }
  SchedulerOptions core_options = options.core;
  core_options.authenticate = authenticate;
  core_options.secrets_in_clear = local;
  impl->core = std::make_unique<Scheduler>(core_options, std::move(db), std::move(policy), *impl->clock);
  const auto started = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(impl->core->recover());
  spdlog::info("recovery took {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started)
                                          .count());
  proto::configure_router(impl->clients);
  proto::configure_router(impl->workers);
  if (authenticate) {
    KILN_ASSIGN_OR_RETURN_CONTEXT(auth::CurveKeyPair key, auth::read_secret_key_file(options.key_file),
                                  "reading the scheduler's --key");
    KILN_ASSIGN_OR_RETURN(impl->zap,
                          auth::ZapHandler::start(impl->context, options.auth_dir, options.auth_reload));
    impl->zap_generation = impl->zap->generation();
    proto::configure_curve_server(impl->clients, key.secret_z85, auth::kZapDomainClients);
    proto::configure_curve_server(impl->workers, key.secret_z85, auth::kZapDomainWorkers);
    // Routing ids are the ROUTER's own on the worker port: a peer may not
    // pick one (another worker's) and receive what is sent to it.
    impl->workers.set(zmq::sockopt::router_handover, 0);
    auto keys = impl->zap->keys();
    spdlog::info("CurveZMQ on: scheduler key {} (public {}), {} authorised keys in {}", options.key_file,
                 key.public_z85, keys->by_key.size(), options.auth_dir);
  }
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
    http::HttpAuth http_auth{.public_read = options.http_public_read};
    if (!options.http_token_file.empty()) {
      KILN_ASSIGN_OR_RETURN(http_auth.token, read_token_file(options.http_token_file));
    }
    if (!is_local_http(address.host) && http_auth.token.empty() && !options.insecure) {
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("refusing to serve HTTP on {} without a token: job logs and the farm's "
                                    "figures would be open to the network; pass --http-token-file FILE (and "
                                    "--http-public-read to leave reading open), or --insecure",
                                    options.http_address));
    }
    Impl* d = impl.get();
    const auto interval = std::max<std::uint32_t>(1, options.history_interval_seconds);
    d->history = std::make_unique<http::StatsHistory>(
        std::chrono::seconds(interval),
        static_cast<std::size_t>(std::max(1.0, options.history_hours * 3600.0 / interval)));
    d->publish();
    d->http = std::make_unique<http::HttpServer>(
        [d] {
          std::lock_guard lock(d->view_mu);
          return d->view;
        },
        [d](const std::string& job, std::uint64_t offset) {
          return d->core->read_log_committed(job, offset, 64 << 10);
        },
        [d](const std::string& job) { return d->core->job_committed(job); }, http_auth);
    d->http->set_history([d] { return d->history->json(); });
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
          d.core->handle_bad(ports[i], frame.error().routing_id, frame.error().error,
                             frame.error().request_id);
          continue;
        }
        std::optional<auth::Identity> peer;
        if (d.zap) {
          peer = d.zap->check(frame->user_id);
          if (!peer) {
            // The key was removed or changed since this connection was
            // made: refused, and the connection cut; a reconnect is refused
            // at its handshake.
            spdlog::warn(
                "a message from {} on the {} port: its key is no longer authorised; connection closed",
                identity_text(frame->user_id), ports[i] == Port::kClients ? "client" : "worker");
            d.core->revoke(ports[i], frame->routing_id, "its key was revoked");
            d.connections.erase(frame->routing_id);
            cut_connection(frame->source_fd);
            continue;
          }
          if (ports[i] == Port::kWorkers && (frame->routing_id.empty() || frame->routing_id[0] != '\0')) {
            d.core->handle_bad(ports[i], frame->routing_id,
                               Error(ErrorKind::kInvalidArgument,
                                     "with authentication a worker sets no ZeroMQ routing id (the scheduler "
                                     "assigns one); this kiln-worker is too old or misconfigured"));
            continue;
          }
          if (d.connections.size() >= kMaxTrackedConnections && !d.connections.contains(frame->routing_id)) {
            d.connections.clear();
          }
          d.connections[frame->routing_id] = {ports[i], frame->user_id, frame->source_fd};
        }
        d.core->handle(ports[i], Incoming{.routing_id = std::move(frame->routing_id),
                                          .type = frame->type,
                                          .type_text = std::move(frame->type_text),
                                          .body = std::move(frame->body),
                                          .peer = std::move(peer)});
      }
    }
    // Keys removed from the auth directory: cut their connections now, not
    // only at their next message.
    if (d.zap && d.zap->generation() != d.zap_generation) {
      d.zap_generation = d.zap->generation();
      for (auto it = d.connections.begin(); it != d.connections.end();) {
        if (d.zap->check(it->second.user_id)) {
          ++it;
          continue;
        }
        spdlog::warn("{}: its key was removed from the auth directory; connection closed",
                     identity_text(it->second.user_id));
        d.core->revoke(it->second.port, it->first, "its key was revoked");
        cut_connection(it->second.fd);
        it = d.connections.erase(it);
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
