#include "worker/fetcher/internal/registry_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "common/fs.h"
#include "tests/support/temp_dir.h"

namespace kiln::fetcher::internal {
namespace {

using ::testing::HasSubstr;

TEST(WwwAuthenticate, ParsesBearerChallenges) {
  auto c = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c->params["service"], "registry.docker.io");
  EXPECT_EQ(c->params["scope"], "repository:library/busybox:pull");
}

TEST(WwwAuthenticate, ParsesBasicAndSpacesAndEscapes) {
  auto c = parse_www_authenticate(R"(Basic realm="Registry \"Realm\"" , Charset=UTF-8)");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params["realm"], "Registry \"Realm\"");
  EXPECT_EQ(c->params["charset"], "UTF-8");
  EXPECT_FALSE(parse_www_authenticate(""));
  EXPECT_FALSE(parse_www_authenticate(R"(Bearer realm="unterminated)"));
}

class DockerConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& json) {
    std::string path = dir_.path() + "/config.json";
    EXPECT_TRUE(write_file(path, json));
    return path;
  }
  kiln::testing::TempDir dir_;
};

TEST_F(DockerConfigTest, ReadsBase64AuthByHost) {
  std::string path = write(R"({"auths": {
      "registry.corp.example:5000": {"auth": "dXNlcjpzZWNyZXQ="},
      "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
      "http://plain.example": {"username": "u2", "password": "p2"}}})");
  auto corp = docker_config_credentials(path, "registry.corp.example:5000");
  ASSERT_TRUE(corp && *corp);
  EXPECT_EQ((*corp)->username, "user");
  EXPECT_EQ((*corp)->password, "secret");
  auto hub = docker_config_credentials(path, "docker.io");
  ASSERT_TRUE(hub && *hub);
  EXPECT_EQ((*hub)->username, "hub");
  EXPECT_EQ((*hub)->password, "hubpass");
  auto plain = docker_config_credentials(path, "plain.example");
  ASSERT_TRUE(plain && *plain);
  EXPECT_EQ((*plain)->username, "u2");
  auto none = docker_config_credentials(path, "ghcr.io");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_F(DockerConfigTest, MissingFileMeansNoCredentialsAndBadFilesAreNamed) {
  auto missing = docker_config_credentials(dir_.path() + "/nope.json", "ghcr.io");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
  std::string path = write("{not json");
  auto bad = docker_config_credentials(path, "ghcr.io");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message(), HasSubstr(path));
  path = write(R"({"auths": {"ghcr.io": {"auth": "bm9jb2xvbg=="}}})");  // "nocolon"
  auto no_colon = docker_config_credentials(path, "ghcr.io");
  ASSERT_FALSE(no_colon);
  EXPECT_THAT(no_colon.error().message(), HasSubstr("USER:PASSWORD"));
}

TEST_F(DockerConfigTest, PathFollowsDockerConfigThenHome) {
  EXPECT_EQ(docker_config_path("/x/c.json"), "/x/c.json");
  ::setenv("DOCKER_CONFIG", "/etc/dc", 1);
  EXPECT_EQ(docker_config_path(""), "/etc/dc/config.json");
  ::unsetenv("DOCKER_CONFIG");
  const char* old_home = std::getenv("HOME");
  std::string saved = old_home != nullptr ? old_home : "";
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(docker_config_path(""), "/home/u/.docker/config.json");
  if (old_home != nullptr) ::setenv("HOME", saved.c_str(), 1);
}

}  // namespace
}  // namespace kiln::fetcher::internal
