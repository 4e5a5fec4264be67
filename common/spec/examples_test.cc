// The specs under examples/ parse and are already in canonical form, and the
// context they copy from is there (with the script's executable bit).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/spec/spec.h"

namespace kiln::spec {
namespace {

std::string examples_dir() {
  const char* source = std::getenv("KILN_SOURCE_DIR");
  EXPECT_NE(source, nullptr) << "KILN_SOURCE_DIR is set by ctest; run the test through ctest";
  return source ? std::string(source) + "/examples" : "examples";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class ExampleSpec : public ::testing::TestWithParam<const char*> {};

TEST_P(ExampleSpec, IsCanonical) {
  std::string path = examples_dir() + "/" + GetParam();
  std::string text = read_file(path);
  auto spec = parse_spec(text, path);
  ASSERT_TRUE(spec.has_value()) << spec.error().to_string();
  EXPECT_EQ(print_spec(*spec), text) << path << " is not in canonical form";
  EXPECT_EQ(spec->from, "busybox");
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleSpec,
                         ::testing::Values("hello.spec", "multistage.spec", "cache-and-secrets.spec"));

TEST(Examples, EverySpecFileIsCovered) {
  int specs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples_dir())) {
    if (entry.path().extension() == ".spec") ++specs;
  }
  EXPECT_EQ(specs, 3) << "add new examples to the ExampleSpec list";
}

TEST(Examples, MultistageCopiesFromItsBuildStage) {
  auto spec = load_spec_file(examples_dir() + "/multistage.spec");
  ASSERT_TRUE(spec.has_value()) << spec.error().to_string();
  ASSERT_EQ(spec->child_builds.size(), 1u);
  bool copies_from_stage = false;
  for (const Op& op : spec->ops) {
    if (const auto* copy = std::get_if<Copy>(&op.kind))
      copies_from_stage |= copy->from_build == spec->child_builds[0].name;
  }
  EXPECT_TRUE(copies_from_stage);
}

TEST(Examples, CacheAndSecretsUsesBoth) {
  auto spec = load_spec_file(examples_dir() + "/cache-and-secrets.spec");
  ASSERT_TRUE(spec.has_value()) << spec.error().to_string();
  bool cache = false, secret = false;
  for (const Op& op : spec->ops) {
    if (const auto* run = std::get_if<spec::Run>(&op.kind)) {
      cache |= !run->caches.empty();
      secret |= !run->secrets.empty();
    }
  }
  EXPECT_TRUE(cache);
  EXPECT_TRUE(secret);
}

TEST(Examples, ContextHasTheCopiedFiles) {
  std::string context = examples_dir() + "/context";
  struct stat st {};
  ASSERT_EQ(::stat((context + "/scripts/hello.sh").c_str(), &st), 0);
  EXPECT_NE(st.st_mode & S_IXUSR, 0u) << "hello.sh must keep its executable bit";
  EXPECT_TRUE(std::filesystem::is_regular_file(context + "/greeting.txt"));
  EXPECT_TRUE(std::filesystem::is_regular_file(context + "/nested/deeper/words.txt"));
}

}  // namespace
}  // namespace kiln::spec
