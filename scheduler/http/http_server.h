// The scheduler's HTTP server: Prometheus /metrics, the /v1 JSON API and the
// web dashboard at /, all read from the FarmView the scheduler publishes.
// docs/api.md documents every endpoint.
//
//   HttpServer http(
//       [&] { return published_view(); },                        // shared_ptr<const FarmView>
//       [&](const std::string& job, std::uint64_t offset) {      // any thread
//         return core.read_log_any_thread(job, offset, 64 << 10);
//       });
//   KILN_RETURN_IF_ERROR(http.start("127.0.0.1", 7880));        // port 0: any free port
//   spdlog::info("dashboard on http://127.0.0.1:{}/", http.bound_port());
//   ...
//   http.stop();                                                 // also done by the destructor
//
// Contract: the server answers on a thread of its own (HttpListener: every
// request, header, body, connection and wait is bounded) until stop(); the
// callbacks are called from that thread and must be thread-safe and quick. ViewFn returns the latest
// published view (never null once start() is called; a null view is answered 503). LogFn serves
// /v1/jobs/ID/log; its errors become HTTP statuses (not found 404, invalid argument 400, unavailable 503,
// others 500) with a JSON error body. JobFn (optional) looks up a job the view does not hold (an older ended
// one) for /v1/jobs/ID, and the spec text of one the view holds without it; without JobFn such jobs are 404
// and specs empty. start() fails (kUnavailable) when the address cannot be bound, saying so and how to choose
// another. Thread safety: start/stop/bound_port from one thread (the scheduler's main).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/proto/messages.h"
#include "scheduler/http/farm_view.h"
#include "scheduler/http/http_listener.h"

namespace kiln::http {

inline constexpr int kDefaultHttpPort = 7880;

struct HttpAddress {
  std::string host = "127.0.0.1";
  int port = kDefaultHttpPort;
};

// Parses --http's value: "HOST:PORT", "[IPV6]:PORT", ":PORT" (host
// 127.0.0.1) or "PORT". kInvalidArgument naming the value otherwise ("off"
// is the caller's to handle).
Result<HttpAddress> parse_http_address(std::string_view text);

// Who may read: with a token, every request but the dashboard's page itself
// (static; it fetches the data with the token) must carry
// "Authorization: Bearer TOKEN", else 401; `public_read` serves GET and
// HEAD without it (every endpoint today is read-only; any that changes
// something will need the token whatever `public_read` says).
struct HttpAuth {
  std::string token;  // empty: no token (a loopback or --insecure server)
  bool public_read = false;
};

class HttpServer {
 public:
  using ViewFn = std::function<std::shared_ptr<const FarmView>()>;
  using LogFn = std::function<Result<proto::Log>(const std::string& job_id, std::uint64_t offset)>;
  using JobFn = std::function<Result<proto::JobInfo>(const std::string& job_id)>;

  HttpServer(ViewFn view, LogFn log, JobFn job = nullptr, HttpAuth auth = {}, HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // /v1/stats/history's body (StatsHistory::json); without it the endpoint is 404.
  // Call before start().
  void set_history(std::function<std::string()> history);

  // Binds `address:port` (port 0 picks a free one) and starts serving.
  Status start(const std::string& address, int port);
  // Stops accepting, finishes the requests in progress and joins the threads.
  // Idempotent.
  void stop();
  // The bound port after a successful start(); 0 before.
  int bound_port() const;
  // Connections closed to make room for new ones, requests refused by a limit.
  std::uint64_t connections_evicted() const;
  std::uint64_t requests_refused() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::http
