// The registry fetcher against a real registry: `docker-registry` started on
// 127.0.0.1 by each test (tests/support/local_registry.h), images crafted as
// OCI layouts here and pushed with skopeo.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/sha256.h"
#include "tests/support/local_registry.h"
#include "tests/support/process.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/testing/fixture.h"
#include "worker/fetcher/testing/image_writer.h"

namespace kiln::fetcher {
namespace {

using internal::Compression;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::Layer;
using testing::LayerBuilder;

class RegistryFetcherTest : public testing::FetcherTest {
 protected:
  void SetUp() override {
    FetcherTest::SetUp();
    registry_.emplace(new_dir("registry"));
    shared_ =
        make_layer(LayerBuilder().dir("etc").file("etc/shared.txt", "in both images\n"), Compression::kGzip);
    testing::OciLayoutWriter layout(new_dir("layout"));
    image_a_ =
        layout.add_image({shared_, make_layer(LayerBuilder().file("a.txt", "image a\n"), Compression::kZstd)},
                         testing::config_with_env({"PATH=/bin", "IMAGE=a"}));
    image_b_ =
        layout.add_image({shared_, make_layer(LayerBuilder().file("b.txt", "image b\n"), Compression::kGzip)},
                         testing::config_with_env({"IMAGE=b"}));
    layout.write_index({{image_a_, "a"}, {image_b_, "b"}});
    layout_ = layout.dir();
    ASSERT_EQ(registry_->push("oci:" + layout_ + ":a", "team/a:1"), "");
    options_.cache_dir = tmp_ + "/cache";
    options_.insecure_registries = {registry_->host()};
  }

  Result<ImageConfig> pull(const std::string& reference) {
    std::filesystem::remove_all(rootfs_);
    std::filesystem::create_directories(rootfs_);
    progress_lines_.clear();
    auto fetcher = make_fetcher(options_);
    return fetcher->fetch([this](ProgressKind, std::string_view line) { progress_lines_.emplace_back(line); },
                          rootfs_, reference, {});
  }

  std::string progress() const {
    std::string out;
    for (const auto& line : progress_lines_) out += line + "\n";
    return out;
  }

  std::vector<std::string> cache_temporaries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(options_.cache_dir + "/tmp"))
      out.push_back(e.path());
    return out;
  }

  std::optional<kiln::testing::LocalRegistry> registry_;
  RegistryOptions options_;
  Layer shared_;
  nlohmann::json image_a_;
  nlohmann::json image_b_;
  std::string layout_;
};

TEST_F(RegistryFetcherTest, PullsAnImageWithGzipAndZstdLayers) {
  std::string ref = registry_->host() + "/team/a:1";
  auto config = pull(ref);
  ASSERT_TRUE(config) << config.error().to_string() << "\n" << progress();
  EXPECT_EQ(testing::read_file(rootfs_ + "/etc/shared.txt"), "in both images\n");
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(config->env, (Env{{"PATH", "/bin"}, {"IMAGE", "a"}}));
  EXPECT_EQ(config->manifest_digest, image_a_["digest"].get<std::string>());
  EXPECT_EQ(config->resolved, registry_->host() + "/team/a@" + image_a_["digest"].get<std::string>());
  EXPECT_THAT(progress(), HasSubstr("pulled layer 1/2 sha256:"));
  EXPECT_THAT(progress(), HasSubstr("pulled layer 2/2 sha256:"));
  EXPECT_THAT(progress(), HasSubstr("/s)"));  // the rate
  EXPECT_TRUE(std::filesystem::exists(options_.cache_dir + "/blobs/sha256/" +
                                      testing::sha256_digest(shared_.blob).substr(7)));
  EXPECT_THAT(cache_temporaries(), IsEmpty());
}

TEST_F(RegistryFetcherTest, ALayerSharedByTwoImagesIsDownloadedOnce) {
  ASSERT_EQ(registry_->push("oci:" + layout_ + ":b", "team/b:2"), "");
  std::string shared_digest = testing::sha256_digest(shared_.blob);
  ASSERT_TRUE(pull(registry_->host() + "/team/a:1"));
  auto b = pull(registry_->host() + "/team/b:2");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/b.txt"), "image b\n");
  EXPECT_EQ(testing::read_file(rootfs_ + "/etc/shared.txt"), "in both images\n");
  EXPECT_THAT(progress(), HasSubstr("layer 1/2 " + shared_digest.substr(0, 19) + "… is cached"));
  EXPECT_EQ(registry_->blob_gets("team/a", shared_digest), 1) << registry_->log();
  EXPECT_EQ(registry_->blob_gets("team/b", shared_digest), 0);
  // Pulling a again asks for the tag only when told to, and downloads nothing.
  ASSERT_TRUE(pull(registry_->host() + "/team/a:1"));
  EXPECT_THAT(progress(), HasSubstr("resolved earlier to"));
  options_.pull = PullPolicy::kAlways;
  ASSERT_TRUE(pull(registry_->host() + "/team/a:1"));
  EXPECT_THAT(progress(), HasSubstr("resolving"));
  EXPECT_EQ(registry_->blob_gets("team/a", shared_digest), 1);
}

