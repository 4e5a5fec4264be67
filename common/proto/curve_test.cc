// proto::Client over CurveZMQ against a real CurveZMQ ROUTER with the ZAP
// handler: a good key connects; every kind of wrong key is a clear error at
// once, not a time-out.
#include "common/proto/curve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/auth/curve_keys.h"
#include "common/auth/zap_handler.h"
#include "common/proto/client.h"
#include "common/proto/transport.h"
#include "tests/support/temp_dir.h"

namespace kiln::proto {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A scheduler stand-in: answers hello with welcome.
class WelcomeServer {
 public:
  WelcomeServer(const std::string& auth_dir, const auth::CurveKeyPair* server_key) {
    if (server_key != nullptr) {
      auto zap = auth::ZapHandler::start(context_, auth_dir, 100ms);
      EXPECT_TRUE(zap) << zap.error().to_string();
      zap_ = std::move(*zap);
      configure_curve_server(socket_, server_key->secret_z85, auth::kZapDomainClients);
    }
    configure_router(socket_);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] {
      while (!stop_) {
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 50ms);
        if (!(item.revents & ZMQ_POLLIN)) continue;
        auto frame = receive(socket_, true);
        if (!frame || frame->type != Type::kHello) continue;
        auto hello = decode<Hello>(frame->body);
        last_user_id_ = frame->user_id;
        send_to(socket_, frame->routing_id, Welcome{.request_id = hello->request_id, .scheduler_id = "s1"});
      }
    });
  }
  ~WelcomeServer() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  std::string last_user_id() const { return last_user_id_; }

 private:
  zmq::context_t context_{1};
  std::unique_ptr<auth::ZapHandler> zap_;
  zmq::socket_t socket_{context_, zmq::socket_type::router};
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::string last_user_id_;
  std::thread thread_;
};

class CurveClientTest : public ::testing::Test {
 protected:
  CurveClientTest() {
    server_key_ = *auth::generate_curve_key_pair();
    alice_ = *auth::generate_curve_key_pair();
    std::filesystem::create_directories(dir_.path() + "/clients");
    std::ofstream(dir_.path() + "/clients/alice.pub") << "public-key = \"" << alice_.public_z85 << "\"\n";
  }
  CurveClientKeys keys_for(const auth::CurveKeyPair& mine, const std::string& server_public) {
    return {.server_public_z85 = server_public, .public_z85 = mine.public_z85, .secret_z85 = mine.secret_z85};
  }
  // Connects and returns the error. A refusal that went unnoticed would end
  // in the time-out's "timed out"/"cannot connect" instead, which the
  // callers' message checks tell apart (no wall-clock assertion here).
  Error refused(const std::string& endpoint, const ClientOptions& options) {
    auto client = Client::connect(endpoint, "t", 20s, options);
    EXPECT_FALSE(client);
    return client ? Error(ErrorKind::kInternal, "connected") : client.error();
  }

  testing::TempDir dir_;
  auth::CurveKeyPair server_key_, alice_;
};

TEST_F(CurveClientTest, AListedKeyConnectsAndTheServerKnowsWhoItIs) {
  WelcomeServer server(dir_.path(), &server_key_);
  auto client =
      Client::connect(server.endpoint(), "t", 5s, {.curve = keys_for(alice_, server_key_.public_z85)});
  ASSERT_TRUE(client) << client.error().to_string();
  EXPECT_EQ((*client)->scheduler_id(), "s1");
  EXPECT_EQ(server.last_user_id(), "client:alice:" + alice_.public_z85);
}

TEST_F(CurveClientTest, AnUnlistedKeyIsRefusedAtOnce) {
  WelcomeServer server(dir_.path(), &server_key_);
  auto stranger = *auth::generate_curve_key_pair();
  Error e = refused(server.endpoint(),
                    {.curve = keys_for(stranger, server_key_.public_z85), .key_file = "/keys/stranger.key"});
  EXPECT_EQ(e.kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(e.message(), HasSubstr("refused this key (/keys/stranger.key)"));
  EXPECT_THAT(e.message(), HasSubstr("not in clients/ or admins/"));
}

TEST_F(CurveClientTest, NoKeyAgainstASecureSchedulerSaysWhatToPass) {
  WelcomeServer server(dir_.path(), &server_key_);
  Error e = refused(server.endpoint(), {});
  EXPECT_EQ(e.kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(e.message(),
              HasSubstr("requires CurveZMQ authentication: pass --key FILE and --scheduler-key FILE"));
}

// A CurveZMQ scheduler that sees a keyless greeting may close before its own
// greeting is sent in full; the client then sees handshakes cut short rather
// than a mechanism mismatch. Played here by a TCP listener that sends the
// first 10 bytes of a ZMTP signature and closes every connection.
TEST_F(CurveClientTest, NoKeyAgainstASchedulerThatCutsTheHandshakeSaysWhatToPass) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::atomic<bool> stop{false};
  std::thread cutter([&] {
    const unsigned char signature[10] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f};
    while (!stop) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      (void)!::write(fd, signature, sizeof signature);
      ::close(fd);
    }
  });
  Error e = refused("tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), {});
  stop = true;
  cutter.join();
  ::close(listener);
  EXPECT_EQ(e.kind(), ErrorKind::kPermissionDenied) << e.to_string();
  EXPECT_THAT(e.message(), HasSubstr("closed every connection during the handshake"));
  EXPECT_THAT(e.message(),
              HasSubstr("requires CurveZMQ authentication: pass --key FILE and --scheduler-key FILE"));
}

TEST_F(CurveClientTest, AWrongSchedulerKeyIsNamed) {
  WelcomeServer server(dir_.path(), &server_key_);
  auto other = *auth::generate_curve_key_pair();
  Error e = refused(server.endpoint(), {.curve = keys_for(alice_, other.public_z85)});
  EXPECT_THAT(e.message(), HasSubstr("is not that scheduler's public key"));
}

TEST_F(CurveClientTest, AKeyAgainstAPlaintextSchedulerIsNamed) {
  WelcomeServer server(dir_.path(), nullptr);
  // ZeroMQ reports this as a mechanism mismatch or, depending on timing, as
  // a failed handshake with no detail: both messages name the cause.
  Error e = refused(server.endpoint(), {.curve = keys_for(alice_, server_key_.public_z85)});
  EXPECT_THAT(e.message(), HasSubstr("does not use CurveZMQ (it was started without --key)"));
}

}  // namespace
}  // namespace kiln::proto
