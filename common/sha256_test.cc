#include "common/sha256.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace kiln {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamingEqualsOneShot) {
  Sha256 h;
  h.update("ab");
  h.update("c");
  EXPECT_EQ(h.hex_digest(), sha256_hex("abc"));
}

TEST(Sha256, FileDigestMatchesContent) {
  std::string path = ::testing::TempDir() + "/sha256_test_file";
  std::string content(1 << 20, 'x');
  content += "tail";
  std::ofstream(path, std::ios::binary) << content;
  auto d = sha256_file(path);
  ASSERT_TRUE(d.has_value()) << d.error().to_string();
  EXPECT_EQ(to_hex(*d), sha256_hex(content));
  std::remove(path.c_str());
}

TEST(Sha256, MissingFileIsNotFound) {
  auto d = sha256_file("/nonexistent/kiln/file");
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(d.error().message().find("/nonexistent/kiln/file"), std::string::npos);
}

TEST(Hex, EncodesAndRecognises) {
  std::uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(to_hex(bytes), "000fa0ff");
  EXPECT_TRUE(is_sha256_hex(sha256_hex("x")));
  EXPECT_FALSE(is_sha256_hex("abc"));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'G')));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'A')));  // ids are lowercase
}

}  // namespace
}  // namespace kiln
