// StepCgroup's removal against the host's real cgroup hierarchies (needs
// root): an empty step cgroup goes at once; one that still holds a process,
// or a cgroup the step made below its container's, takes the long way
// (kill, wait, remove deepest first) and is gone all the same.
#include "worker/sandbox/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StepCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mounts = cgroup_mounts();
    ASSERT_TRUE(mounts) << mounts.error().to_string();
    mounts_ = *mounts;
    group_ = "kiln/cgtest-" + std::to_string(::getpid());
  }
  void TearDown() override {
    for (const auto& m : mounts_) {
      std::error_code ec;
      fs::remove(fs::path(m.path) / group_, ec);  // the group (empty once each test's cgroup is gone)
    }
  }

  // The step's container cgroup in every hierarchy, as the runtime makes it.
  void make_container_dirs(const std::string& id) {
    for (const auto& m : mounts_) fs::create_directories(fs::path(m.path) / group_ / id / "ctr");
  }
  bool exists_anywhere(const std::string& id) const {
    for (const auto& m : mounts_)
      if (fs::exists(fs::path(m.path) / group_ / id)) return true;
    return false;
  }

  std::vector<CgroupMount> mounts_;
  std::string group_;
};

TEST_F(StepCgroupTest, AnEmptyStepCgroupIsRemovedInEveryHierarchy) {
  auto cg = StepCgroup::create(group_, "empty", {});
  ASSERT_TRUE(cg) << cg.error().to_string();
  make_container_dirs("empty");
  ASSERT_TRUE(exists_anywhere("empty"));
  ASSERT_TRUE(cg->kill_and_remove(5s));
  EXPECT_FALSE(exists_anywhere("empty"));
}

TEST_F(StepCgroupTest, AProcessLeftInTheCgroupIsKilledAndTheCgroupRemoved) {
  auto cg = StepCgroup::create(group_, "busy", {});
  ASSERT_TRUE(cg) << cg.error().to_string();
  make_container_dirs("busy");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  for (const auto& m : mounts_)
    std::ofstream(fs::path(m.path) / group_ / "busy" / "ctr" / "cgroup.procs") << child << "\n";
  ASSERT_EQ(cg->processes(), std::vector<pid_t>{child});
  // rmdir is refused while the process is there: the long way kills it.
  std::thread reaper([child] { ::waitpid(child, nullptr, 0); });
  Status removed = cg->kill_and_remove(5s);
  reaper.join();
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_FALSE(exists_anywhere("busy"));
  EXPECT_NE(::kill(child, 0), 0);  // gone (and reaped)
}

TEST_F(StepCgroupTest, ACgroupTheStepMadeBelowItsOwnIsRemovedToo) {
  auto cg = StepCgroup::create(group_, "nested", {});
  ASSERT_TRUE(cg) << cg.error().to_string();
  make_container_dirs("nested");
  for (const auto& m : mounts_)
    fs::create_directories(fs::path(m.path) / group_ / "nested" / "ctr" / "sub" / "deeper");
  ASSERT_TRUE(cg->kill_and_remove(5s));
  EXPECT_FALSE(exists_anywhere("nested"));
}

}  // namespace
}  // namespace kiln::sandbox
