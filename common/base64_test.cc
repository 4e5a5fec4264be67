#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln {
namespace {

TEST(Base64, RoundTripsAndRefusesGarbage) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", "user:p@ss:word", std::string("\0\xff\x10", 3)})
    EXPECT_EQ(*base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("user:secret"), "dXNlcjpzZWNyZXQ=");
  EXPECT_FALSE(base64_decode("a*b"));
  EXPECT_FALSE(base64_decode("ab=c"));
}

}  // namespace
}  // namespace kiln
