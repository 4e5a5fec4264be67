// What the tests of worker/docker share: a private dockerd
// (tests/support/local_dockerd.h) loaded with kiln's busybox base image as
// kBusybox, a DockerClient for it, and tar streams made and read in memory.
//
//   class MyTest : public kiln::docker::testing::DockerFixture {};
//   TEST_F(MyTest, Runs) { auto id = client_->create_container({.image = kBusybox, ...}, ""); }
//
// Each test gets its own daemon (started in SetUp, removed with everything it
// made when the fixture goes). Needs root, docker.io, skopeo, busybox-static.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/local_dockerd.h"
#include "tests/support/temp_dir.h"
#include "worker/docker/docker_client.h"

namespace kiln::docker::testing {

inline constexpr const char* kBusybox = "kiln-test/busybox:latest";

// A tar of regular files (mode 0644), in memory.
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files);
// The regular files of a tar: path -> content.
std::map<std::string, std::string> read_tar(const std::string& tar);

class DockerFixture : public ::testing::Test {
 protected:
  void SetUp() override;

  kiln::testing::TempDir tmp_{"kiln-docker-test"};
  kiln::testing::LocalDockerd dockerd_;
  std::string image_dir_;  // the busybox OCI layout
  std::unique_ptr<DockerClient> client_;
};

}  // namespace kiln::docker::testing
