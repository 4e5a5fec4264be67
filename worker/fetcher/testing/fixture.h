// A GoogleTest fixture for fetcher tests: a private temporary directory, an
// OCI layout in it built from crafted layers, fresh empty rootfs directories,
// and a listing of a rootfs as text for exact comparisons.
//
//   TEST_F(FetcherTest, X) {
//     auto config = fetch_layers({make_layer(LayerBuilder().file("a", "1"), Compression::kGzip)});
//     ASSERT_TRUE(config) << config.error().to_string();
//     EXPECT_EQ(tree(rootfs_), "f a 1\n");
//   }
//
// Test-only. Not thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/testing/image_writer.h"

namespace kiln::fetcher::testing {

class FetcherTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A new empty directory under the fixture's temporary directory.
  std::string new_dir(const std::string& name);

  // Writes an OCI layout at tmp_/"image" with these layers tagged `latest`
  // and fetches it into rootfs_ (a fresh empty directory).
  Result<ImageConfig> fetch_layers(const std::vector<Layer>& layers,
                                   nlohmann::json config = config_with_env({}));

  // Fetches `reference` into rootfs_, collecting progress lines.
  Result<ImageConfig> fetch(const std::string& reference);

  // One line per object below `root`, sorted: "d PATH MODE", "f PATH CONTENT",
  // "l PATH -> TARGET" (mode only for directories, in octal).
  static std::string tree(const std::string& root);

  std::optional<kiln::testing::TempDir> temp_;
  std::string tmp_;  // temp_'s path
  std::string rootfs_;
  std::vector<std::string> progress_lines_;
  std::vector<ProgressKind> progress_kinds_;  // of each line in progress_lines_
};

}  // namespace kiln::fetcher::testing
