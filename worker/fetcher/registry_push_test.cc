// The pushing half of the registry client against a registry scripted in the
// test (cpp-httplib) that wants a bearer token with scope
// repository:REPO:push,pull from a token service taking basic auth:
// HEAD, an upload (POST then PUT ?digest=), a manifest PUT, and the refusal
// of a token for a pull-only login. docker-registry itself is pushed to in
// tests/builder/push_e2e_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "common/sha256.h"
#include "worker/fetcher/internal/registry_auth.h"
#include "worker/fetcher/internal/registry_client.h"
#include "worker/fetcher/testing/fixture.h"

namespace kiln::fetcher {
namespace {

using internal::RegistryClient;
using ::testing::HasSubstr;

class ScriptedPushTest : public testing::FetcherTest {
 protected:
  void SetUp() override {
    FetcherTest::SetUp();
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    host_ = "127.0.0.1:" + std::to_string(port_);
    server_.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      scopes_.push_back(req.get_param_value("scope"));
      if (req.get_header_value("Authorization") != "Basic " + kiln::base64_encode("kiln:s3cret")) {
        res.status = 401;
        return;
      }
      res.set_content(R"({"token": "tok-)" + req.get_param_value("scope") + R"("})", "application/json");
    });
    auto authorized = [this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") == "Bearer tok-repository:team/app:push,pull") return true;
      res.status = 401;
      res.set_header("WWW-Authenticate",
                     "Bearer realm=\"http://" + host_ +
                         "/token\",service=\"scripted\",scope=\"repository:team/app:push,pull\"");
      return false;
    };
    server_.Get(R"(/v2/team/app/blobs/(.+))",
                [this, authorized](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mutex_);
                  if (!authorized(req, res)) return;
                  res.status = blobs_.contains(req.matches[1]) ? 200 : 404;
                });
    server_.Post("/v2/team/app/blobs/uploads/",
                 [this, authorized](const httplib::Request& req, httplib::Response& res) {
                   std::lock_guard lock(mutex_);
                   if (!authorized(req, res)) return;
                   res.status = 202;
                   res.set_header("Location", "/upload/1?state=x");
                 });
    server_.Put("/upload/1", [this, authorized](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      if (!authorized(req, res)) return;
      std::string digest = req.get_param_value("digest");
      if (req.get_param_value("state") != "x" || "sha256:" + sha256_hex(req.body) != digest) {
        res.status = 400;
        return;
      }
      blobs_[digest] = req.body;
      res.status = 201;
    });
    server_.Put("/v2/team/app/manifests/1",
                [this, authorized](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mutex_);
                  if (!authorized(req, res)) return;
                  manifest_type_ = req.get_header_value("Content-Type");
                  res.set_header("Docker-Content-Digest", "sha256:" + sha256_hex(req.body));
                  res.status = 201;
                });
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
    FetcherTest::TearDown();
  }

  std::unique_ptr<RegistryClient> client(const std::string& config) {
    internal::RegistryClientOptions options;
    options.insecure_registries = {host_};
    options.docker_config = new_dir("docker") + "/config.json";
    options.push = true;
    EXPECT_TRUE(write_file(options.docker_config, config));
    auto made = RegistryClient::create(options, host_, host_);
    EXPECT_TRUE(made) << made.error().to_string();
    return std::move(*made);
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string host_;
  std::mutex mutex_;
  std::vector<std::string> scopes_;
  std::map<std::string, std::string> blobs_;
  std::string manifest_type_;
};

TEST_F(ScriptedPushTest, UploadsWithABearerTokenForPushAndPull) {
  auto registry = client(R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                         kiln::base64_encode("kiln:s3cret") + R"("}}})");
  std::string blob = "layer bytes";
  std::string digest = "sha256:" + sha256_hex(blob);
  auto before = registry->blob_exists("team/app", digest);
  ASSERT_TRUE(before) << before.error().to_string();
  EXPECT_FALSE(*before);
  auto put = registry->put_blob("team/app", digest, internal::UploadBody{.file = "", .data = blob});
  ASSERT_TRUE(put) << put.error().to_string();
  EXPECT_TRUE(registry->blob_exists("team/app", digest).value());
  auto manifest = registry->put_manifest("team/app", "1", "application/vnd.oci.image.manifest.v1+json", "{}");
  ASSERT_TRUE(manifest) << manifest.error().to_string();
  EXPECT_EQ(*manifest, "sha256:" + sha256_hex("{}"));
  std::lock_guard lock(mutex_);
  EXPECT_EQ(blobs_[digest], blob);
  EXPECT_EQ(manifest_type_, "application/vnd.oci.image.manifest.v1+json");
  ASSERT_FALSE(scopes_.empty());
  EXPECT_EQ(scopes_.front(), "repository:team/app:push,pull");  // one token, reused
  EXPECT_EQ(scopes_.size(), 1u);
}

TEST_F(ScriptedPushTest, RefusedCredentialsNameTheRegistryAndThePushScope) {
  auto registry = client(R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                         kiln::base64_encode("kiln:wrong") + R"("}}})");
  auto put = registry->put_blob("team/app", "sha256:" + sha256_hex("x"),
                                internal::UploadBody{.file = "", .data = "x"});
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(put.error().message(), HasSubstr("refused repository:team/app:push,pull"));
  EXPECT_THAT(put.error().message(), HasSubstr(host_));
}

}  // namespace
}  // namespace kiln::fetcher
