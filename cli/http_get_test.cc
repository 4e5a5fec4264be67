// cli/http_get.h against a real TCP listener on 127.0.0.1 that answers what
// each test scripts: good answers, and the ones a client must not trust.
#include "cli/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace kiln::cli {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Accepts connections and, for each, reads the request head and writes
// `answer` (then closes unless `hold` is set). Remembers the last request.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::string answer, bool hold = false) : answer_(std::move(answer)), hold_(hold) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string request() const { return request_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      request_ = head;
      (void)!::write(c, answer_.data(), answer_.size());
      while (hold_ && !stop_) std::this_thread::sleep_for(10ms);
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::string answer_;
  bool hold_;
  std::atomic<bool> stop_{false};
  std::string request_;
  std::thread thread_;
};

TEST(HttpGet, ReadsAContentLengthAnswerAndSendsTheRequestAndToken) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
  auto answer = http_get("127.0.0.1", server.port(), "/v1/stats", {.bearer_token = "s3cret"});
  ASSERT_TRUE(answer) << answer.error().to_string();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, "{\"a\":1}");
  EXPECT_THAT(server.request(), ::testing::StartsWith("GET /v1/stats HTTP/1.1\r\n"));
  EXPECT_THAT(server.request(), HasSubstr("\r\nAuthorization: Bearer s3cret\r\n"));
  EXPECT_THAT(server.request(), HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
}

TEST(HttpGet, ReadsABodyThatEndsWithTheConnectionAndAnErrorStatus) {
  ScriptedServer server("HTTP/1.0 503 Service Unavailable\r\n\r\nnot yet");
  auto answer = http_get("127.0.0.1", server.port(), "/");
  ASSERT_TRUE(answer) << answer.error().to_string();
  EXPECT_EQ(answer->status, 503);
  EXPECT_EQ(answer->body, "not yet");
}

TEST(HttpGet, NothingListeningIsCannotConnect) {
  int port = 0;
  {
    ScriptedServer gone("");
    port = gone.port();
  }
  auto answer = http_get("127.0.0.1", port, "/");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind(), ErrorKind::kUnavailable);
  EXPECT_EQ(answer.error().message(), "cannot connect");
}

TEST(HttpGet, AShortBodyIsNotTakenForTheWholeAnswer) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
  auto answer = http_get("127.0.0.1", server.port(), "/");
  ASSERT_FALSE(answer);
  EXPECT_THAT(answer.error().message(), HasSubstr("closed in the middle of the answer"));
}

TEST(HttpGet, AnAnswerOverTheBoundIsRefusedBeforeItIsRead) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", /*hold=*/true);
  auto answer = http_get("127.0.0.1", server.port(), "/", {.max_answer_bytes = 1 << 20});
  ASSERT_FALSE(answer);
  EXPECT_THAT(answer.error().message(), HasSubstr("the answer is over 1.0 MiB"));
}

TEST(HttpGet, AServerThatNeverFinishesTimesOut) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", /*hold=*/true);
  auto answer = http_get("127.0.0.1", server.port(), "/", {.read_timeout = 300ms});
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().message(), "timed out reading the answer");
}

TEST(HttpGet, ChunkedAndNonHttpAnswersAreRefused) {
  {
    ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    auto answer = http_get("127.0.0.1", server.port(), "/");
    ASSERT_FALSE(answer);
    EXPECT_THAT(answer.error().message(), HasSubstr("chunked"));
  }
  {
    ScriptedServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    auto answer = http_get("127.0.0.1", server.port(), "/");
    ASSERT_FALSE(answer);
    EXPECT_EQ(answer.error().message(), "not an HTTP answer");
  }
}

}  // namespace
}  // namespace kiln::cli
