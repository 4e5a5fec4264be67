// Internal to worker/docker: HTTP/1.1 requests to a daemon listening on a
// unix socket, over libcurl (CURLOPT_UNIX_SOCKET_PATH), with keep-alive
// connections reused between requests.
//
//   UnixHttp http("/run/docker.sock", {});
//   KILN_ASSIGN_OR_RETURN(UnixHttp::Response r, http.perform({.method = "GET", .target = "/v1.41/version"}));
//   // r.status == 200, r.body == "{...}"
//
// A buffered answer is at most Options::max_response_bytes (an error beyond).
// A request with `on_body` streams a successful answer's body to it instead
// (no size limit; an error answer's body is still buffered, up to 64 KiB, for
// its message). `on_headers` is called once the status line and headers of a
// successful answer arrived (before any body). A request body comes from
// `body` or, streamed, from `read_body`. `cancel` is polled about once a
// second while waiting (libcurl's progress callback): the request then ends
// with kCancelled. Errors: kUnavailable when the socket cannot be reached
// (naming it), kTimeout, kCancelled, kInvalidArgument for an oversized answer,
// and whatever a callback returned. The HTTP status is not judged here.
// Thread safety: perform() may be called from several threads at once (each
// call takes its own connection from a small pool).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"

namespace kiln::docker::internal {

class UnixHttp {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{5'000};
    std::size_t max_response_bytes = 16u << 20;
    std::size_t idle_connections = 4;  // kept for reuse
  };

  struct Request {
    std::string method = "GET";
    std::string target;  // "/v1.41/containers/json?all=1": path and query, already escaped
    std::string content_type;
    std::vector<std::string> headers;  // more header lines, "Name: value"
    std::optional<std::string> body;
    // Streamed request body: fills the buffer, returns the bytes written (0 at
    // the end) or an error, which aborts the request.
    std::function<Result<std::size_t>(char* buffer, std::size_t size)> read_body;
    std::function<Status(std::string_view bytes)> on_body;  // streamed answer (2xx only)
    std::function<void()> on_headers;                       // 2xx answers only
    std::optional<std::chrono::milliseconds> timeout;       // whole request; none: unlimited
    const CancelToken* cancel = nullptr;
  };

  struct Response {
    long status = 0;
    std::string body;                            // empty when streamed
    std::map<std::string, std::string> headers;  // names lowercased
  };

  UnixHttp(std::string socket_path, Options options);
  ~UnixHttp();
  UnixHttp(const UnixHttp&) = delete;
  UnixHttp& operator=(const UnixHttp&) = delete;

  Result<Response> perform(const Request& request);
  const std::string& socket_path() const { return socket_path_; }

  // Percent-escapes a query value.
  static std::string escape(std::string_view value);

 private:
  void* acquire();
  void release(void* handle);

  const std::string socket_path_;
  const Options options_;
  std::mutex mu_;
  std::vector<void*> idle_;  // CURL* handles with their open connections
};

}  // namespace kiln::docker::internal