// A builder resolves a (from) reference first (to reuse an image unpacked
// before) and fetches it next: with --pull always the fetch takes the tag
// as that resolve() just recorded it instead of asking the registry again,
// unless it is told another resolution than the cache holds.
TEST_F(RegistryFetcherTest, AFetchRightAfterAResolveAsksForTheTagOnce) {
  options_.pull = PullPolicy::kAlways;
  const std::string ref = registry_->host() + "/team/a:1";
  auto fetcher = make_fetcher(options_);
  auto record = [this](ProgressKind, std::string_view line) { progress_lines_.emplace_back(line); };
  auto resolved = fetcher->resolve(record, ref, {});
  ASSERT_TRUE(resolved && *resolved) << (resolved ? "nothing resolved" : resolved.error().to_string());
  EXPECT_EQ(registry_->manifest_gets("team/a", "1"), 1) << registry_->log();
  std::filesystem::create_directories(rootfs_);
  auto config = fetcher->fetch(record, rootfs_, ref, {.resolved = (*resolved)->resolved});
  ASSERT_TRUE(config) << config.error().to_string();
  EXPECT_EQ(config->resolved, (*resolved)->resolved);
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
  EXPECT_EQ(registry_->manifest_gets("team/a", "1"), 1) << registry_->log();
  EXPECT_THAT(progress(), HasSubstr("(resolved just before)"));
  // Another resolution than the cache's record: asked again.
  ASSERT_TRUE(pull(ref));
  EXPECT_EQ(registry_->manifest_gets("team/a", "1"), 2) << registry_->log();
  std::filesystem::remove_all(rootfs_);
  std::filesystem::create_directories(rootfs_);
  ASSERT_TRUE(fetcher->fetch(record, rootfs_, ref, {.resolved = registry_->host() + "/team/a@sha256:0"}));
  EXPECT_EQ(registry_->manifest_gets("team/a", "1"), 3) << registry_->log();
}

TEST_F(RegistryFetcherTest, PullNeverUsesTheCacheOnlyAndWorksWithTheRegistryDown) {
  std::string ref = registry_->host() + "/team/a:1";
  options_.pull = PullPolicy::kNever;
  auto cold = pull(ref);
  ASSERT_FALSE(cold);
  EXPECT_EQ(cold.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(cold.error().message(), HasSubstr("--pull never"));
  options_.pull = PullPolicy::kMissing;
  ASSERT_TRUE(pull(ref));
  registry_->stop();
  options_.pull = PullPolicy::kNever;
  auto warm = pull(ref);
  ASSERT_TRUE(warm) << warm.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
  // By digest too, once its blobs are cached.
  auto by_digest = pull(registry_->host() + "/team/a@" + image_a_["digest"].get<std::string>());
  ASSERT_TRUE(by_digest) << by_digest.error().to_string();
}

TEST_F(RegistryFetcherTest, ADigestReferenceIsPulledExactly) {
  auto r = pull(registry_->host() + "/team/a@" + image_a_["digest"].get<std::string>());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
  std::string wrong = "sha256:" + std::string(64, '0');
  auto missing = pull(registry_->host() + "/team/a@" + wrong);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
}

TEST_F(RegistryFetcherTest, ACorruptBlobIsRefusedAndNothingIsCached) {
  std::string digest = testing::sha256_digest(shared_.blob);
  std::string data = testing::read_file(registry_->blob_file(digest));
  ASSERT_EQ(data, shared_.blob);
  data[data.size() / 2] ^= 0x55;
  testing::write_file(registry_->blob_file(digest), data);
  auto r = pull(registry_->host() + "/team/a:1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(r.error().to_string(), AllOf(HasSubstr(digest), HasSubstr("arrived with digest"),
                                           HasSubstr("not cached"), HasSubstr("layer 1/2")));
  EXPECT_FALSE(std::filesystem::exists(options_.cache_dir + "/blobs/sha256/" + digest.substr(7)));
  EXPECT_THAT(cache_temporaries(), IsEmpty());
  EXPECT_EQ(tree(rootfs_), "");  // nothing unpacked from a refused download
}

