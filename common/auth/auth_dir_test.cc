#include "common/auth/auth_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/auth/curve_keys.h"
#include "tests/support/temp_dir.h"

namespace kiln::auth {
namespace {

using ::testing::HasSubstr;

std::string add_key(const std::string& dir, const std::string& role_dir, const std::string& name) {
  auto pair = generate_curve_key_pair();
  EXPECT_TRUE(pair);
  std::filesystem::create_directories(dir + "/" + role_dir);
  std::ofstream(dir + "/" + role_dir + "/" + name + ".pub")
      << "public-key = \"" << pair->public_z85 << "\"\n";
  return pair->public_z85;
}

TEST(AuthDir, EachKeyHasTheRoleOfItsDirectoryAndTheNameOfItsFile) {
  testing::TempDir dir;
  const std::string alice = add_key(dir.path(), "clients", "alice");
  const std::string w1 = add_key(dir.path(), "workers", "w1");
  const std::string ops = add_key(dir.path(), "admins", "ops");
  auto table = load_auth_dir(dir.path());
  ASSERT_TRUE(table) << table.error().to_string();
  EXPECT_TRUE(table->problems.empty());
  ASSERT_EQ(table->by_key.size(), 3u);
  EXPECT_EQ(*table->find(alice), (Identity{.role = Role::kClient, .name = "alice"}));
  EXPECT_EQ(*table->find(w1), (Identity{.role = Role::kWorker, .name = "w1"}));
  EXPECT_EQ(*table->find(ops), (Identity{.role = Role::kAdmin, .name = "ops"}));
  EXPECT_EQ(table->find(std::string(40, 'x')), nullptr);
  EXPECT_EQ(table->key_of({.role = Role::kWorker, .name = "w1"}), w1);
  EXPECT_EQ(table->key_of({.role = Role::kClient, .name = "w1"}), std::nullopt);
}

TEST(AuthDir, WhatCannotBeUsedIsSkippedAndNamed) {
  testing::TempDir dir;
  const std::string shared = add_key(dir.path(), "clients", "bob");
  std::filesystem::create_directories(dir.path() + "/admins");
  std::ofstream(dir.path() + "/admins/bob-too.pub") << "public-key = \"" << shared << "\"\n";
  std::ofstream(dir.path() + "/clients/broken.pub") << "nonsense\n";
  std::ofstream(dir.path() + "/clients/notes.txt") << "ignored: not a .pub\n";
  add_key(dir.path(), "workers", "w2");
  auto table = load_auth_dir(dir.path());
  ASSERT_TRUE(table);
  // One key, two identities: refused as both.
  EXPECT_EQ(table->find(shared), nullptr);
  EXPECT_EQ(table->by_key.size(), 1u);
  std::string all;
  for (const auto& p : table->problems) all += p + "\n";
  EXPECT_THAT(all, HasSubstr("bob-too.pub: the same key is also client:bob"));
  EXPECT_THAT(all, HasSubstr("broken.pub"));
  EXPECT_EQ(table->problems.size(), 2u) << all;
}

TEST(AuthDir, AMissingDirectoryIsAnErrorAndMissingRolesAreEmpty) {
  testing::TempDir dir;
  auto missing = load_auth_dir(dir.path() + "/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  auto empty = load_auth_dir(dir.path());
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->by_key.empty());
}

TEST(AuthDir, UserIdsRoundTrip) {
  Identity who{.role = Role::kAdmin, .name = "ops"};
  EXPECT_EQ(who.user_id(), "admin:ops");
  EXPECT_EQ(Identity::from_user_id("admin:ops"), who);
  EXPECT_EQ(Identity::from_user_id("root:ops"), std::nullopt);
  EXPECT_EQ(Identity::from_user_id("nocolon"), std::nullopt);
}

}  // namespace
}  // namespace kiln::auth
