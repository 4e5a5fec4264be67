// The ZAP handler with real CurveZMQ sockets in one process: who gets in on
// which port, the User-Id the scheduler reads, and revocation by removing a
// key file.
#include "common/auth/zap_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/auth/curve_keys.h"
#include "tests/support/temp_dir.h"

namespace kiln::auth {
namespace {

using namespace std::chrono_literals;

struct Peer {
  CurveKeyPair pair;
};

CurveKeyPair add_key(const std::string& dir, const std::string& role_dir, const std::string& name) {
  auto pair = generate_curve_key_pair();
  EXPECT_TRUE(pair);
  std::filesystem::create_directories(dir + "/" + role_dir);
  std::ofstream(dir + "/" + role_dir + "/" + name + ".pub")
      << "public-key = \"" << pair->public_z85 << "\"\n";
  return *pair;
}

class ZapHandlerTest : public ::testing::Test {
 protected:
  ZapHandlerTest() {
    server_ = *generate_curve_key_pair();
    alice_ = add_key(dir_.path(), "clients", "alice");
    w1_ = add_key(dir_.path(), "workers", "w1");
    ops_ = add_key(dir_.path(), "admins", "ops");
    auto zap = ZapHandler::start(context_, dir_.path(), 100ms);
    EXPECT_TRUE(zap) << zap.error().to_string();
    zap_ = std::move(*zap);
    for (auto [socket, domain] :
         {std::pair{&clients_, kZapDomainClients}, std::pair{&workers_, kZapDomainWorkers}}) {
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::zap_domain, std::string(domain));
      socket->set(zmq::sockopt::curve_server, 1);
      socket->set(zmq::sockopt::curve_secretkey, server_.secret_z85);
      socket->bind("tcp://127.0.0.1:*");
    }
  }

  // Connects with `key` to `server`, sends "hi", and returns the User-Id the
  // server saw, or "" if nothing arrived within a second.
  std::string user_id_seen(zmq::socket_t& server, const CurveKeyPair& key) {
    zmq::socket_t dealer(context_, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::curve_serverkey, server_.public_z85);
    dealer.set(zmq::sockopt::curve_publickey, key.public_z85);
    dealer.set(zmq::sockopt::curve_secretkey, key.secret_z85);
    dealer.connect(server.get(zmq::sockopt::last_endpoint));
    dealer.send(zmq::str_buffer("hi"), zmq::send_flags::none);
    zmq::pollitem_t item{server.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 1000ms);
    if (!(item.revents & ZMQ_POLLIN)) return "";
    zmq::message_t routing, body;
    (void)server.recv(routing);
    (void)server.recv(body);
    const char* user = body.gets("User-Id");
    return user != nullptr ? user : "";
  }

  testing::TempDir dir_;
  zmq::context_t context_{1};
  CurveKeyPair server_, alice_, w1_, ops_;
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t clients_{context_, zmq::socket_type::router};
  zmq::socket_t workers_{context_, zmq::socket_type::router};
};

TEST_F(ZapHandlerTest, KeysGetInOnlyOnThePortOfTheirRole) {
  const std::string alice = user_id_seen(clients_, alice_);
  EXPECT_EQ(alice, "client:alice:" + alice_.public_z85);
  EXPECT_EQ(zap_->check(alice), (Identity{.role = Role::kClient, .name = "alice"}));
  EXPECT_EQ(zap_->check(user_id_seen(clients_, ops_)), (Identity{.role = Role::kAdmin, .name = "ops"}));
  EXPECT_EQ(zap_->check(user_id_seen(workers_, w1_)), (Identity{.role = Role::kWorker, .name = "w1"}));

  EXPECT_EQ(user_id_seen(workers_, alice_), "") << "a client key registered on the worker port";
  EXPECT_EQ(user_id_seen(clients_, w1_), "") << "a worker key got onto the client port";
  EXPECT_EQ(user_id_seen(workers_, ops_), "") << "an admin key got onto the worker port";
  EXPECT_EQ(user_id_seen(clients_, *generate_curve_key_pair()), "") << "an unknown key got in";
  EXPECT_GE(zap_->refused(), 4u);
  EXPECT_GE(zap_->accepted(), 3u);
}

TEST_F(ZapHandlerTest, ARemovedKeyIsRevokedAndAnAddedOneWorksWithoutARestart) {
  const std::string alice = user_id_seen(clients_, alice_);
  ASSERT_TRUE(zap_->check(alice));
  const auto generation = zap_->generation();
  std::filesystem::remove(dir_.path() + "/clients/alice.pub");
  const CurveKeyPair bob = add_key(dir_.path(), "clients", "bob");
  for (int i = 0; i < 50 && zap_->generation() == generation; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_NE(zap_->generation(), generation) << "the directory was not reloaded";
  EXPECT_EQ(zap_->check(alice), std::nullopt) << "a removed key still checks";
  EXPECT_EQ(user_id_seen(clients_, alice_), "");
  EXPECT_EQ(zap_->check(user_id_seen(clients_, bob)), (Identity{.role = Role::kClient, .name = "bob"}));
}

TEST_F(ZapHandlerTest, AKeyGivenToAnotherNameChecksAsNeither) {
  const std::string alice = user_id_seen(clients_, alice_);
  // The operator renames alice.pub to carol.pub: the old connections were "alice".
  std::filesystem::rename(dir_.path() + "/clients/alice.pub", dir_.path() + "/clients/carol.pub");
  const auto generation = zap_->generation();
  for (int i = 0; i < 50 && zap_->generation() == generation; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(zap_->check(alice), std::nullopt);
  EXPECT_EQ(zap_->check("client:carol:" + alice_.public_z85),
            (Identity{.role = Role::kClient, .name = "carol"}));
  EXPECT_EQ(zap_->check("garbage"), std::nullopt);
  EXPECT_EQ(zap_->check("client:carol"), std::nullopt);
}

}  // namespace
}  // namespace kiln::auth
