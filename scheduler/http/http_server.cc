#include "scheduler/http/http_server.h"

#include <charconv>
#include <regex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "scheduler/http/dashboard_page.h"
#include "scheduler/http/http_listener.h"
#include "scheduler/http/json_api.h"
#include "scheduler/http/metrics.h"
#include "scheduler/http/stats.h"

namespace kiln::http {
namespace {

constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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

void send_error(HttpResponse& res, const Error& error) {
  res.status = http_status_for(error.kind());
  res.content_type = kJsonType;
  res.body = error_json(error);
}

void send_json(HttpResponse& res, std::string body) {
  res.status = 200;
  res.content_type = kJsonType;
  res.body = std::move(body);
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
  HttpLimits limits;
  std::function<std::string()> history;
  HttpListener listener;

  // The current view, or a 503 answer when the scheduler has not published one.
  std::shared_ptr<const FarmView> current(HttpResponse& res) {
    auto snapshot = view();
    if (!snapshot) {
      send_error(res, Error(ErrorKind::kUnavailable,
                            "the scheduler has not published its state yet: retry in a second"));
    }
    return snapshot;
  }

  // The token, when one is set. False: answered (401).
  bool authorised(const HttpRequest& req, HttpResponse& res) const {
    if (auth.token.empty() || req.path == "/") return true;
    const bool read = req.method == "GET" || req.method == "HEAD";
    if (read && auth.public_read) return true;
    const std::string header = req.header("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.starts_with(kBearer) &&
        same_secret(std::string_view(header).substr(kBearer.size()), auth.token)) {
      return true;
    }
    res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kiln\"");
    send_error(res, Error(ErrorKind::kPermissionDenied,
                          header.empty() ? "this scheduler's HTTP interface needs its token: send "
                                           "\"Authorization: Bearer TOKEN\" (--http-token-file)"
                                         : "wrong HTTP token"));
    res.status = 401;
    return false;
  }

  void handle(const HttpRequest& req, HttpResponse& res) {
    // Every answer is live state: no cache may keep it.
    res.headers = {{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"}};
    if (!authorised(req, res)) return;
    if (req.method != "GET" && req.method != "HEAD") {
      res.headers.emplace_back("Allow", "GET, HEAD");
      send_error(res,
                 Error(ErrorKind::kInvalidArgument,
                       fmt::format("{} {}: every endpoint here is read-only (GET)", req.method, req.path)));
      res.status = 405;
      return;
    }
    try {
      route(req, res);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {} failed: {}", req.method, req.path, e.what());
      send_error(res, Error(ErrorKind::kInternal,
                            fmt::format("{} failed inside the scheduler: {}", req.path, e.what())));
    }
  }

  void route(const HttpRequest& req, HttpResponse& res) {
    const std::string& path = req.path;
    if (path == "/") {
      // The browser enforces what the page promises: it talks only to this
      // server and runs only its own inline script and style.
      res.headers.emplace_back("Content-Security-Policy", std::string(kDashboardCsp));
      res.content_type = "text/html; charset=utf-8";
      res.body = std::string(dashboard_html());
      return;
    }
    if (path == "/metrics") {
      if (auto v = current(res)) {
        res.content_type = std::string(kMetricsContentType);
        res.body = render_metrics(*v, compute_stats(*v));
      }
      return;
    }
    if (path == "/v1/pools") {
      if (auto v = current(res)) send_json(res, pools_json(compute_stats(*v)));
      return;
    }
    if (path == "/v1/workers") {
      if (auto v = current(res)) send_json(res, workers_json(compute_stats(*v)));
      return;
    }
    if (path == "/v1/clients") {
      if (auto v = current(res)) send_json(res, clients_json(compute_stats(*v)));
      return;
    }
    if (path == "/v1/stats") {
      if (auto v = current(res)) send_json(res, stats_json(*v, compute_stats(*v)));
      return;
    }
    if (path == "/v1/stats/history" && history) return send_json(res, history());
    if (path == "/v1/jobs") {
      auto query = parse_jobs_query(req.param("state"), req.param("limit"));
      if (!query) return send_error(res, query.error());
      if (auto v = current(res)) send_json(res, jobs_json(*v, *query));
      return;
    }
    constexpr std::string_view kJobs = "/v1/jobs/";
    if (path.starts_with(kJobs)) {
      std::string_view rest = std::string_view(path).substr(kJobs.size());
      const auto slash = rest.find('/');
      const std::string id(rest.substr(0, slash));
      if (!id.empty() && slash == std::string_view::npos) return job_detail(id, res);
      if (!id.empty() && rest.substr(slash) == "/log") return job_log(id, req, res);
    }
    send_error(res, Error(ErrorKind::kNotFound,
                          fmt::format("no such endpoint {}: see docs/api.md (/, /metrics, /v1/pools, "
                                      "/v1/workers, /v1/clients, /v1/jobs, /v1/jobs/ID, /v1/jobs/ID/log, "
                                      "/v1/stats, /v1/stats/history)",
                                      path)));
  }

  void job_detail(const std::string& id, HttpResponse& res) {
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
  }

  void job_log(const std::string& id, const HttpRequest& req, HttpResponse& res) {
    std::uint64_t offset = 0;
    if (req.has_param("offset")) {
      std::string text = req.param("offset");
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), offset);
      if (error != std::errc() || end != text.data() + text.size()) {
        return send_error(res, Error(ErrorKind::kInvalidArgument,
                                     fmt::format("bad ?offset={}: give the byte offset to read the log from "
                                                 "(X-Kiln-Log-Next-Offset of the previous answer)",
                                                 text)));
      }
    }
    auto chunk = log(id, offset);
    if (!chunk)
      return send_error(res, chunk.error().with_context(fmt::format("reading the log of job {}", id)));
    res.headers.emplace_back("X-Kiln-Log-Offset", std::to_string(chunk->offset));
    res.headers.emplace_back("X-Kiln-Log-Next-Offset", std::to_string(chunk->offset + chunk->data.size()));
    res.headers.emplace_back("X-Kiln-Log-Complete", chunk->complete ? "true" : "false");
    res.headers.emplace_back("X-Kiln-Job-State", chunk->state);
    res.body = std::move(chunk->data);
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

HttpServer::HttpServer(ViewFn view, LogFn log, JobFn job, HttpAuth auth, HttpLimits limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->auth = std::move(auth);
  impl_->limits = limits;
  impl_->view = std::move(view);
  impl_->log = std::move(log);
  impl_->job = std::move(job);
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::set_history(std::function<std::string()> history) {
  impl_->history = std::move(history);
}

Status HttpServer::start(const std::string& address, int port) {
  Impl* impl = impl_.get();
  return impl_->listener.start(
      address, port, [impl](const HttpRequest& req, HttpResponse& res) { impl->handle(req, res); },
      impl_->limits);
}

void HttpServer::stop() {
  impl_->listener.stop();
}

int HttpServer::bound_port() const {
  return impl_->listener.bound_port();
}

std::uint64_t HttpServer::connections_evicted() const {
  return impl_->listener.evicted();
}

std::uint64_t HttpServer::requests_refused() const {
  return impl_->listener.refused();
}

}  // namespace kiln::http
