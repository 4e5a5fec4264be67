// Which keys a farm command uses when it is given none: the local farm's,
// and only for a scheduler on this host.
#include "cli/farm_client.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/auth/curve_keys.h"

namespace kiln::cli {
namespace {

TEST(LoopbackAddress, OnlyAddressesThatStayOnThisHost) {
  EXPECT_TRUE(is_loopback_address("tcp://127.0.0.1:7800"));
  EXPECT_TRUE(is_loopback_address("tcp://127.3.2.1:7800"));
  EXPECT_TRUE(is_loopback_address("tcp://localhost:7800"));
  EXPECT_TRUE(is_loopback_address("tcp://[::1]:7800"));
  EXPECT_TRUE(is_loopback_address("ipc:///run/kiln/scheduler"));
  EXPECT_FALSE(is_loopback_address("tcp://10.0.0.5:7800"));
  EXPECT_FALSE(is_loopback_address("tcp://localhost.example.com:7800"));
  EXPECT_FALSE(is_loopback_address("tcp://1270.0.0.1:7800"));
  EXPECT_FALSE(is_loopback_address("tcp://scheduler.corp:7800"));
}

class LocalFarmKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::filesystem::temp_directory_path() / ("kiln-farm-client-" + std::to_string(::getpid()));
    std::filesystem::create_directories(home_ / "farm/keys");
    for (const char* name : {"admin", "scheduler"}) {
      auto pair = auth::generate_curve_key_pair();
      ASSERT_TRUE(pair);
      ASSERT_TRUE(auth::write_key_files(*pair, (home_ / "farm/keys").string(), name));
    }
    ::setenv("KILN_HOME", home_.c_str(), 1);
    ::unsetenv("KILN_KEY");
    ::unsetenv("KILN_SCHEDULER_KEY");
    ::unsetenv("KILN_SCHEDULER");
  }
  void TearDown() override {
    ::unsetenv("KILN_HOME");
    std::filesystem::remove_all(home_);
  }
  std::filesystem::path home_;
};

TEST_F(LocalFarmKeys, UsedForASchedulerOnThisHost) {
  FarmFlags flags;
  flags.scheduler = "tcp://127.0.0.1:7800";
  auto options = client_options(flags);
  ASSERT_TRUE(options) << options.error().to_string();
  EXPECT_TRUE(options->curve.enabled());
  EXPECT_EQ(options->key_file, (home_ / "farm/keys/admin.key").string());
}

TEST_F(LocalFarmKeys, NeverOfferedToASchedulerOnAnotherHost) {
  FarmFlags flags;
  flags.scheduler = "tcp://10.231.2.1:7800";
  auto options = client_options(flags);
  ASSERT_TRUE(options) << options.error().to_string();
  EXPECT_FALSE(options->curve.enabled());
  EXPECT_TRUE(options->key_file.empty());
}

TEST_F(LocalFarmKeys, ExplicitKeysWinOverTheLocalFarm) {
  auto pair = auth::generate_curve_key_pair();
  ASSERT_TRUE(pair);
  ASSERT_TRUE(auth::write_key_files(*pair, home_.string(), "alice"));
  FarmFlags flags;
  flags.scheduler = "tcp://127.0.0.1:7800";
  flags.key_file = (home_ / "alice.key").string();
  flags.scheduler_key_file = (home_ / "farm/keys/scheduler.pub").string();
  auto options = client_options(flags);
  ASSERT_TRUE(options) << options.error().to_string();
  EXPECT_EQ(options->key_file, flags.key_file);
  EXPECT_EQ(options->curve.public_z85, pair->public_z85);
}

}  // namespace
}  // namespace kiln::cli
