#include "scheduler/http/http_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <list>
#include <map>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/unique_fd.h"

namespace kiln::http {
namespace {

using Clock = std::chrono::steady_clock;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

std::string render(const HttpResponse& res, bool keep_alive, bool head_only) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n", res.status,
      reason(res.status), res.content_type, res.body.size(), keep_alive ? "keep-alive" : "close");
  for (const auto& [name, value] : res.headers) out += fmt::format("{}: {}\r\n", name, value);
  out += "\r\n";
  if (!head_only) out += res.body;
  return out;
}

// A short plain error for the limits (before any handler saw the request).
std::string limit_response(int status, std::string_view text) {
  HttpResponse res{.status = status,
                   .content_type = "application/json; charset=utf-8",
                   .body = fmt::format("{{\"error\":{{\"kind\":\"limit\",\"message\":\"{}\"}}}}\n", text)};
  return render(res, /*keep_alive=*/false, /*head_only=*/false);
}

std::string query_value(std::string_view query, std::string_view name, bool* found) {
  *found = false;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), true);
    if (key == name) {
      *found = true;
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size()) {
      int value = 0;
      auto [end, error] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (error == std::errc() && end == text.data() + i + 3) {
        out.push_back(static_cast<char>(value));
        i += 2;
      } else {
        out.push_back(c);
      }
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return value;
  return {};
}

bool HttpRequest::has_param(std::string_view name) const {
  bool found = false;
  (void)query_value(query, name, &found);
  return found;
}

std::string HttpRequest::param(std::string_view name) const {
  bool found = false;
  return query_value(query, name, &found);
}

struct HttpListener::Impl {
  struct Conn {
    UniqueFd fd;
    std::string ip;
    std::string in;
    std::string out;
    std::size_t out_offset = 0;
    bool writing = false;
    bool close_after_write = false;
    Clock::time_point waiting_since;  // for a complete request
    Clock::time_point write_started;
    std::uint64_t order = 0;  // accept order, for "oldest"
  };

  Handler handler;
  HttpLimits limits;
  UniqueFd listen_fd;
  UniqueFd epoll_fd;
  UniqueFd wake_fd;
  std::thread thread;
  std::atomic<bool> stopping{false};
  int port = 0;
  std::unordered_map<int, Conn> conns;
  std::uint64_t next_order = 0;
  std::atomic<std::uint64_t> evicted{0};
  std::atomic<std::uint64_t> refused{0};