TEST_F(RegistryFetcherTest, UnknownTagRepositoryAndHostAreClearErrors) {
  auto tag = pull(registry_->host() + "/team/a:nope");
  ASSERT_FALSE(tag);
  EXPECT_EQ(tag.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(tag.error().message(),
              AllOf(HasSubstr("registry " + registry_->host()), HasSubstr("no manifest \"nope\""),
                    HasSubstr("team/a"), HasSubstr("MANIFEST_UNKNOWN")));
  auto repo = pull(registry_->host() + "/team/nothing:1");
  ASSERT_FALSE(repo);
  EXPECT_EQ(repo.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(repo.error().message(), HasSubstr("in repository team/nothing"));
  auto host = pull("no-such-host.invalid/team/a:1");
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(host.error().message(), AllOf(HasSubstr("no-such-host.invalid"), HasSubstr("unknown host")));
  EXPECT_EQ(tree(rootfs_), "");
}

TEST_F(RegistryFetcherTest, AStoppedRegistryIsRetriedThenReported) {
  registry_->stop();
  auto r = pull(registry_->host() + "/team/a:1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(r.error().message(), AllOf(HasSubstr(registry_->host()), HasSubstr("after 4 attempts")));
  registry_->start();
  auto again = pull(registry_->host() + "/team/a:1");
  ASSERT_TRUE(again) << again.error().to_string();
}

TEST_F(RegistryFetcherTest, PlainHttpOnlyForInsecureRegistries) {
  options_.insecure_registries.clear();
  auto r = pull(registry_->host() + "/team/a:1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(r.error().message(),
              AllOf(HasSubstr("TLS"), HasSubstr("--insecure-registry " + registry_->host())));
}

TEST_F(RegistryFetcherTest, AnIndexResolvesToThisMachinesPlatform) {
  std::string host_arch(internal::host_architecture());
  std::string other = host_arch == "s390x" ? "riscv64" : "s390x";
  testing::OciLayoutWriter layout(new_dir("multi"));
  auto mine = layout.add_image({make_layer(LayerBuilder().file("arch", host_arch), Compression::kGzip)},
                               testing::config_with_env({}));
  auto theirs = layout.add_image({make_layer(LayerBuilder().file("arch", other), Compression::kGzip)},
                                 testing::config_with_env({}));
  auto index = layout.add_index({{theirs, "linux/" + other}, {mine, "linux/" + host_arch}});
  auto foreign = layout.add_index({{theirs, "linux/" + other}});
  layout.write_index({{index, "multi"}, {foreign, "foreign"}});
  ASSERT_EQ(registry_->push("oci:" + layout.dir() + ":multi", "team/multi:1", "--all"), "");
  ASSERT_EQ(registry_->push("oci:" + layout.dir() + ":foreign", "team/multi:foreign", "--all"), "");
  auto r = pull(registry_->host() + "/team/multi:1");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/arch"), host_arch);
  EXPECT_EQ(r->manifest_digest, mine["digest"].get<std::string>());
  EXPECT_EQ(r->resolved, registry_->host() + "/team/multi@" + index["digest"].get<std::string>());
  EXPECT_THAT(progress(), HasSubstr("is an index: using its linux/" + host_arch));
  auto none = pull(registry_->host() + "/team/multi:foreign");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(none.error().message(), AllOf(HasSubstr("no linux/" + host_arch), HasSubstr("linux/" + other)));
}

// A CA and a certificate for 127.0.0.1 signed by it, made with openssl.
void make_certificates(const std::string& dir) {
  std::string script = "set -e; cd " + dir +
                       "; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-keyout ca.key -out ca.pem -days 2 -subj /CN=kiln-test-ca"
                       "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-keyout server.key -out server.csr -subj /CN=127.0.0.1"
                       "; printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
                       "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                       "-out server.pem -days 2 -extfile san.ext";
  auto r = kiln::testing::run_process({"/bin/sh", "-c", script});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(RegistryFetcherTest, BasicAuthOverTlsWithTheUsersCaAndDockerConfig) {
  std::string dir = new_dir("tls");
  make_certificates(dir);
  auto hash = kiln::testing::run_process(
      {"/usr/bin/python3", "-W", "ignore", "-c",
       "import crypt; print('kiln:' + crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))"});
  ASSERT_EQ(hash.exit_code, 0) << hash.err;
  testing::write_file(dir + "/htpasswd", hash.out);
  kiln::testing::LocalRegistry secure(new_dir("secure"), {.tls_certificate = dir + "/server.pem",
                                                          .tls_key = dir + "/server.key",
                                                          .htpasswd = dir + "/htpasswd"});
  ASSERT_EQ(secure.push("oci:" + layout_ + ":a", "team/a:1", "--dest-creds kiln:s3cret"), "");
  std::string ref = secure.host() + "/team/a:1";
  options_.insecure_registries.clear();
  options_.docker_config = dir + "/docker-config.json";

  auto untrusted = pull(ref);
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(untrusted.error().message(), AllOf(HasSubstr("TLS"), HasSubstr("--registry-ca")));

  options_.ca_file = dir + "/ca.pem";
  auto anonymous = pull(ref);
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(anonymous.error().message(),
              AllOf(HasSubstr("registry " + secure.host()), HasSubstr("repository:team/a:pull"),
                    HasSubstr("docker login")));

  testing::write_file(options_.docker_config, R"({"auths": {")" + secure.host() + R"(": {"auth": ")" +
                                                  "a2lsbjp3cm9uZw==" /* kiln:wrong */ + R"("}}})");
  auto wrong = pull(ref);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(wrong.error().message(), HasSubstr(options_.docker_config));

  testing::write_file(options_.docker_config, R"({"auths": {"https://)" + secure.host() + R"(": {"auth": ")" +
                                                  "a2lsbjpzM2NyZXQ=" /* kiln:s3cret */ + R"("}}})");
  auto ok = pull(ref);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(testing::read_file(rootfs_ + "/a.txt"), "image a\n");
}

}  // namespace
}  // namespace kiln::fetcher
