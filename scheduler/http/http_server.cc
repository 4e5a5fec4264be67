#include "scheduler/http/http_server.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "scheduler/http/dashboard_page.h"
#include "scheduler/http/json_api.h"
#include "scheduler/http/metrics.h"
#include "scheduler/http/stats.h"

namespace kiln::http {
namespace {

constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// A thread serves one connection at a time, including the idle wait of a
// keep-alive connection. A dashboard tab opens up to four connections (three
// refresh requests in parallel and the log); eight threads with a short
// keep-alive leave room for a few viewers and a Prometheus scrape without
// one tab's idle connections holding every thread.
constexpr std::size_t kServerThreads = 8;
constexpr time_t kKeepAliveSeconds = 1;

int http_status_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return 400;
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kFailedPrecondition: return 409;
    case ErrorKind::kUnavailable: return 503;
    case ErrorKind::kTimeout: return 504;
    case ErrorKind::kPermissionDenied: return 403;
    default: return 500;
  }
}

void send_error(httplib::Response& res, const Error& error) {
  res.status = http_status_for(error.kind());
  res.set_content(error_json(error), kJsonType);
}

void send_json(httplib::Response& res, std::string body) {
  res.status = 200;
  res.set_content(std::move(body), kJsonType);
}

// Compares without stopping at the first difference (no timing oracle).
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

struct HttpServer::Impl {
  ViewFn view;
  LogFn log;
  JobFn job;
  HttpAuth auth;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listening_done{false};
  int port = 0;

  // The current view, or a 503 answer when the scheduler has not published one.
  std::shared_ptr<const FarmView> current(httplib::Response& res) {
    auto snapshot = view();
    if (!snapshot) {
      send_error(res, Error(ErrorKind::kUnavailable,
                            "the scheduler has not published its state yet: retry in a second"));
    }
    return snapshot;
  }