  void close_conn(int fd) {
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd, nullptr);
    conns.erase(fd);
  }

  // Best effort: a short answer on a connection about to close.
  void answer_and_close(Conn& c, int status, std::string_view text) {
    refused.fetch_add(1);
    std::string reply = limit_response(status, text);
    [[maybe_unused]] ssize_t n = ::send(c.fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close_conn(c.fd.get());
  }

  void watch(int fd, bool want_write) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want_write ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, fd, &ev);
  }

  // A connection that is not in the middle of being answered and has not
  // sent a complete request: the ones that may be closed to make room.
  int oldest_waiting(const std::string* ip) const {
    int victim = -1;
    std::uint64_t order = UINT64_MAX;
    for (const auto& [fd, c] : conns) {
      if (c.writing || (ip != nullptr && c.ip != *ip)) continue;
      if (c.order < order) {
        order = c.order;
        victim = fd;
      }
    }
    return victim;
  }

  void accept_all() {
    while (true) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd =
          ::accept4(listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a transient error: epoll tells us again
      UniqueFd owned(fd);
      char host[NI_MAXHOST] = "?";
      ::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
      std::string ip = host;
      std::size_t same_ip = 0;
      for (const auto& [other, c] : conns) same_ip += c.ip == ip ? 1 : 0;
      // Make room: the oldest waiting connection of this address, else of anyone.
      if (same_ip >= limits.max_connections_per_ip || conns.size() >= limits.max_connections) {
        int victim = oldest_waiting(same_ip >= limits.max_connections_per_ip ? &ip : nullptr);
        if (victim < 0) {
          refused.fetch_add(1);
          std::string reply = limit_response(503, "too many connections; try again");
          [[maybe_unused]] ssize_t n = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          continue;
        }
        evicted.fetch_add(1);
        close_conn(victim);
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) continue;
      Conn c;
      c.fd = std::move(owned);
      c.ip = std::move(ip);
      c.waiting_since = Clock::now();
      c.order = next_order++;
      conns.emplace(fd, std::move(c));
    }
  }

  // Parses and answers every complete request in c.in (in order).
  void process(Conn& c) {
    while (!c.writing) {
      const auto head_end = c.in.find("\r\n\r\n");
      if (head_end == std::string::npos) {
        if (c.in.size() > limits.max_head_bytes) {
          return answer_and_close(c, c.in.find("\r\n") == std::string::npos ? 414 : 431,
                                  "request head over the limit");
        }
        return;
      }
      if (head_end + 4 > limits.max_head_bytes)
        return answer_and_close(c, 431, "request head over the limit");
      std::string_view head(c.in.data(), head_end);
      HttpRequest req;
      req.peer = c.ip;
      const auto line_end = head.find("\r\n");
      std::string_view line = head.substr(0, line_end);
      const auto sp1 = line.find(' ');
      const auto sp2 = line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 == sp1)
        return answer_and_close(c, 400, "malformed request line");
      req.method = std::string(line.substr(0, sp1));
      std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      std::string_view version = line.substr(sp2 + 1);
      if (version != "HTTP/1.1" && version != "HTTP/1.0") return answer_and_close(c, 400, "not HTTP/1.x");
      const auto q = target.find('?');
      req.path = percent_decode(target.substr(0, q), false);
      if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
      std::string_view rest =
          line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
      while (!rest.empty()) {
        auto eol = rest.find("\r\n");
        std::string_view h = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        if (req.headers.size() >= limits.max_headers)
          return answer_and_close(c, 431, "too many header fields");
        auto colon = h.find(':');
        if (colon == std::string_view::npos) return answer_and_close(c, 400, "malformed header field");
        req.headers.emplace_back(std::string(trim(h.substr(0, colon))),
                                 std::string(trim(h.substr(colon + 1))));
      }
      if (!req.header("Transfer-Encoding").empty())
        return answer_and_close(c, 411, "chunked bodies are not taken");
      std::size_t body_bytes = 0;
      if (std::string length = req.header("Content-Length"); !length.empty()) {
        auto [end, error] = std::from_chars(length.data(), length.data() + length.size(), body_bytes);
        if (error != std::errc() || end != length.data() + length.size())
          return answer_and_close(c, 400, "bad Content-Length");
        if (body_bytes > limits.max_body_bytes)
          return answer_and_close(c, 413, "request body over the limit");
      }
      if (c.in.size() < head_end + 4 + body_bytes) return;  // the body is still coming
      req.body = c.in.substr(head_end + 4, body_bytes);
      c.in.erase(0, head_end + 4 + body_bytes);

      const std::string connection = req.header("Connection");
      const bool keep_alive =
          version == "HTTP/1.1" ? !iequals(connection, "close") : iequals(connection, "keep-alive");
      HttpResponse res;
      try {
        handler(req, res);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {} failed: {}", req.method, req.path, e.what());
        res = HttpResponse{.status = 500, .body = "internal error\n"};
      }
      c.out = render(res, keep_alive, req.method == "HEAD");
      c.out_offset = 0;
      c.writing = true;
      c.close_after_write = !keep_alive;
      c.write_started = Clock::now();
      write_some(c);
      if (conns.find(c.fd.get()) == conns.end()) return;  // closed while writing
    }
  }

  void write_some(Conn& c) {
    while (c.out_offset < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_offset, c.out.size() - c.out_offset,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          watch(c.fd.get(), true);
          return;
        }
        if (errno == EINTR) continue;
        return close_conn(c.fd.get());
      }
      c.out_offset += static_cast<std::size_t>(n);
    }
    if (c.close_after_write) return close_conn(c.fd.get());
    c.out.clear();
    c.out_offset = 0;
    c.writing = false;
    c.waiting_since = Clock::now();
    watch(c.fd.get(), false);
  }

  void read_some(Conn& c) {
    char buffer[16 * 1024];
    while (true) {
      ssize_t n = ::recv(c.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        if (c.in.empty() && !c.writing) c.waiting_since = Clock::now();
        c.in.append(buffer, static_cast<std::size_t>(n));
        // Never hold more than a head and a body's worth (plus one read).
        if (c.in.size() > limits.max_head_bytes + limits.max_body_bytes + sizeof buffer) {
          return answer_and_close(c, 431, "request over the limit");
        }
        continue;
      }
      if (n == 0) return close_conn(c.fd.get());
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return close_conn(c.fd.get());
    }
    process(c);
  }

  void expire() {
    const auto now = Clock::now();
    std::vector<int> late, stalled;
    for (auto& [fd, c] : conns) {
      if (c.writing) {
        if (now - c.write_started > limits.write_timeout) stalled.push_back(fd);
      } else if (now - c.waiting_since > (c.in.empty() ? limits.idle_timeout : limits.head_timeout)) {
        late.push_back(fd);
      }
    }
    for (int fd : stalled) close_conn(fd);
    for (int fd : late) {
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      if (it->second.in.empty()) {
        close_conn(fd);  // an idle keep-alive connection
      } else {
        answer_and_close(it->second, 408, "the request did not arrive in time");
      }
    }
  }

  void run() {
    epoll_event events[64];
    while (!stopping.load()) {
      int n = ::epoll_wait(epoll_fd.get(), events, 64, 100);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd.get()) continue;
        if (fd == listen_fd.get()) {
          accept_all();
          continue;
        }
        auto it = conns.find(fd);
        if (it == conns.end()) continue;
        Conn& c = it->second;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          close_conn(fd);
          continue;
        }
        if ((events[i].events & EPOLLOUT) && c.writing) {
          write_some(c);
          if (conns.find(fd) == conns.end()) continue;
          if (!c.writing) process(c);  // requests that came meanwhile
          continue;
        }
        if (events[i].events & (EPOLLIN | EPOLLRDHUP)) read_some(c);
      }
      expire();
    }
    conns.clear();
  }
};

