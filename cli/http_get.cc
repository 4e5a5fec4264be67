#include "cli/http_get.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/format.h"
#include "common/unique_fd.h"

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;

Error failure(std::string why) {
  return Error(ErrorKind::kUnavailable, std::move(why));
}

int millis_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Connects to one of HOST's addresses within the deadline.
Result<UniqueFd> connect_to(const std::string& host, int port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return std::unexpected(failure(fmt::format("cannot resolve {}: {}", host, ::gai_strerror(rc))));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  bool timed_out = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!fd) continue;
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) continue;
    pollfd p{fd.get(), POLLOUT, 0};
    int ready = ::poll(&p, 1, millis_left(deadline));
    if (ready == 0) {
      timed_out = true;
      continue;
    }
    int error = 0;
    socklen_t len = sizeof error;
    if (ready > 0 && ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0) return fd;
  }
  return std::unexpected(failure(timed_out ? "timed out connecting" : "cannot connect"));
}

Status send_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return std::unexpected(failure("the connection closed"));
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, millis_left(deadline)) == 0) return std::unexpected(failure("timed out sending"));
  }
  return {};
}

// The value of header `name` (case-insensitive) in `head`, or empty.
std::string header_value(std::string_view head, std::string_view name) {
  std::size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), line.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      std::string_view value = line.substr(name.size() + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      return std::string(value);
    }
  }
  return {};
}

}  // namespace

Result<HttpAnswer> http_get(const std::string& host, int port, const std::string& path,
                            const HttpGetOptions& options) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, connect_to(host, port, Clock::now() + options.connect_timeout));
  const auto deadline = Clock::now() + options.read_timeout;
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}{}{}:{}\r\nAccept: application/json\r\nUser-Agent: kiln\r\n"
      "Connection: close\r\n",
      path, ipv6 ? "[" : "", host, ipv6 ? "]" : "", port);
  if (!options.bearer_token.empty()) request += fmt::format("Authorization: Bearer {}\r\n", options.bearer_token);
  request += "\r\n";
  KILN_RETURN_IF_ERROR(send_all(fd.get(), request, deadline));

  std::string answer;
  std::size_t head_end = std::string::npos;
  std::size_t expected = std::string::npos;  // the whole answer's size, once known
  char buffer[16384];
  while (answer.size() < expected) {
    pollfd p{fd.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, millis_left(deadline));
    if (ready == 0) return std::unexpected(failure("timed out reading the answer"));
    ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return std::unexpected(failure("the connection closed before an answer"));
    }
    if (n == 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
    if (answer.size() > options.max_answer_bytes)
      return std::unexpected(failure(fmt::format("the answer is over {}", human_bytes(options.max_answer_bytes))));
    if (head_end == std::string::npos && (head_end = answer.find("\r\n\r\n")) != std::string::npos) {
      std::string_view head(answer.data(), head_end);
      if (header_value(head, "Transfer-Encoding").size() > 0)
        return std::unexpected(failure("a chunked answer (not taken)"));
      if (std::string length = header_value(head, "Content-Length"); !length.empty()) {
        if (length.find_first_not_of("0123456789") != std::string::npos || length.size() > 12)
          return std::unexpected(failure("not an HTTP answer (bad Content-Length)"));
        expected = head_end + 4 + std::stoull(length);
        if (expected > options.max_answer_bytes)
          return std::unexpected(
              failure(fmt::format("the answer is over {}", human_bytes(options.max_answer_bytes))));
      }
    }
  }
  if (head_end == std::string::npos) {
    return std::unexpected(failure(answer.empty() ? "the connection closed before an answer"
                                                  : "not an HTTP answer"));
  }
  if (expected != std::string::npos && answer.size() < expected)
    return std::unexpected(failure("the connection closed in the middle of the answer"));
  // "HTTP/1.1 200 OK"
  HttpAnswer result;
  if (!answer.starts_with("HTTP/1.") || answer.size() < 12 || answer[8] != ' ' ||
      std::sscanf(answer.c_str() + 9, "%3d", &result.status) != 1 || result.status < 100)
    return std::unexpected(failure("not an HTTP answer"));
  result.body = answer.substr(head_end + 4, expected == std::string::npos ? std::string::npos
                                                                          : expected - head_end - 4);
  return result;
}

}  // namespace kiln::cli