  // Before routing: the token, when one is set.
  httplib::Server::HandlerResponse check_auth(const httplib::Request& req, httplib::Response& res) const {
    if (auth.token.empty() || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
    const bool read = req.method == "GET" || req.method == "HEAD";
    if (read && auth.public_read) return httplib::Server::HandlerResponse::Unhandled;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.starts_with(kBearer) &&
        same_secret(std::string_view(header).substr(kBearer.size()), auth.token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"kiln\"");
    res.set_content(error_json(Error(ErrorKind::kPermissionDenied,
                                     header.empty() ? "this scheduler's HTTP interface needs its token: send "
                                                      "\"Authorization: Bearer TOKEN\" (--http-token-file)"
                                                    : "wrong HTTP token")),
                    kJsonType);
    return httplib::Server::HandlerResponse::Handled;
  }

  void routes() {
    server.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { return check_auth(req, res); });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      // The browser enforces what the page promises: it talks only to this
      // server and runs only its own inline script and style.
      res.set_header("Content-Security-Policy", std::string(kDashboardCsp));
      res.set_content(std::string(dashboard_html()), "text/html; charset=utf-8");
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      if (auto v = current(res))
        res.set_content(render_metrics(*v, compute_stats(*v)), std::string(kMetricsContentType));
    });
    server.Get("/v1/pools", [this](const httplib::Request&, httplib::Response& res) {
      if (auto v = current(res)) send_json(res, pools_json(compute_stats(*v)));
    });
    server.Get("/v1/workers", [this](const httplib::Request&, httplib::Response& res) {
      if (auto v = current(res)) send_json(res, workers_json(compute_stats(*v)));
    });
    server.Get("/v1/clients", [this](const httplib::Request&, httplib::Response& res) {
      if (auto v = current(res)) send_json(res, clients_json(compute_stats(*v)));
    });
    server.Get("/v1/stats", [this](const httplib::Request&, httplib::Response& res) {
      if (auto v = current(res)) send_json(res, stats_json(*v, compute_stats(*v)));
    });
    server.Get("/v1/jobs", [this](const httplib::Request& req, httplib::Response& res) {
      auto query = parse_jobs_query(req.get_param_value("state"), req.get_param_value("limit"));
      if (!query) return send_error(res, query.error());
      if (auto v = current(res)) send_json(res, jobs_json(*v, *query));
    });
    server.Get(R"(/v1/jobs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::string id = req.matches[1];
      auto v = current(res);
      if (!v) return;
      if (const proto::JobInfo* in_view = find_job(*v, id)) {
        // Views leave spec texts out (they can be large): the detail page
        // takes it from the scheduler's record, keeping the view's fresher state.
        if (!in_view->spec.empty() || !job) return send_json(res, job_json(*v, *in_view));
        proto::JobInfo detailed = *in_view;
        if (auto record = job(id)) detailed.spec = record->spec;
        return send_json(res, job_json(*v, detailed));
      }
      if (job) {
        auto record = job(id);
        if (!record) return send_error(res, record.error());
        return send_json(res, job_json(*v, *record));
      }
      send_error(res,
                 Error(ErrorKind::kNotFound,
                       fmt::format("no job '{}' among the scheduler's current and recent jobs: check the id "
                                   "(GET /v1/jobs lists them)",
                                   id)));
    });
    server.Get(R"(/v1/jobs/([^/]+)/log)", [this](const httplib::Request& req, httplib::Response& res) {
      std::string id = req.matches[1];
      std::uint64_t offset = 0;
      if (req.has_param("offset")) {
        std::string text = req.get_param_value("offset");
        auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), offset);
        if (error != std::errc() || end != text.data() + text.size()) {
          return send_error(res,
                            Error(ErrorKind::kInvalidArgument,
                                  fmt::format("bad ?offset={}: give the byte offset to read the log from "
                                              "(X-Kiln-Log-Next-Offset of the previous answer)",
                                              text)));
        }
      }
      auto chunk = log(id, offset);
      if (!chunk)
        return send_error(res, chunk.error().with_context(fmt::format("reading the log of job {}", id)));
      res.set_header("X-Kiln-Log-Offset", std::to_string(chunk->offset));
      res.set_header("X-Kiln-Log-Next-Offset", std::to_string(chunk->offset + chunk->data.size()));
      res.set_header("X-Kiln-Log-Complete", chunk->complete ? "true" : "false");
      res.set_header("X-Kiln-Job-State", chunk->state);
      res.set_content(std::move(chunk->data), "text/plain; charset=utf-8");
    });
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      // Only fill in bodies for errors no handler wrote (unknown paths).
      if (res.status == 404 && res.body.empty()) {
        send_error(
            res,
            Error(ErrorKind::kNotFound,
                  fmt::format("no such endpoint {}: see docs/api.md (/, /metrics, /v1/pools, "
                              "/v1/workers, /v1/clients, /v1/jobs, /v1/jobs/ID, /v1/jobs/ID/log, /v1/stats)",
                              req.path)));
      }
    });
    server.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          spdlog::error("http: {} {} failed: {}", req.method, req.path, what);
          send_error(res, Error(ErrorKind::kInternal,
                                fmt::format("{} failed inside the scheduler: {}", req.path, what)));
        });
    // Every answer is live state: no cache may keep it.
    server.set_default_headers({{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"}});
  }
};

Result<HttpAddress> parse_http_address(std::string_view text) {
  HttpAddress address;
  std::string_view port_text = text;
  if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (!host.empty()) address.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("bad HTTP address '{}': give HOST:PORT (e.g. 127.0.0.1:7880), :PORT, or off", text));
  }
  address.port = port;
  return address;
}

HttpServer::HttpServer(ViewFn view, LogFn log, JobFn job, HttpAuth auth) : impl_(std::make_unique<Impl>()) {
  impl_->auth = std::move(auth);
  impl_->view = std::move(view);
  impl_->log = std::move(log);
  impl_->job = std::move(job);
}

HttpServer::~HttpServer() {
  stop();
}

Status HttpServer::start(const std::string& address, int port) {
  if (impl_->thread.joinable()) {
    return make_error(ErrorKind::kFailedPrecondition, "the HTTP server is already started");
  }
  impl_->server.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  impl_->server.set_keep_alive_timeout(kKeepAliveSeconds);
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // scheduler share the port silently; SO_REUSEADDR alone allows a quick
  // restart without that.
  impl_->server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  impl_->routes();
  int bound = port == 0 ? impl_->server.bind_to_any_port(address)
                        : (impl_->server.bind_to_port(address, port) ? port : -1);
  if (bound <= 0) {
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format("cannot listen for HTTP on {}:{} (in use, or not an address of this machine): "
                    "choose another with --http ADDRESS:PORT, or --http off",
                    address, port));
  }
  impl_->port = bound;
  impl_->listening_done = false;
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->listening_done = true;
  });
  // httplib's stop() only works once its accept loop runs: wait for it, so
  // that a stop() right after start() cannot be lost.
  while (!impl_->server.is_running() && !impl_->listening_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {};
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
  impl_->port = 0;
}

int HttpServer::bound_port() const {
  return impl_->port;
}

}  // namespace kiln::http
