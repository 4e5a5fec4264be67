#include "worker/docker/internal/unix_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace kiln::docker::internal {
namespace {

constexpr std::size_t kMaxErrorBody = 64 << 10;

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// State of one transfer, shared with libcurl's callbacks.
struct Transfer {
  const UnixHttp::Request* request = nullptr;
  std::size_t max_body = 0;
  UnixHttp::Response response;
  bool headers_done = false;
  bool success = false;  // a 2xx answer: its body may be streamed
  std::optional<Error> callback_error;
  bool oversized = false;
  CURL* curl = nullptr;
};

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    // A new status line (after a 1xx answer): start over.
    t->response.headers.clear();
    t->headers_done = false;
    return size * count;
  }
  if (line == "\r\n" || line == "\n") {
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->response.status);
    if (t->response.status >= 200) {
      t->headers_done = true;
      t->success = t->response.status < 300;
      if (t->success && t->request->on_headers) t->request->on_headers();
    }
    return size * count;
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::ranges::transform(name, name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    t->response.headers[name] = std::string(value);
  }
  return size * count;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view bytes(data, size * count);
  if (t->success && t->request->on_body) {
    if (auto s = t->request->on_body(bytes); !s) {
      t->callback_error = s.error();
      return CURL_WRITEFUNC_ERROR;
    }
    return bytes.size();
  }
  std::size_t limit = t->success || !t->request->on_body ? t->max_body : kMaxErrorBody;
  if (t->response.body.size() + bytes.size() > limit) {
    t->oversized = true;
    return CURL_WRITEFUNC_ERROR;
  }
  t->response.body.append(bytes);
  return bytes.size();
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  auto n = t->request->read_body(buffer, size * count);
  if (!n) {
    t->callback_error = n.error();
    return CURL_READFUNC_ABORT;
  }
  return *n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->request->cancel != nullptr && t->request->cancel->cancelled() ? 1 : 0;
}

}  // namespace

UnixHttp::UnixHttp(std::string socket_path, Options options)
    : socket_path_(std::move(socket_path)), options_(options) {
  init_curl_once();
}

UnixHttp::~UnixHttp() {
  for (void* handle : idle_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* UnixHttp::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      void* handle = idle_.back();
      idle_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void UnixHttp::release(void* handle) {
  curl_easy_reset(static_cast<CURL*>(handle));  // keeps the open connection
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.idle_connections) {
    idle_.push_back(handle);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

std::string UnixHttp::escape(std::string_view value) {
  init_curl_once();
  char* escaped = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

Result<UnixHttp::Response> UnixHttp::perform(const Request& request) {
  CURL* curl = static_cast<CURL*>(acquire());
  if (curl == nullptr) return make_error(ErrorKind::kInternal, "libcurl could not make a handle");
  struct Release {
    UnixHttp* self;
    CURL* curl;
    ~Release() { self->release(curl); }
  } release_on_exit{this, curl};

  Transfer t;
  t.request = &request;
  t.max_body = options_.max_response_bytes;
  t.curl = curl;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::string url = "http://docker" + request.target;
  curl_slist* headers = nullptr;
  if (!request.content_type.empty())
    headers = curl_slist_append(headers, ("Content-Type: " + request.content_type).c_str());
  for (const std::string& line : request.headers) headers = curl_slist_append(headers, line.c_str());
  // No "Expect: 100-continue" round trip for uploads.
  headers = curl_slist_append(headers, "Expect:");
  struct FreeHeaders {
    curl_slist* list;
    ~FreeHeaders() { curl_slist_free_all(list); }
  } free_headers{headers};

  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  if (request.timeout)
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout->count()));
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  if (request.read_body) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);  // PUT with a chunked body
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
  } else if (request.body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body->size()));
  }
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST" && !request.body && !request.read_body) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
  }
  if (request.method != "GET" && request.method != "HEAD")
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());

  CURLcode code = curl_easy_perform(curl);
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.response.status);
    return std::move(t.response);
  }
  if (t.callback_error) return std::unexpected(std::move(*t.callback_error));
  if (code == CURLE_ABORTED_BY_CALLBACK) return make_error(ErrorKind::kCancelled, "cancelled");
  if (t.oversized)
    return make_error(ErrorKind::kInvalidArgument, fmt::format("the answer is larger than {} bytes; refused",
                                                               t.success ? t.max_body : kMaxErrorBody));
  std::string why = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  if (code == CURLE_OPERATION_TIMEDOUT) return make_error(ErrorKind::kTimeout, why);
  if (code == CURLE_COULDNT_CONNECT)
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("cannot connect to {} ({}); is dockerd running there?", socket_path_, why));
  return make_error(ErrorKind::kUnavailable, why);
}

}  // namespace kiln::docker::internal
