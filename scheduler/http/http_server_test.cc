#include "scheduler/http/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::http {
namespace {

TEST(ParseHttpAddress, HostAndPortForms) {
  auto full = parse_http_address("0.0.0.0:9000");
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->host, "0.0.0.0");
  EXPECT_EQ(full->port, 9000);
  auto port_only = parse_http_address(":7881");
  ASSERT_TRUE(port_only.has_value());
  EXPECT_EQ(port_only->host, "127.0.0.1");
  EXPECT_EQ(port_only->port, 7881);
  auto bare = parse_http_address("0");
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->port, 0);
  auto v6 = parse_http_address("[::1]:7880");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
}

TEST(ParseHttpAddress, RejectsWhatIsNotAPort) {
  for (const char* bad : {"localhost", "127.0.0.1:", "127.0.0.1:http", "1:70000", "1:-1", ""}) {
    auto parsed = parse_http_address(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_THAT(parsed.error().message(), ::testing::HasSubstr("HOST:PORT"));
  }
}

}  // namespace
}  // namespace kiln::http
