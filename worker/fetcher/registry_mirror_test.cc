// Registry mirrors against real registries: two `docker-registry` servers on
// 127.0.0.1, one the registry an image is named by, the other its mirror
// (tests/support/local_registry.h). The mirror is asked first; the registry
// when the mirror lacks the image, is down, or serves a wrong blob.
// (docker.io's mirror through `kiln build --registry-mirror`:
// tests/builder/registry_build_e2e_test.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/local_registry.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/registry_reference.h"
#include "worker/fetcher/testing/fixture.h"
#include "worker/fetcher/testing/image_writer.h"

namespace kiln::fetcher {
namespace {

using internal::Compression;
using ::testing::HasSubstr;
using testing::Layer;
using testing::LayerBuilder;
using ::testing::Not;

class RegistryMirrorTest : public testing::FetcherTest {
 protected:
  void SetUp() override {
    FetcherTest::SetUp();
    upstream_.emplace(new_dir("upstream"));
    mirror_.emplace(new_dir("mirror"));
    layer_ = make_layer(LayerBuilder().file("hello.txt", "from a layer\n"), Compression::kGzip);
    testing::OciLayoutWriter layout(new_dir("layout"));
    layout.write_index({{layout.add_image({layer_}, testing::config_with_env({"X=1"})), "1"}});
    layout_ = layout.dir();
    ASSERT_EQ(upstream_->push("oci:" + layout_ + ":1", "team/app:1"), "");
    options_.cache_dir = tmp_ + "/cache";
    // Only the registry is listed: the mirror's http:// URL is enough for it.
    options_.insecure_registries = {upstream_->host()};
    options_.mirrors[upstream_->host()] = {"http://" + mirror_->host()};
  }

  Result<ImageConfig> pull() {
    std::filesystem::remove_all(rootfs_);
    std::filesystem::create_directories(rootfs_);
    progress_lines_.clear();
    return make_fetcher(options_)->fetch(
        [this](ProgressKind, std::string_view line) { progress_lines_.emplace_back(line); }, rootfs_,
        upstream_->host() + "/team/app:1", {});
  }
  std::string progress() const {
    std::string out;
    for (const auto& line : progress_lines_) out += line + "\n";
    return out;
  }
  std::string layer_digest() const { return testing::sha256_digest(layer_.blob); }

  std::optional<kiln::testing::LocalRegistry> upstream_, mirror_;
  RegistryOptions options_;
  Layer layer_;
  std::string layout_;
};

TEST_F(RegistryMirrorTest, TheMirrorServesWhatItHolds) {
  ASSERT_EQ(mirror_->push("oci:" + layout_ + ":1", "team/app:1"), "");
  auto config = pull();
  ASSERT_TRUE(config) << config.error().to_string() << "\n" << progress();
  EXPECT_EQ(testing::read_file(rootfs_ + "/hello.txt"), "from a layer\n");
  EXPECT_THAT(progress(),
              HasSubstr("at http://" + mirror_->host() + " (mirror), then http://" + upstream_->host()));
  EXPECT_THAT(progress(), Not(HasSubstr("failed")));
  EXPECT_EQ(mirror_->blob_gets("team/app", layer_digest()), 1) << mirror_->log();
  EXPECT_EQ(upstream_->blob_gets("team/app", layer_digest()), 0) << upstream_->log();
  // What the tag resolved to is the registry's name, whoever served it.
  EXPECT_EQ(config->resolved.substr(0, config->resolved.find('@')), upstream_->host() + "/team/app");
}

TEST_F(RegistryMirrorTest, AnImageTheMirrorLacksComesFromTheRegistry) {
  auto config = pull();
  ASSERT_TRUE(config) << config.error().to_string() << "\n" << progress();
  EXPECT_EQ(testing::read_file(rootfs_ + "/hello.txt"), "from a layer\n");
  EXPECT_THAT(progress(), HasSubstr("mirror http://" + mirror_->host() + " failed manifest team/app:1"));
  EXPECT_THAT(progress(), HasSubstr("asking " + upstream_->host()));
  EXPECT_EQ(upstream_->blob_gets("team/app", layer_digest()), 1);
}

TEST_F(RegistryMirrorTest, AMirrorThatIsDownIsLeftForTheRegistry) {
  mirror_->stop();
  auto config = pull();
  ASSERT_TRUE(config) << config.error().to_string() << "\n" << progress();
  EXPECT_EQ(upstream_->blob_gets("team/app", layer_digest()), 1);
  // Unreachable once: not asked again by this pull (one failure line only).
  std::string text = progress();
  std::string failed = "mirror http://" + mirror_->host() + " failed";
  EXPECT_NE(text.find(failed), std::string::npos) << text;
  EXPECT_EQ(text.find(failed), text.rfind(failed)) << text;
}

TEST_F(RegistryMirrorTest, AWrongBlobFromTheMirrorIsRefusedAndTakenFromTheRegistry) {
  ASSERT_EQ(mirror_->push("oci:" + layout_ + ":1", "team/app:1"), "");
  std::string stored = mirror_->blob_file(layer_digest());
  std::string damaged = testing::read_file(stored);
  damaged[damaged.size() / 2] ^= 0x55;
  testing::write_file(stored, damaged);
  auto config = pull();
  ASSERT_TRUE(config) << config.error().to_string() << "\n" << progress();
  EXPECT_EQ(testing::read_file(rootfs_ + "/hello.txt"), "from a layer\n");
  EXPECT_THAT(progress(), HasSubstr("failed blob " + layer_digest()));
  EXPECT_EQ(upstream_->blob_gets("team/app", layer_digest()), 1);
}

TEST(RegistryMirrorUrl, HttpsOrHttpHostAndPortOnly) {
  auto https = parse_registry_mirror("https://mirror.example:5000/");
  ASSERT_TRUE(https);
  EXPECT_EQ(https->host, "mirror.example:5000");
  EXPECT_EQ(https->url, "https://mirror.example:5000");
  EXPECT_FALSE(https->plain_http);
  auto http = parse_registry_mirror("http://127.0.0.1:5001");
  ASSERT_TRUE(http);
  EXPECT_TRUE(http->plain_http);
  for (const char* bad : {"mirror.example", "ftp://m", "https://", "https://m/v2/", "https://m/path"}) {
    auto r = parse_registry_mirror(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_THAT(r.error().message(), HasSubstr("--registry-mirror")) << bad;
  }
}

}  // namespace
}  // namespace kiln::fetcher
