// The registry client's bearer-token flow, retries and resumption against a
// registry scripted in the test (cpp-httplib): 401 with a WWW-Authenticate
// challenge, a token service that wants basic auth, 503 answers and a blob
// cut off mid-transfer. docker-registry itself (registry_fetcher_test.cc)
// speaks only basic auth without a separate token server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/registry_auth.h"
#include "worker/fetcher/testing/fixture.h"
#include "worker/fetcher/testing/image_writer.h"

namespace kiln::fetcher {
namespace {

using internal::Compression;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::LayerBuilder;

// Incompressible bytes, so that the layer's blob is large enough to cut.
std::string noise(std::size_t n) {
  std::string out(n, '\0');
  std::uint32_t x = 12345;
  for (char& c : out) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

class ScriptedRegistryTest : public testing::FetcherTest {
 protected:
  void SetUp() override {
    FetcherTest::SetUp();
    testing::OciLayoutWriter layout(new_dir("layout"));
    manifest_ =
        layout.add_image({make_layer(LayerBuilder().file("a.txt", "image a\n"), Compression::kGzip),
                          make_layer(LayerBuilder().file("b.txt", noise(300000)), Compression::kGzip)},
                         testing::config_with_env({"IMAGE=a"}));
    layout_ = layout.dir();
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    host_ = "127.0.0.1:" + std::to_string(port_);
    server_.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      ++token_requests_;
      token_query_ = "scope=" + req.get_param_value("scope") + " service=" + req.get_param_value("service");
      if (req.get_header_value("Authorization") != "Basic " + base64_encode("kiln:s3cret")) {
        res.status = 401;
        return;
      }
      res.set_content(R"({"token": "tok-)" + req.get_param_value("scope") + R"("})", "application/json");
    });
    server_.Get(
        R"(/v2/team/a/(manifests|blobs)/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
          std::lock_guard lock(mutex_);
          if (req.get_header_value("Authorization") != "Bearer tok-repository:team/a:pull") {
            res.status = 401;
            res.set_header("WWW-Authenticate",
                           "Bearer realm=\"http://" + host_ +
                               "/token\",service=\"scripted\",scope=\"repository:team/a:pull\"");
            return;
          }
          std::string kind = req.matches[1];
          std::string name = req.matches[2];
          if (kind == "manifests") {
            std::string digest = manifest_["digest"].get<std::string>();
            if (name != "1" && name != digest) {
              res.status = 404;
              return;
            }
            res.set_header("Docker-Content-Digest", digest);
            res.set_content(testing::read_file(layout_ + "/blobs/sha256/" + digest.substr(7)),
                            "application/vnd.oci.image.manifest.v1+json");
            return;
          }
          if (unavailable_left_ > 0) {
            --unavailable_left_;
            res.status = 503;
            return;
          }
          std::string path = layout_ + "/blobs/sha256/" + name.substr(7);
          if (!std::filesystem::exists(path)) {
            res.status = 404;
            return;
          }
          auto data = std::make_shared<std::string>(testing::read_file(path));
          bool cut = cut_left_ > 0 && data->size() > 100000;
          if (cut) --cut_left_;
          res.set_content_provider(data->size(), "application/octet-stream",
                                   [data, cut](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                     if (cut && offset >= data->size() / 2)
                                       return false;  // drop the connection
                                     std::size_t n = std::min<std::size_t>(16384, data->size() - offset);
                                     sink.write(data->data() + offset, n);
                                     return true;
                                   });
        });
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    options_.cache_dir = tmp_ + "/cache";
    options_.insecure_registries = {host_};
    options_.docker_config = tmp_ + "/docker-config.json";
  }
  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
    FetcherTest::TearDown();
  }

  Result<ImageConfig> pull(const std::string& reference) {
    std::filesystem::remove_all(rootfs_);
    std::filesystem::create_directories(rootfs_);
    return make_fetcher(options_)->fetch(
        [this](ProgressKind, std::string_view l) { progress_lines_.emplace_back(l); }, rootfs_, reference,
        {});
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string host_;
  std::string layout_;
  nlohmann::json manifest_;
  RegistryOptions options_;
  std::mutex mutex_;
  int token_requests_ = 0;
  std::string token_query_;
  int unavailable_left_ = 0;
  int cut_left_ = 0;
};

TEST_F(ScriptedRegistryTest, BearerTokenFromTheRealmWithTheUsersCredentials) {
  auto anonymous = pull(host_ + "/team/a:1");
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(anonymous.error().message(), AllOf(HasSubstr("registry " + host_),
                                                 HasSubstr("repository:team/a:pull"), HasSubstr("/token")));

  testing::write_file(options_.docker_config, R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                                                  base64_encode("kiln:s3cret") + R"("}}})");
  token_requests_ = 0;
  auto r = pull(host_ + "/team/a:1");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
  std::lock_guard lock(mutex_);
  EXPECT_EQ(token_query_, "scope=repository:team/a:pull service=scripted");
  EXPECT_EQ(token_requests_, 1);  // one token for the manifest, the config and both layers
}

TEST_F(ScriptedRegistryTest, UnavailableAnswersAndACutTransferAreRetried) {
  testing::write_file(options_.docker_config, R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                                                  base64_encode("kiln:s3cret") + R"("}}})");
  unavailable_left_ = 2;
  cut_left_ = 1;
  auto r = pull(host_ + "/team/a:1");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/b.txt"), noise(300000));
  std::lock_guard lock(mutex_);
  EXPECT_EQ(unavailable_left_, 0);
  EXPECT_EQ(cut_left_, 0);
}

TEST_F(ScriptedRegistryTest, ARegistryThatStaysUnavailableIsReported) {
  testing::write_file(options_.docker_config, R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                                                  base64_encode("kiln:s3cret") + R"("}}})");
  unavailable_left_ = 100;
  auto r = pull(host_ + "/team/a:1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("HTTP 503"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp_ + "/cache/tmp"));
}

}  // namespace
}  // namespace kiln::fetcher
