// A small blocking HTTP/1.1 GET for `kiln admin stats`: one request on a
// fresh connection (Connection: close), a connect and a read deadline, and a
// bound on the answer. It lets the kiln command read the scheduler's JSON API
// without linking an HTTP library (and the TLS and compression libraries
// that come with one), which would slow every command's start.
//
// It speaks what kiln-scheduler's HTTP interface answers: a Content-Length
// body, or a body that ends with the connection. Chunked answers are refused.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/error.h"

namespace kiln::cli {

struct HttpGetOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{15000};  // for the whole answer
  std::size_t max_answer_bytes = 64u << 20;       // head and body
  std::string bearer_token;                       // sent as Authorization when set
};

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// GET http://HOST:PORT/PATH. Errors (kUnavailable) say why in a few words
// ("cannot connect", "timed out connecting", "the connection closed before
// an answer", "timed out reading the answer", "the answer is over 64.0 MiB",
// "not an HTTP answer"); the caller adds the URL and what to do.
Result<HttpAnswer> http_get(const std::string& host, int port, const std::string& path,
                            const HttpGetOptions& options = {});

}  // namespace kiln::cli
