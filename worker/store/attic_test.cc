#include "worker/store/attic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/fs.h"
#include "tests/support/child.h"
#include "tests/support/temp_dir.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using kiln::testing::eventually;

class AtticTest : public ::testing::Test {
 protected:
  std::string make_tree(const std::string& name) {
    fs::path p = fs::path(tmp_.path()) / name;
    fs::create_directories(p / "work" / "work");
    std::ofstream(p / "file") << "contents";
    return p.string();
  }
  std::string attic_dir() const { return tmp_.path() + "/attic"; }
  static Status remove(const std::string& path) { return remove_tree(path); }

  testing::TempDir tmp_;
};

TEST_F(AtticTest, ARetiredTreeLeavesItsPlaceAtOnceAndIsRemovedInTheBackground) {
  Attic attic(attic_dir(), remove);
  ASSERT_TRUE(attic.start());
  std::string tree = make_tree("tmp-1");
  ASSERT_TRUE(attic.retire(tree));
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(eventually([&] { return fs::is_empty(attic_dir()); }));
  EXPECT_EQ(attic.pending(), 0u);
}

TEST_F(AtticTest, WhatAStoppedAtticLeftIsRemovedAfterTheNextStart) {
  {
    Attic stopped(attic_dir(), remove);
    ASSERT_TRUE(ensure_dir(attic_dir()));  // no start(): no thread removes anything
    ASSERT_TRUE(stopped.retire(make_tree("a")));
    ASSERT_TRUE(stopped.retire(make_tree("b")));
    EXPECT_EQ(stopped.pending(), 2u);
  }
  ASSERT_EQ(std::distance(fs::directory_iterator(attic_dir()), fs::directory_iterator()), 2);
  Attic next(attic_dir(), remove);
  ASSERT_TRUE(next.start());
  EXPECT_TRUE(eventually([&] { return fs::is_empty(attic_dir()); }));
}

TEST_F(AtticTest, DrainRemovesEverythingQueuedInTheCallersThread) {
  Attic attic(attic_dir(), remove);
  ASSERT_TRUE(ensure_dir(attic_dir()));
  for (const char* name : {"x", "y", "z"}) ASSERT_TRUE(attic.retire(make_tree(name)));
  ASSERT_TRUE(attic.drain());
  EXPECT_TRUE(fs::is_empty(attic_dir()));
  EXPECT_EQ(attic.pending(), 0u);
}

TEST_F(AtticTest, TheSameNameRetiredTwiceKeepsBothEntries) {
  Attic attic(attic_dir(), remove);
  ASSERT_TRUE(ensure_dir(attic_dir()));
  ASSERT_TRUE(attic.retire(make_tree("same")));
  ASSERT_TRUE(attic.retire(make_tree("same")));
  EXPECT_EQ(std::distance(fs::directory_iterator(attic_dir()), fs::directory_iterator()), 2);
  EXPECT_EQ(attic.pending(), 2u);
}

TEST_F(AtticTest, AFailedRemovalIsReportedAndTheOthersStillGo) {
  std::atomic<int> calls{0};
  Attic attic(attic_dir(), [&](const std::string& path) -> Status {
    if (calls++ == 0) return make_error(ErrorKind::kInternal, "refused");
    return remove_tree(path);
  });
  ASSERT_TRUE(ensure_dir(attic_dir()));
  ASSERT_TRUE(attic.retire(make_tree("first")));
  ASSERT_TRUE(attic.retire(make_tree("second")));
  Status drained = attic.drain();
  ASSERT_FALSE(drained);
  EXPECT_EQ(drained.error().message(), "refused");
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(attic_dir()), fs::directory_iterator()), 1);
}

TEST_F(AtticTest, RetiringAMissingPathFails) {
  Attic attic(attic_dir(), remove);
  ASSERT_TRUE(attic.start());
  EXPECT_FALSE(attic.retire(tmp_.path() + "/nothing-here"));
  EXPECT_EQ(attic.pending(), 0u);
}

}  // namespace
}  // namespace kiln::store
