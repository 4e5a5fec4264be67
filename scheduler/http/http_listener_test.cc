// HttpListener against hostile clients over real sockets: oversized bodies
// and heads, too many headers, slow and half-open connections, and a
// well-behaved request still answered among them.
#include "scheduler/http/http_listener.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace kiln::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

class HttpListenerTest : public ::testing::Test {
 protected:
  void start(HttpLimits limits = {}) {
    auto s = listener_.start(
        "127.0.0.1", 0,
        [this](const HttpRequest& req, HttpResponse& res) {
          ++handled_;
          res.body = "path=" + req.path + " state=" + req.param("state") +
                     " body=" + std::to_string(req.body.size());
        },
        limits);
    ASSERT_TRUE(s) << s.error().to_string();
  }
  UniqueFd connect_() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(listener_.bound_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }
  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Everything the server sends until it closes (or the 10 s receive timeout).
  static std::string read_all(int fd) {
    std::string out;
    char buffer[4096];
    while (true) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }
  // One response (head and Content-Length body) from a kept-alive connection.
  static std::string read_response(int fd, bool head_only = false) {
    std::string out;
    char c;
    while (out.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) out.push_back(c);
    if (head_only) return out;
    auto pos = out.find("Content-Length: ");
    std::size_t length = pos == std::string::npos ? 0 : std::stoul(out.substr(pos + 16));
    std::string body(length, '\0');
    std::size_t got = 0;
    while (got < length) {
      ssize_t n = ::recv(fd, body.data() + got, length - got, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    return out + body.substr(0, got);
  }

  HttpListener listener_;
  std::atomic<int> handled_{0};
};

TEST_F(HttpListenerTest, AnswersKeepsAliveAndDecodesTheQuery) {
  start();
  UniqueFd fd = connect_();
  ASSERT_TRUE(send_all(fd.get(), "GET /v1/jobs?state=queued%2Crunning&limit=5 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first = read_response(fd.get());
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(first, HasSubstr("Connection: keep-alive"));
  EXPECT_THAT(first, HasSubstr("path=/v1/jobs state=queued,running body=0"));
  ASSERT_TRUE(send_all(fd.get(), "HEAD /x HTTP/1.1\r\n\r\n"));
  std::string head = read_response(fd.get(), /*head_only=*/true);
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK"));
  ASSERT_TRUE(send_all(fd.get(), "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"));
  std::string last = read_all(fd.get());
  // What follows the HEAD answer's head is the next answer, not a body.
  EXPECT_THAT(last, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(last, HasSubstr("Connection: close"));
  EXPECT_THAT(last, HasSubstr("path=/last"));
}

TEST_F(HttpListenerTest, AHugeBodyIsRefusedBeforeItIsRead) {
  start();
  UniqueFd fd = connect_();
  // 400 MB announced; none of it sent.
  ASSERT_TRUE(send_all(fd.get(), "POST /v1/stats HTTP/1.1\r\nContent-Length: 400000000\r\n\r\n"));
  std::string reply = read_all(fd.get());
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413 "));
  EXPECT_EQ(handled_.load(), 0);
  // A body within the limit is read and handed over.
  UniqueFd ok = connect_();
  ASSERT_TRUE(send_all(ok.get(), "POST /p HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
  EXPECT_THAT(read_all(ok.get()), HasSubstr("body=5"));
  UniqueFd chunked = connect_();
  ASSERT_TRUE(send_all(chunked.get(),
                       "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  EXPECT_THAT(read_all(chunked.get()), StartsWith("HTTP/1.1 411 "));
}

TEST_F(HttpListenerTest, TooManyOrTooLargeHeadersAre431AndALongUriIs414) {
  start();
  UniqueFd many = connect_();
  std::string request = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 20000; ++i) request += "X-H" + std::to_string(i) + ": v\r\n";
  request += "\r\n";
  send_all(many.get(), request);  // the server may close before all of it is read
  EXPECT_THAT(read_all(many.get()), StartsWith("HTTP/1.1 431 "));
  UniqueFd large = connect_();
  send_all(large.get(), "GET / HTTP/1.1\r\nX-Big: " + std::string(40000, 'a') + "\r\n\r\n");
  EXPECT_THAT(read_all(large.get()), StartsWith("HTTP/1.1 431 "));
  UniqueFd uri = connect_();
  send_all(uri.get(), "GET /" + std::string(40000, 'a'));
  EXPECT_THAT(read_all(uri.get()), StartsWith("HTTP/1.1 414 "));
  EXPECT_EQ(handled_.load(), 0);
  EXPECT_GE(listener_.refused(), 3u);
}

TEST_F(HttpListenerTest, ASlowHeadTimesOutWith408AndIdleConnectionsAreClosed) {
  start({.head_timeout = 300ms, .idle_timeout = 300ms});
  UniqueFd slow = connect_();
  ASSERT_TRUE(send_all(slow.get(), "GET / HTTP/1.1\r\nHost:"));
  EXPECT_THAT(read_all(slow.get()), StartsWith("HTTP/1.1 408 "));
  UniqueFd idle = connect_();
  EXPECT_EQ(read_all(idle.get()), "") << "an idle connection was not closed";
}

TEST_F(HttpListenerTest, HalfOpenConnectionsDoNotStarveARealRequest) {
  // The attack that made the old server's /v1/stats time out: 60
  // connections that send half a request and wait, from the same address.
  start({.max_connections = 64, .max_connections_per_ip = 32});
  std::vector<UniqueFd> attackers;
  for (int i = 0; i < 60; ++i) {
    attackers.push_back(connect_());
    ASSERT_TRUE(send_all(attackers.back().get(), "GET /v1/stats HTTP/1.1\r\nHost: a"));
  }
  std::this_thread::sleep_for(200ms);  // let the listener take them all in
  UniqueFd dashboard = connect_();
  ASSERT_TRUE(send_all(dashboard.get(), "GET /v1/stats HTTP/1.1\r\nConnection: close\r\n\r\n"));
  std::string reply = read_all(dashboard.get());
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(reply, HasSubstr("path=/v1/stats"));
  EXPECT_GE(listener_.evicted(), 28u) << "the listener held more than its per-address cap";
}

TEST(PercentDecode, DecodesAndLeavesBrokenEscapes) {
  EXPECT_EQ(percent_decode("a%2Cb+c", true), "a,b c");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("100%", true), "100%");
  EXPECT_EQ(percent_decode("%zz", true), "%zz");
}

}  // namespace
}  // namespace kiln::http
