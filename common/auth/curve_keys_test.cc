#include "common/auth/curve_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <vector>

#include "tests/support/temp_dir.h"

namespace kiln::auth {
namespace {

using ::testing::HasSubstr;

void write_text(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

TEST(CurveKeys, WrittenKeysReadBackWithTheRightModes) {
  testing::TempDir dir;
  auto pair = generate_curve_key_pair();
  ASSERT_TRUE(pair) << pair.error().to_string();
  EXPECT_TRUE(is_curve_key(pair->public_z85));
  EXPECT_TRUE(is_curve_key(pair->secret_z85));
  EXPECT_NE(pair->public_z85, pair->secret_z85);
  const std::string keys = dir.path() + "/keys";
  ASSERT_TRUE(write_key_files(*pair, keys, "w1"));

  struct stat st {};
  ASSERT_EQ(::stat((keys + "/w1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((keys + "/w1.pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  ASSERT_EQ(::stat(keys.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  auto secret = read_secret_key_file(keys + "/w1.key");
  ASSERT_TRUE(secret) << secret.error().to_string();
  EXPECT_EQ(secret->public_z85, pair->public_z85);
  EXPECT_EQ(secret->secret_z85, pair->secret_z85);
  EXPECT_EQ(*read_public_key_file(keys + "/w1.pub"), pair->public_z85);
  // A .key file serves where a public key is wanted.
  EXPECT_EQ(*read_public_key_file(keys + "/w1.key"), pair->public_z85);
  // The public file does not hold the secret.
  std::ifstream pub(keys + "/w1.pub");
  std::string text((std::istreambuf_iterator<char>(pub)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(pair->secret_z85), std::string::npos);
}

TEST(CurveKeys, AnExistingKeyIsNeverOverwritten) {
  testing::TempDir dir;
  auto a = generate_curve_key_pair();
  auto b = generate_curve_key_pair();
  ASSERT_TRUE(write_key_files(*a, dir.path(), "alice"));
  auto again = write_key_files(*b, dir.path(), "alice");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(read_secret_key_file(dir.path() + "/alice.key")->secret_z85, a->secret_z85);
}

TEST(CurveKeys, BadNamesAndBadFilesAreRefusedWithTheReason) {
  testing::TempDir dir;
  auto pair = generate_curve_key_pair();
  for (const std::string& name : std::vector<std::string>{"", ".hidden", "a/b", "a b", std::string(65, 'x')}) {
    auto r = write_key_files(*pair, dir.path(), name);
    ASSERT_FALSE(r) << name;
    EXPECT_THAT(r.error().message(), HasSubstr("is not valid")) << name;
  }
  EXPECT_TRUE(is_valid_key_name("ci-runner_3.example"));

  const std::string loose = dir.path() + "/loose.key";
  write_text(loose, "public-key = \"" + pair->public_z85 + "\"\nsecret-key = \"" + pair->secret_z85 + "\"\n",
             0644);
  auto r = read_secret_key_file(loose);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(r.error().message(), HasSubstr("chmod 600 " + loose));

  const std::string mismatched = dir.path() + "/mismatched.key";
  auto other = generate_curve_key_pair();
  write_text(mismatched,
             "public-key = \"" + other->public_z85 + "\"\nsecret-key = \"" + pair->secret_z85 + "\"\n");
  r = read_secret_key_file(mismatched);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("does not belong"));

  const std::string garbage = dir.path() + "/garbage.pub";
  write_text(garbage, "public-key = \"not a key\"\n");
  auto g = read_public_key_file(garbage);
  ASSERT_FALSE(g);
  EXPECT_THAT(g.error().message(), HasSubstr("not a CurveZMQ key"));

  const std::string empty = dir.path() + "/empty.pub";
  write_text(empty, "# nothing\n");
  EXPECT_THAT(read_public_key_file(empty).error().message(), HasSubstr("has no public-key"));

  const std::string huge = dir.path() + "/huge.pub";
  write_text(huge, std::string(10000, '#'));
  EXPECT_THAT(read_public_key_file(huge).error().message(), HasSubstr("over 4 KiB"));

  EXPECT_EQ(read_public_key_file(dir.path() + "/missing.pub").error().kind(), ErrorKind::kNotFound);
}

}  // namespace
}  // namespace kiln::auth
