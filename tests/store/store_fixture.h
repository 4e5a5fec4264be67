// The store suites' fixture (tests/store): a store of one backend on a
// real filesystem of its kind (btrfs and xfs on loop devices, ext4
// directories for overlayfs and rsync) or, for the docker store, in a
// private dockerd with a busybox image loaded; and helpers to build results
// and read their files whatever the backend.
//
//   class MySuite : public StoreTest {};
//   TEST_P(MySuite, Something) { must_build(std::nullopt, "a", {{"f", "1"}}); ... }
//   INSTANTIATE_TEST_SUITE_P(Backends, MySuite, ::testing::Values(Backend{"btrfs", "btrfs", "btrfs"}),
//                            param_name);
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tests/store/store_test_util.h"
#include "tests/store/store_trees.h"
#include "tests/support/local_dockerd.h"
#include "worker/store/fs_util.h"
#include "worker/store/store.h"

namespace kiln::store::testing {

struct Backend {
  std::string name;        // test name suffix
  std::string kind;        // store string prefix
  std::string filesystem;  // what the fixture mounts
  RsyncMode rsync_mode = RsyncMode::kCopy;
};

// The docker store's PREFIX in the suite, and the image its builds from
// nothing start from (loaded into the test's private dockerd).
constexpr const char* kDockerPrefix = "kiln-test";
constexpr const char* kDockerScratch = "kiln-test/busybox:latest";

inline void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.name;
}

inline std::string param_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param.name;
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (docker()) {
      // The docker store: a private dockerd with the busybox image loaded;
      // the store's directory is HOME/docker-PREFIX.
      dockerd_ = std::make_unique<kiln::testing::LocalDockerd>();
      ASSERT_EQ(dockerd_->start_error(), "");
      home_ = TestFilesystems::get().fresh_dir(GetParam().filesystem);
      ASSERT_EQ(testing::load_scratch_image(*dockerd_, home_, kDockerScratch), "");
      root_ = home_ + "/docker-" + kDockerPrefix;
      trees_ = testing::docker_trees(dockerd_->host(), kDockerPrefix, kDockerScratch);
      ASSERT_TRUE(trees_);
    } else {
      root_ = TestFilesystems::get().fresh_dir(GetParam().filesystem) + "/store";
      trees_ = testing::directory_trees();
    }
    open();
  }
  void TearDown() override {
    store_.reset();
    trees_.reset();
    dockerd_.reset();
  }

  bool docker() const { return GetParam().kind == "docker"; }
  std::string spec() const {
    return docker() ? std::string("docker:") + kDockerPrefix : GetParam().kind + ":" + root_;
  }
  StoreOptions options() const {
    StoreOptions o;
    o.rsync_mode = GetParam().rsync_mode;
    o.open_mode = open_mode_;
    o.boot_id = boot_id_;
    o.sync_delay = sync_delay_;
    o.sync_at_close = sync_at_close_;
    if (docker()) {
      o.docker_host = dockerd_->host();
      o.home = home_;
    }
    return o;
  }
  void open() {
    store_.reset();
    auto store = open_store(spec(), options());
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
  }

  // Builds `id` from `base`, writing each file (path relative to rootfs ->
  // content; empty content deletes the path).
  Status build(const std::optional<std::string>& base, const std::string& id,
               const std::map<std::string, std::string>& files) {
    return store_->build(base, id, [&](const Workspace& ws) -> Status {
      KILN_RETURN_IF_ERROR(trees_->write(ws, files));
      write_file(ws.dir + "/log", "log of " + id + "\n");
      return {};
    });
  }
  void must_build(const std::optional<std::string>& base, const std::string& id,
                  const std::map<std::string, std::string>& files) {
    auto s = build(base, id, files);
    ASSERT_TRUE(s) << s.error().to_string();
  }

  std::string result_path(const std::string& id) {
    auto r = store_->result(id);
    EXPECT_TRUE(r) << r.error().to_string();
    EXPECT_TRUE(r && *r) << id << " has no result";
    return r && *r ? **r : std::string("/nonexistent");
  }
  std::optional<std::string> file_of(const std::string& id, const std::string& path) {
    return trees_->read(result_path(id), id, path);
  }
  bool exists_in(const std::string& id, const std::string& path) {
    return trees_->exists(result_path(id), id, path);
  }
  bool has_result(const std::string& id) {
    auto r = store_->result(id);
    EXPECT_TRUE(r) << r.error().to_string();
    return r && r->has_value();
  }
  // Removes result `id`'s directory behind the store's back (as a crash
  // or an operator might), the store being closed.
  void remove_result_directory(const std::string& id) {
    std::string dir = root_ + "/result/" + id;
    if (GetParam().kind == "btrfs") {
      ASSERT_TRUE(run_command({"btrfs", "-q", "subvolume", "delete", dir}));
    } else {
      std::filesystem::remove_all(dir);
    }
  }
  std::vector<std::string> entries(const std::string& sub) {
    auto names = list_dir(root_ + "/" + sub);
    EXPECT_TRUE(names) << names.error().to_string();
    return names ? *names : std::vector<std::string>{};
  }

  StoreOpenMode open_mode_ = StoreOpenMode::kReadWrite;   // how open() opens the store
  std::string boot_id_;                                   // "" = this machine's boot
  std::chrono::milliseconds sync_delay_{0};               // the background sync's delay
  bool sync_at_close_ = true;                             // false: closing plays a process that died
  std::unique_ptr<kiln::testing::LocalDockerd> dockerd_;  // docker only
  std::string home_;                                      // docker only
  std::string root_;
  std::unique_ptr<StoreTrees> trees_;
  std::unique_ptr<Store> store_;
};

}  // namespace kiln::store::testing
