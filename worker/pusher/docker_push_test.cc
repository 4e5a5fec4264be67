// The X-Registry-Auth value the docker store's push hands dockerd.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "worker/pusher/docker_push.h"

namespace kiln::pusher::internal {
namespace {

TEST(DockerRegistryAuth, IsBase64UrlOfTheLoginAndTheRegistry) {
  // A password whose standard base64 has '+' and '/' in it ("?>?" encodes as "Pz4/").
  std::string value = docker_registry_auth("kiln", "?>?~~~", "127.0.0.1:5000");
  EXPECT_EQ(value.find('+'), std::string::npos) << value;
  EXPECT_EQ(value.find('/'), std::string::npos) << value;
  std::string standard = value;
  for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
  auto decoded = base64_decode(standard);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  nlohmann::json j = nlohmann::json::parse(*decoded);
  EXPECT_EQ(j["username"], "kiln");
  EXPECT_EQ(j["password"], "?>?~~~");
  EXPECT_EQ(j["serveraddress"], "127.0.0.1:5000");
}

}  // namespace
}  // namespace kiln::pusher::internal