HttpListener::HttpListener() : impl_(std::make_unique<Impl>()) {}

HttpListener::~HttpListener() {
  stop();
}

Status HttpListener::start(const std::string& host, int port, Handler handler, HttpLimits limits) {
  if (impl_->thread.joinable())
    return make_error(ErrorKind::kFailedPrecondition, "the HTTP listener is running");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("cannot listen for HTTP on {}:{}: {}", host, port, gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  UniqueFd sock;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!s.valid()) continue;
    int yes = 1;
    // SO_REUSEADDR (a quick restart), not SO_REUSEPORT (a second scheduler
    // would share the port silently).
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(s.get(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(s.get(), 128) == 0) {
      sock = std::move(s);
      break;
    }
  }
  if (!sock.valid()) {
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format("cannot listen for HTTP on {}:{} (in use, or not an address of this machine): "
                    "choose another with --http ADDRESS:PORT, or --http off",
                    host, port));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  impl_->port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  impl_->epoll_fd = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  impl_->wake_fd = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!impl_->epoll_fd.valid() || !impl_->wake_fd.valid())
    return errno_error("cannot set up the HTTP listener");
  for (int fd : {sock.get(), impl_->wake_fd.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(impl_->epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  impl_->listen_fd = std::move(sock);
  impl_->handler = std::move(handler);
  impl_->limits = limits;
  impl_->stopping = false;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  return {};
}

void HttpListener::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->wake_fd.get(), &one, sizeof one);
  impl_->thread.join();
  impl_->listen_fd.reset();
  impl_->port = 0;
}

int HttpListener::bound_port() const {
  return impl_->port;
}

std::uint64_t HttpListener::evicted() const {
  return impl_->evicted.load();
}

std::uint64_t HttpListener::refused() const {
  return impl_->refused.load();
}

}  // namespace kiln::http
