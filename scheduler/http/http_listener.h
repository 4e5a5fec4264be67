// A small HTTP/1.1 server with every resource bounded, for the scheduler's
// read-only HTTP interface (http_server.h puts the routes on it).
//
//   HttpListener listener;
//   KILN_RETURN_IF_ERROR(listener.start("127.0.0.1", 0, [](const HttpRequest& req, HttpResponse& res) {
//     res.body = "hello " + req.path;
//   }));
//   ... listener.bound_port() ...
//   listener.stop();
//
// One thread runs an epoll loop over every connection and calls the handler
// for each complete request, in order; nothing a client sends can hold a
// thread. The limits (HttpLimits) and what happens at each:
// - a request head (request line and headers) over `max_head_bytes`, or
//   more than `max_headers` headers: 431, connection closed;
// - a request line or path over the head limit: 414;
// - a body larger than `max_body_bytes` (by Content-Length): 413 before it
//   is read; chunked request bodies: 411 (the API takes none);
// - a head not complete within `head_timeout` (slowloris): 408, closed;
// - an idle keep-alive connection after `idle_timeout`: closed;
// - a response the client does not read within `write_timeout`: closed;
// - past `max_connections`, or `max_connections_per_ip` for one address,
//   the oldest connection of that address (else overall) that has not sent
//   a complete request is closed to make room, so slow or idle clients
//   cannot starve new ones; if every connection is busy the new one gets
//   503 and is closed.
// Requests are HTTP/1.0 or 1.1 with keep-alive; no TLS (put a proxy in
// front), no pipelining beyond answering in order.
// Thread safety: start/stop/bound_port from one thread; the handler runs on
// the listener's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace kiln::http {

struct HttpRequest {
  std::string method;
  std::string path;   // decoded, without the query
  std::string query;  // raw, after '?'
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // the client's address

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
  // A query parameter, percent-decoded; nullopt-like "" with has_param false.
  bool has_param(std::string_view name) const;
  std::string param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpLimits {
  std::size_t max_head_bytes = 16 * 1024;
  std::size_t max_headers = 100;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds head_timeout{5000};
  std::chrono::milliseconds idle_timeout{5000};
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_connections = 256;
  std::size_t max_connections_per_ip = 32;
};

class HttpListener {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;

  HttpListener();
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Binds host:port (port 0: any free one) and starts serving. kUnavailable
  // when the address cannot be bound.
  Status start(const std::string& host, int port, Handler handler, HttpLimits limits = {});
  // Closes every connection and joins the thread. Idempotent.
  void stop();
  int bound_port() const;

  // Counters (any thread): connections closed to make room, requests refused by a limit.
  std::uint64_t evicted() const;
  std::uint64_t refused() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "%41b+c" -> "Ab c" (for query values).
std::string percent_decode(std::string_view text, bool plus_is_space);

}  // namespace kiln::http
