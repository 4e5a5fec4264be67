// The registry client's bearer-token flow, retries and resumption against a
// registry scripted in the test (cpp-httplib): 401 with a WWW-Authenticate
// challenge, a token service that wants basic auth, 503 answers and a blob
// cut off mid-transfer. docker-registry itself (registry_fetcher_test.cc)
// speaks only basic auth without a separate token server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
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
          // Dribbled: 1 KiB every 50 ms, about 15 s for the big layer.
          bool dribble = dribble_ && data->size() > 100000;
          res.set_content_provider(
              data->size(), "application/octet-stream",
              [this, data, cut, dribble](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                if (cut && offset >= data->size() / 2) return false;  // drop the connection
                std::size_t n = std::min<std::size_t>(dribble ? 1024 : 16384, data->size() - offset);
                if (dribble) {
                  std::this_thread::sleep_for(std::chrono::milliseconds(50));
                  dribbled_ += n;
                }
                return sink.write(data->data() + offset, n);
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

  Result<ImageConfig> pull(const std::string& reference, CancelToken* cancel = nullptr) {
    std::filesystem::remove_all(rootfs_);
    std::filesystem::create_directories(rootfs_);
    return make_fetcher(options_)->fetch(
        [this](ProgressKind, std::string_view l) { progress_lines_.emplace_back(l); }, rootfs_, reference,
        {.cancel = cancel});
  }

  // The digest of layer `i` of the image (0-based).
  std::string manifest_layer_digest(std::size_t i) {
    std::string digest = manifest_["digest"].get<std::string>();
    auto manifest = nlohmann::json::parse(testing::read_file(layout_ + "/blobs/sha256/" + digest.substr(7)));
    return manifest["layers"][i]["digest"].get<std::string>();
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
  std::atomic<bool> dribble_{false};
  std::atomic<std::size_t> dribbled_{0};
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

TEST_F(ScriptedRegistryTest, CancellingStopsADownloadInTheMiddleAndCachesNothingOfIt) {
  testing::write_file(options_.docker_config, R"({"auths": {")" + host_ + R"(": {"auth": ")" +
                                                  base64_encode("kiln:s3cret") + R"("}}})");
  dribble_ = true;
  CancelToken cancel;
  std::thread canceller([&] {
    // Once the big layer is on its way (a few KiB of its ~300 KiB).
    while (dribbled_.load() < 4096) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.cancel();
  });
  auto start = std::chrono::steady_clock::now();
  auto r = pull(host_ + "/team/a:1", &cancel);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCancelled) << r.error().to_string();
  // Stopped within the download, not after it: most of the layer was never sent.
  const std::string big = manifest_layer_digest(1);
  const std::size_t size = std::filesystem::file_size(layout_ + "/blobs/sha256/" + big.substr(7));
  EXPECT_LT(dribbled_.load(), size / 2);
  EXPECT_FALSE(std::filesystem::exists(tmp_ + "/cache/blobs/sha256/" + big.substr(7)));
  EXPECT_TRUE(std::filesystem::is_empty(tmp_ + "/cache/tmp"));
  EXPECT_FALSE(std::filesystem::exists(rootfs_ + "/b.txt"));
  // For information only (no timing assertion): how long the cancel took.
  std::cout << fmt::format("cancelled after {:.2f} s, {} of {} bytes of the layer sent\n", took.count(),
                           dribbled_.load(), size);

  // Nothing half-done stays in the way: the next pull completes.
  dribble_ = false;
  auto again = pull(host_ + "/team/a:1");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/b.txt"), noise(300000));
}

}  // namespace
}  // namespace kiln::fetcher
