#include "worker/fetcher/registry_reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::fetcher {
namespace {

using ::testing::HasSubstr;

constexpr const char* kDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Expected {
  const char* text;
  const char* registry;
  const char* api_host;
  const char* repository;
  const char* tag;
  const char* digest;
};

TEST(RegistryReference, FollowsDockersConventions) {
  std::string with_digest = std::string("alpine@") + kDigest;
  std::string tag_and_digest = std::string("ghcr.io/org/tool:v1@") + kDigest;
  for (const Expected& e : {
           Expected{"busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", ""},
           Expected{"alpine:3.19", "docker.io", "registry-1.docker.io", "library/alpine", "3.19", ""},
           Expected{"ocaml/opam:debian-12", "docker.io", "registry-1.docker.io", "ocaml/opam", "debian-12",
                    ""},
           Expected{"docker.io/ocaml/opam", "docker.io", "registry-1.docker.io", "ocaml/opam", "latest", ""},
           Expected{"index.docker.io/library/debian:12", "docker.io", "registry-1.docker.io",
                    "library/debian", "12", ""},
           Expected{"docker.io/alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest", ""},
           Expected{"registry.corp.example:5000/team/base:2024", "registry.corp.example:5000",
                    "registry.corp.example:5000", "team/base", "2024", ""},
           Expected{"127.0.0.1:5000/team/busybox:1", "127.0.0.1:5000", "127.0.0.1:5000", "team/busybox", "1",
                    ""},
           Expected{"localhost/x", "localhost", "localhost", "x", "latest", ""},
           Expected{"localhost:5000/a/b/c", "localhost:5000", "localhost:5000", "a/b/c", "latest", ""},
           Expected{"quay.io/some_org/my-image.v2__x:tag_1.0-rc", "quay.io", "quay.io",
                    "some_org/my-image.v2__x", "tag_1.0-rc", ""},
           Expected{with_digest.c_str(), "docker.io", "registry-1.docker.io", "library/alpine", "", kDigest},
           Expected{tag_and_digest.c_str(), "ghcr.io", "ghcr.io", "org/tool", "v1", kDigest},
       }) {
    auto r = parse_registry_reference(e.text);
    ASSERT_TRUE(r) << e.text << ": " << r.error().to_string();
    EXPECT_EQ(r->registry, e.registry) << e.text;
    EXPECT_EQ(r->api_host(), e.api_host) << e.text;
    EXPECT_EQ(r->repository, e.repository) << e.text;
    EXPECT_EQ(r->tag, e.tag) << e.text;
    EXPECT_EQ(r->digest, e.digest) << e.text;
  }
}

TEST(RegistryReference, AsksForTheDigestWhenThereIsOne) {
  auto by_tag = parse_registry_reference("alpine:3.19");
  ASSERT_TRUE(by_tag);
  EXPECT_EQ(by_tag->manifest_reference(), "3.19");
  auto both = parse_registry_reference(std::string("alpine:3.19@") + kDigest);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->manifest_reference(), kDigest);
  EXPECT_TRUE(both->tag_given);
}

TEST(RegistryReference, CanonicalForm) {
  EXPECT_EQ(to_string(*parse_registry_reference("busybox")), "docker.io/library/busybox:latest");
  EXPECT_EQ(to_string(*parse_registry_reference(std::string("busybox@") + kDigest)),
            std::string("docker.io/library/busybox@") + kDigest);
  EXPECT_EQ(to_string(*parse_registry_reference("127.0.0.1:5000/team/busybox:1")),
            "127.0.0.1:5000/team/busybox:1");
  // The canonical form parses to itself.
  for (const char* text : {"busybox", "ocaml/opam:debian-12", "127.0.0.1:5000/a/b:c"}) {
    std::string canonical = to_string(*parse_registry_reference(text));
    EXPECT_EQ(to_string(*parse_registry_reference(canonical)), canonical);
  }
}

TEST(RegistryReference, RefusesMalformedReferencesNamingThem) {
  for (const char* bad : {"", "Busybox", "team/Base", "alpine:", "alpine:-x", "a//b", "/abs", "x/", "a..b",
                          "host:99999/x", "alpine@sha256:abc", "alpine@nodigest", "-lead", "a/b:c:d"}) {
    auto r = parse_registry_reference(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument) << bad;
    EXPECT_THAT(r.error().message(), HasSubstr("\"" + std::string(bad) + "\"")) << bad;
  }
  auto upper = parse_registry_reference("Team/base");
  ASSERT_FALSE(upper);
  EXPECT_THAT(upper.error().message(), HasSubstr("lowercase"));
}

TEST(RegistryReference, OtherDigestAlgorithmsAreUnsupported) {
  auto r = parse_registry_reference("alpine@sha512:abcd");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnsupported);
}

TEST(RegistryReference, RepositoryNameLengthIsBounded) {
  std::string long_name(256, 'a');
  EXPECT_FALSE(parse_registry_reference(long_name));
  EXPECT_TRUE(parse_registry_reference(std::string(200, 'a')));
  // A bare docker.io name is bounded with its library/ prefix, so that the
  // reference printed in full parses again (found by the image_manifest fuzz).
  EXPECT_TRUE(parse_registry_reference(std::string(247, 'a')));
  auto bare = parse_registry_reference(std::string(250, 'a'));
  ASSERT_FALSE(bare);
  EXPECT_THAT(bare.error().message(), HasSubstr("with its library/ prefix"));
  auto full = parse_registry_reference("docker.io/library/" + std::string(247, 'a'));
  ASSERT_TRUE(full);
  EXPECT_TRUE(parse_registry_reference(to_string(*full)));
}

}  // namespace
}  // namespace kiln::fetcher
