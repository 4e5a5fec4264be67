// The store conformance suite: every backend, on a real filesystem of its
// kind, must behave as the Store contract says (worker/store/store.h).
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/mountinfo.h"
#include "tests/store/store_fixture.h"
#include "tests/store/store_test_util.h"
#include "tests/store/store_trees.h"
#include "tests/support/local_dockerd.h"
#include "worker/store/fs_util.h"
#include "worker/store/store.h"

extern char** environ;

namespace kiln::store {
namespace {

using testing::Backend;
using testing::kDockerPrefix;
using testing::kDockerScratch;
using testing::param_name;
using testing::read_file;
using testing::StoreTest;
using testing::StoreTrees;
using testing::TestFilesystems;
using testing::write_file;
namespace fs = std::filesystem;

TEST_P(StoreTest, BuildsFromScratchAndFromABase) {
  must_build(std::nullopt, "a", {{"one", "1"}, {"dir/two", "2"}});
  EXPECT_EQ(file_of("a", "one"), "1");
  EXPECT_EQ(file_of("a", "dir/two"), "2");

  // The build from a base sees the base's files and changes only its copy.
  auto s = store_->build("a", "b", [&](const Workspace& ws) -> Status {
    EXPECT_EQ(trees_->read_in_build(ws, "one"), "1");
    EXPECT_EQ(trees_->read_in_build(ws, "dir/two"), "2");
    return trees_->write(ws, {{"one", "changed"}, {"three", "3"}});
  });
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(file_of("b", "one"), "changed");
  EXPECT_EQ(file_of("b", "dir/two"), "2");  // from the base's layer
  EXPECT_EQ(file_of("b", "three"), "3");
  EXPECT_EQ(file_of("a", "one"), "1");  // the base is untouched
  EXPECT_FALSE(file_of("a", "three"));

  auto info = store_->info("b");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->parent, "a");
  EXPECT_EQ(store_->info("a")->children, 1u);
  EXPECT_EQ(store_->stats()->results, 2u);
}

// What a backend leaves of a work tree after its commit (overlayfs: the
// work and merged directories; rsync: the unlinked copy) and a cache's
// previous snapshot go to the store's attic, removed by a thread of its own;
// what an earlier run left there goes after the next writable open.
TEST_P(StoreTest, WhatABuildLeavesGoesToTheAtticWhichEmptiesItself) {
  auto attic_empty = [&] {
    for (int i = 0; i < 1000 && !entries("attic").empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return entries("attic").empty();
  };
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  EXPECT_TRUE(entries("tmp").empty());
  for (int round = 0; round < 2; ++round) {
    auto lease = store_->cache({0, 0}, "c");
    ASSERT_TRUE(lease) << lease.error().to_string();
    ASSERT_TRUE(lease->release());
  }
  EXPECT_TRUE(attic_empty());
  EXPECT_EQ(entries("cache").size(), 1u);

  ASSERT_TRUE(ensure_dir(root_ + "/attic/left-by-an-earlier-run"));
  write_file(root_ + "/attic/left-by-an-earlier-run/file", "x");
  open();
  EXPECT_TRUE(attic_empty());
  EXPECT_EQ(file_of("b", "g"), "2");
}

TEST_P(StoreTest, FailedBuildLeavesNothingAndCanBeRetried) {
  must_build(std::nullopt, "base", {{"f", "base"}});
  auto failed = store_->build("base", "x", [&](const Workspace& ws) -> Status {
    EXPECT_TRUE(trees_->write(ws, {{"junk", "junk"}}));
    return make_error(ErrorKind::kIo, "step failed on purpose");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message(), "step failed on purpose");  // the fn's own error
  EXPECT_FALSE(has_result("x"));
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_FALSE(store_->info("x"));
  // A build function that throws is a failure too, and is cleaned up.
  auto threw =
      store_->build(std::nullopt, "y", [](const Workspace&) -> Status { throw std::runtime_error("boom"); });
  ASSERT_FALSE(threw);
  EXPECT_NE(threw.error().message().find("boom"), std::string::npos);
  EXPECT_TRUE(entries("tmp").empty());
  must_build("base", "x", {{"g", "retry"}});
  EXPECT_EQ(file_of("x", "g"), "retry");
  EXPECT_FALSE(file_of("x", "junk"));
}

TEST_P(StoreTest, RejectsBadRequests) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  auto again = build(std::nullopt, "a", {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  auto no_base = build("missing", "b", {});
  ASSERT_FALSE(no_base);
  EXPECT_EQ(no_base.error().kind(), ErrorKind::kNotFound);
  auto bad_id = build(std::nullopt, "../evil", {});
  ASSERT_FALSE(bad_id);
  EXPECT_EQ(bad_id.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_FALSE(path_exists(root_ + "/evil"));
}

TEST_P(StoreTest, DeleteRemovesResults) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  std::string b_dir = root_ + "/result/b";
  ASSERT_TRUE(store_->delete_result("b"));
  EXPECT_FALSE(has_result("b"));
  EXPECT_FALSE(path_exists(b_dir));
  EXPECT_TRUE(has_result("a"));
  EXPECT_EQ(file_of("a", "f"), "1");
  EXPECT_EQ(store_->info("a")->children, 0u);
  EXPECT_TRUE(store_->delete_result("b"));  // absent is fine
  ASSERT_TRUE(store_->delete_result("a"));
  EXPECT_FALSE(has_result("a"));
  ASSERT_TRUE(store_->complete_deletes());
  EXPECT_TRUE(entries("result").empty());

  EXPECT_EQ(store_->stats()->results, 0u);
  // The id can be built again.
  must_build(std::nullopt, "a", {{"f", "new"}});
  EXPECT_EQ(file_of("a", "f"), "new");
}

TEST_P(StoreTest, DeletingAParentLeavesNoBrokenChildren) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  must_build("b", "c", {{"h", "3"}});
  ASSERT_TRUE(store_->delete_result("a"));
  EXPECT_FALSE(has_result("a"));
  if (GetParam().kind == "overlayfs") {
    // Layers need their parents: the results stacked on `a` go with it.
    EXPECT_FALSE(has_result("b"));
    EXPECT_FALSE(has_result("c"));
    EXPECT_EQ(store_->stats()->results, 0u);
  } else {
    // Self-contained snapshots outlive their parent and become roots.
    EXPECT_EQ(file_of("c", "f"), "1");
    EXPECT_EQ(file_of("c", "h"), "3");
    EXPECT_FALSE(store_->info("b")->parent);
    EXPECT_EQ(store_->info("b")->children, 1u);
  }
  open();  // and the store is consistent on disk
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
}

TEST_P(StoreTest, ResultPathsAndLogs) {
  std::string seen_log;
  auto s = store_->build(std::nullopt, "a", [&](const Workspace& ws) -> Status {
    KILN_RETURN_IF_ERROR(trees_->write(ws, {}));
    seen_log = store_->log_file("a");
    EXPECT_EQ(seen_log, ws.dir + "/log");  // tail-able while the build runs
    write_file(ws.dir + "/log", "building a\n");
    return {};
  });
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(read_file(store_->log_file("a")), "building a\n");
  must_build("a", "b", {{"x", "y"}});
  EXPECT_EQ(read_file(store_->log_file("b")), "log of b\n");  // b's own log, not a's
  EXPECT_EQ(read_file(store_->log_file("a")), "building a\n");
  std::string path = result_path("b");
  EXPECT_TRUE(trees_->has_tree(path, "b"));
  EXPECT_EQ(result_path("b"), path);  // stable
  EXPECT_FALSE(has_result("nope"));
  EXPECT_EQ(store_->state_dir(), root_ + "/state");
  EXPECT_EQ(store_->root(), root_);
  auto df = store_->df();
  ASSERT_TRUE(df);
  EXPECT_GT(*df, 0.0);
  EXPECT_LE(*df, 100.0);
}

TEST_P(StoreTest, DeletedFilesStayDeletedInChildren) {
  must_build(std::nullopt, "a", {{"gone", "1"}, {"dir/x", "2"}, {"kept", "3"}});
  must_build("a", "b", {{"gone", ""}, {"dir", ""}});
  must_build("b", "c", {{"new", "4"}});
  for (const std::string id : {"b", "c"}) {
    EXPECT_FALSE(exists_in(id, "gone")) << id;
    EXPECT_FALSE(exists_in(id, "dir")) << id;
    EXPECT_EQ(file_of(id, "kept"), "3") << id;
  }
  EXPECT_EQ(file_of("a", "gone"), "1");
  EXPECT_EQ(file_of("a", "dir/x"), "2");
  // A directory deleted and re-created hides the old contents.
  must_build("c", "d", {{"dir/y", "5"}});
  EXPECT_FALSE(exists_in("d", "dir/x"));
  EXPECT_EQ(file_of("d", "dir/y"), "5");
}

TEST_P(StoreTest, LongChainsKeepWorking) {
  constexpr int kDepth = 100;
  must_build(std::nullopt, "step0", {{"file0", "0"}, {"marker", "0"}});
  for (int i = 1; i < kDepth; ++i) {
    std::map<std::string, std::string> files{{fmt::format("file{}", i), std::to_string(i)}};
    if (i % 10 == 0) files["marker"] = std::to_string(i);
    if (i == 50) files["file0"] = "";  // a deletion deep in the chain
    must_build(fmt::format("step{}", i - 1), fmt::format("step{}", i), files);
  }
  std::string last = fmt::format("step{}", kDepth - 1);
  EXPECT_FALSE(exists_in(last, "file0"));
  for (int i = 1; i < kDepth; ++i) EXPECT_EQ(file_of(last, fmt::format("file{}", i)), std::to_string(i));
  EXPECT_EQ(file_of(last, "marker"), "90");
  EXPECT_EQ(file_of("step49", "file0"), "0");
  EXPECT_EQ(read_file(store_->log_file(last)), "log of " + last + "\n");
}

TEST_P(StoreTest, CacheIsOwnedByTheUserAndFirstReleaseWins) {
  auto first = store_->cache({1000, 1001}, "c");
  ASSERT_TRUE(first) << first.error().to_string();
  struct stat st;
  ASSERT_EQ(stat(first->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_TRUE(fs::is_empty(first->path()));  // new caches start empty
  write_file(first->path() + "/v", "1");
  ASSERT_TRUE(first->release());
  EXPECT_FALSE(first->held());

  auto one = store_->cache({1000, 1001}, "c");
  auto two = store_->cache({2000, 2000}, "c");
  ASSERT_TRUE(one && two);
  EXPECT_NE(one->path(), two->path());
  EXPECT_EQ(read_file(one->path() + "/v"), "1");
  EXPECT_EQ(read_file(two->path() + "/v"), "1");
  ASSERT_EQ(stat(two->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 2000u);  // each copy belongs to its user
  write_file(one->path() + "/v", "from one");
  write_file(two->path() + "/v", "from two");
  write_file(two->path() + "/only-two", "x");
  EXPECT_EQ(read_file(one->path() + "/v"), "from one");  // copies are private
  ASSERT_TRUE(two->release());                           // first release since the copies were taken: wins
  ASSERT_TRUE(one->release());                           // later: discarded
  auto next = store_->cache({1000, 1001}, "c");
  ASSERT_TRUE(next);
  EXPECT_EQ(read_file(next->path() + "/v"), "from two");
  EXPECT_EQ(read_file(next->path() + "/only-two"), "x");
  ASSERT_TRUE(next->release());
  EXPECT_TRUE(entries("cache-tmp").empty());
  // Caches are independent.
  auto other = store_->cache({0, 0}, "other");
  ASSERT_TRUE(other);
  EXPECT_TRUE(fs::is_empty(other->path()));
}

TEST_P(StoreTest, DeletingACacheInUseIsBusyAndHarmless) {
  auto lease = store_->cache({0, 0}, "c");
  ASSERT_TRUE(lease);
  write_file(lease->path() + "/data", "precious");
  auto busy = store_->delete_cache("c");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind(), ErrorKind::kBusy);
  EXPECT_EQ(read_file(lease->path() + "/data"), "precious");  // the user's copy is intact
  ASSERT_TRUE(lease->release());
  auto again = store_->cache({0, 0}, "c");
  ASSERT_TRUE(again);
  EXPECT_EQ(read_file(again->path() + "/data"), "precious");
  ASSERT_TRUE(again->release());
  ASSERT_TRUE(store_->delete_cache("c"));
  ASSERT_TRUE(store_->delete_cache("never-made"));
  auto fresh = store_->cache({0, 0}, "c");
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fs::is_empty(fresh->path()));
}

TEST_P(StoreTest, ConcurrentBuildsSharingAncestorsThenFullPrune) {
  constexpr int kBuilds = 100, kAtOnce = 10;
  std::mt19937 rng(42);
  std::vector<std::optional<int>> parent(kBuilds);
  for (int i = 0; i < kBuilds; ++i) {
    // Parents come from earlier waves, so a base is always finished.
    int wave_start = i / kAtOnce * kAtOnce;
    if (wave_start > 0 && rng() % 5 != 0)
      parent[i] = static_cast<int>(rng() % static_cast<unsigned>(wave_start));
  }
  auto id = [](int i) { return fmt::format("r{:03}", i); };
  std::atomic<int> failures{0};
  for (int wave = 0; wave < kBuilds / kAtOnce; ++wave) {
    std::vector<std::thread> threads;
    for (int i = wave * kAtOnce; i < (wave + 1) * kAtOnce; ++i) {
      threads.emplace_back([&, i] {
        auto base = parent[i] ? std::optional<std::string>(id(*parent[i])) : std::nullopt;
        auto s = store_->build(base, id(i), [&](const Workspace& ws) -> Status {
          // Every ancestor's file is visible in the build.
          for (std::optional<int> a = parent[i]; a; a = parent[*a]) {
            if (trees_->read_in_build(ws, id(*a)) != id(*a)) failures++;
          }
          return trees_->write(ws, {{id(i), id(i)}});
        });
        if (!s) {
          ADD_FAILURE() << s.error().to_string();
          failures++;
        }
      });
    }
    // Cache users run alongside the builds.
    threads.emplace_back([&] {
      auto lease = store_->cache({0, 0}, "shared");
      if (!lease) {
        failures++;
        return;
      }
      write_file(lease->path() + "/wave", std::to_string(wave));
      if (!lease->release()) failures++;
    });
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(failures, 0);
  for (int i = 0; i < kBuilds; ++i) {
    for (std::optional<int> a = i; a; a = parent[*a]) EXPECT_EQ(file_of(id(i), id(*a)), id(*a)) << id(i);
  }
  EXPECT_EQ(store_->stats()->results, static_cast<std::uint64_t>(kBuilds));

  // Prune everything, least recently used leaves first, several threads deleting.
  auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  for (int rounds = 0; rounds < kBuilds; ++rounds) {
    auto victims = store_->lru_leaves(later, kAtOnce);
    ASSERT_TRUE(victims) << victims.error().to_string();
    if (victims->empty()) break;
    for (const auto& v : *victims) EXPECT_EQ(store_->info(v)->children, 0u) << v;
    std::vector<std::thread> threads;
    for (const auto& v : *victims) {
      threads.emplace_back([&, v] {
        if (auto s = store_->delete_result(v); !s) ADD_FAILURE() << s.error().to_string();
      });
    }
    for (auto& t : threads) t.join();
  }
  ASSERT_TRUE(store_->complete_deletes());
  EXPECT_EQ(store_->stats()->results, 0u);
  EXPECT_TRUE(entries("result").empty());

  EXPECT_TRUE(entries("tmp").empty());
}

TEST_P(StoreTest, CountersAndMetadataSurviveReopening) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  ASSERT_TRUE(store_->record_cache_hit("a"));
  ASSERT_TRUE(store_->record_cache_miss());
  ASSERT_TRUE(store_->record_cache_miss());
  auto used = store_->info("a")->last_used;
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  auto stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->results, 2u);
  EXPECT_EQ(stats->cache_hits, 1u);
  EXPECT_EQ(stats->cache_misses, 2u);
  EXPECT_EQ(store_->info("a")->last_used, used);
  EXPECT_EQ(*store_->list_results(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(file_of("b", "f"), "1");
  EXPECT_GT(store_->info("a")->size_bytes, 0u);
}

TEST_P(StoreTest, ASecondOpenOfTheSameStoreIsRefusedHarmlessly) {
  std::string seen;
  auto s = store_->build(std::nullopt, "a", [&](const Workspace& ws) -> Status {
    KILN_RETURN_IF_ERROR(trees_->write(ws, {{"f", "1"}}));
    auto second = open_store(spec(), options());  // while a build is in progress
    EXPECT_FALSE(second);
    if (!second) seen = second.error().to_string();
    EXPECT_EQ(trees_->read_in_build(ws, "f"), "1");  // the second open did not clean up our build
    return {};
  });
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_NE(seen.find("one process at a time"), std::string::npos) << seen;
  EXPECT_EQ(file_of("a", "f"), "1");
}

TEST_P(StoreTest, ReopeningReconcilesMetadataWithTheDisk) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  must_build("b", "c", {{"h", "3"}});
  store_.reset();
  // b's directory disappears behind the store's back.
  ASSERT_NO_FATAL_FAILURE(remove_result_directory("b"));
  open();
  const RecoveryReport& report = store_->recovery_report();
  EXPECT_FALSE(has_result("b"));
  EXPECT_EQ(store_->info("a")->children, 0u);
  auto leaves = store_->lru_leaves(std::chrono::system_clock::now() + std::chrono::hours(1), 10);
  ASSERT_TRUE(leaves);
  EXPECT_NE(std::find(leaves->begin(), leaves->end(), "a"), leaves->end());
  if (GetParam().kind == "overlayfs") {
    // c's layer lies on b's: it cannot be read any more and goes too.
    EXPECT_EQ(report.records_dropped, 2) << report.to_string();
    EXPECT_FALSE(has_result("c"));
    EXPECT_FALSE(path_exists(root_ + "/result/c"));
  } else {
    EXPECT_EQ(report.records_dropped, 1) << report.to_string();
    EXPECT_EQ(file_of("c", "g"), "2");
    EXPECT_FALSE(store_->info("c")->parent);
  }
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
}

// Durability: a build does not wait for the disk; a background sync puts
// results on disk and notes how far it got. A reopen in the same boot (a
// killed process: the page cache kept everything) keeps every result; a
// reopen after a reboot (a power cut may have lost what was not synced)
// drops the results recorded after the last sync, and their directories.
TEST_P(StoreTest, AfterARebootResultsRecordedSinceTheLastSyncAreDropped) {
  boot_id_ = "boot-a";
  open();
  must_build(std::nullopt, "a", {{"f", "1"}});
  ASSERT_TRUE(store_->sync());  // the background thread's sync, waited for

  // The sync is held off: b (on a) and c are recorded but not synced when
  // the process "dies" (the store closes without syncing).
  sync_delay_ = std::chrono::hours(1);
  sync_at_close_ = false;
  open();
  must_build("a", "b", {{"g", "2"}});
  must_build(std::nullopt, "c", {{"h", "3"}});
  store_.reset();

  // Same boot: nothing lost; the background sync takes them on (waited for).
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  EXPECT_EQ(file_of("b", "g"), "2");
  EXPECT_EQ(file_of("c", "h"), "3");
  ASSERT_TRUE(store_->sync());
  store_.reset();

  // Rebooted: a, b and c were all synced by then and stay.
  boot_id_ = "boot-b";
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  EXPECT_TRUE(has_result("b"));

  // d (on b) is recorded but not synced, then the machine "loses power".
  must_build("b", "d", {{"i", "4"}});
  store_.reset();
  boot_id_ = "boot-c";
  open();
  const RecoveryReport& report = store_->recovery_report();
  EXPECT_EQ(report.unsynced_dropped, 1) << report.to_string();
  EXPECT_FALSE(has_result("d"));
  EXPECT_FALSE(path_exists(root_ + "/result/d"));
  EXPECT_EQ(file_of("b", "g"), "2");
  EXPECT_EQ(file_of("a", "f"), "1");
  EXPECT_EQ(store_->info("b")->children, 0u);

  // With the delay held off, sync() itself wakes the background sync: e
  // survives the next "power cut".
  must_build("b", "e", {{"j", "5"}});
  ASSERT_TRUE(store_->sync());
  store_.reset();
  boot_id_ = "boot-d";
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  EXPECT_EQ(file_of("e", "j"), "5");

  // A clean close waits for the sync: g survives a reboot although the
  // background sync is held off.
  sync_at_close_ = true;
  open();
  must_build("e", "g", {{"l", "7"}});
  store_.reset();
  sync_at_close_ = false;
  boot_id_ = "boot-f";
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  EXPECT_EQ(file_of("g", "l"), "7");

  // Without a delay the background sync runs after each build by itself:
  // f, given time for that, survives a "power cut". (Were the disk slower
  // than the wait, f is dropped: build it again and wait longer.)
  sync_delay_ = std::chrono::milliseconds(0);
  open();
  bool synced = false;
  for (int attempt = 0; attempt < 8 && !synced; ++attempt) {
    must_build("e", "f", {{"k", "6"}});
    std::this_thread::sleep_for(std::chrono::milliseconds(250) * (1 << attempt));  // 0.25 s .. 32 s
    store_.reset();
    boot_id_ = "boot-e" + std::to_string(attempt);
    open();
    synced = has_result("f");
  }
  EXPECT_TRUE(synced);
}

// The crash test: a helper process builds, holds a cache copy, starts a
// second build, and is killed with SIGKILL in the middle of it.
TEST_P(StoreTest, ReopeningAfterAKilledBuildRepairsTheStore) {
  store_.reset();  // the helper must be the only process with the store open
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::string helper = KILN_STORE_CRASH_HELPER, store_spec = spec();
  std::string mode = GetParam().rsync_mode == RsyncMode::kHardlink ? "hardlink" : "copy";
  std::string host = docker() ? dockerd_->host() : "", scratch = kDockerScratch;
  char* argv[] = {helper.data(), store_spec.data(), mode.data(), nullptr, nullptr, nullptr, nullptr};
  if (docker()) {
    // The docker store also needs the daemon, its home and the image builds start from.
    argv[3] = host.data();
    argv[4] = home_.data();
    argv[5] = scratch.data();
  }
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, helper.c_str(), &actions, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  std::string said;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') said += c;
  close(out[0]);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_EQ(said, "ready") << "the helper did not reach the blocking build";
  ASSERT_TRUE(WIFSIGNALED(status));

  // Also a result committed on disk but never recorded.
  ASSERT_TRUE(ensure_dir(root_ + "/result/orphan"));
  open();
  const RecoveryReport& report = store_->recovery_report();
  EXPECT_GE(report.temporaries_removed, 2) << report.to_string();  // the build and the cache copy
  EXPECT_EQ(report.orphan_results_removed, 1) << report.to_string();
  if (GetParam().kind == "overlayfs") {
    EXPECT_GE(report.mounts_removed, 1) << report.to_string();
  }
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_TRUE(entries("cache-tmp").empty());
  EXPECT_FALSE(path_exists(root_ + "/result/orphan"));
  EXPECT_FALSE(has_result("doomed"));
  EXPECT_EQ(file_of("base", "base-file"), "base");
  // The interrupted build can run again, and the cache kept its last released state (empty).
  must_build("base", "doomed", {{"whole", "yes"}});
  EXPECT_EQ(file_of("doomed", "whole"), "yes");
  EXPECT_FALSE(exists_in("doomed", "partial"));
  auto lease = store_->cache({0, 0}, "c");
  ASSERT_TRUE(lease);
  EXPECT_FALSE(path_exists(lease->path() + "/half-written"));
  // The store is not repaired twice.
  ASSERT_TRUE(lease->release());
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend{"overlayfs", "overlayfs", "ext4"},
                                           Backend{"btrfs", "btrfs", "btrfs"}, Backend{"xfs", "xfs", "xfs"},
                                           Backend{"rsync_copy", "rsync", "ext4", RsyncMode::kCopy},
                                           Backend{"rsync_hardlink", "rsync", "ext4", RsyncMode::kHardlink},
                                           Backend{"docker", "docker", "ext4"}),
                         param_name);

TEST(OpenStore, ExplainsAWrongFilesystem) {
  std::string ext4 = TestFilesystems::get().fresh_dir("ext4");
  auto btrfs = open_store("btrfs:" + ext4);
  ASSERT_FALSE(btrfs);
  EXPECT_EQ(btrfs.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_NE(btrfs.error().to_string().find(fmt::format("btrfs:{}: {} is on ext4, not btrfs", ext4, ext4)),
            std::string::npos)
      << btrfs.error().to_string();
  auto xfs = open_store("xfs:" + ext4);
  ASSERT_FALSE(xfs);
  EXPECT_NE(xfs.error().to_string().find("is on ext4, which cannot make reflink copies"), std::string::npos)
      << xfs.error().to_string();
  EXPECT_FALSE(path_exists(ext4 + "/result"));  // nothing made on the wrong filesystem
}

// The overlay mount probe runs once per boot and filesystem: a stamp with
// this boot's id skips it (a marker in the probe's directory survives), a
// stale stamp makes it run again (the probe directory is made afresh).
TEST(OpenStore, OverlayfsProbesItsFilesystemOncePerBoot) {
  std::string root = TestFilesystems::get().fresh_dir("ext4");
  ASSERT_TRUE(open_store("overlayfs:" + root));
  auto stamp = read_file(root + "/overlay-probe.ok");
  ASSERT_TRUE(stamp);
  auto boot = read_file("/proc/sys/kernel/random/boot_id");
  ASSERT_TRUE(boot);
  EXPECT_NE(stamp->find(boot->substr(0, 36)), std::string::npos) << *stamp;

  std::filesystem::create_directories(root + "/overlay-probe");
  write_file(root + "/overlay-probe/marker", "x");
  ASSERT_TRUE(open_store("overlayfs:" + root));
  EXPECT_TRUE(path_exists(root + "/overlay-probe/marker")) << "probed although the stamp is this boot's";

  write_file(root + "/overlay-probe.ok", "boot 00000000-0000-0000-0000-000000000000\n");
  ASSERT_TRUE(open_store("overlayfs:" + root));
  EXPECT_FALSE(path_exists(root + "/overlay-probe/marker")) << "a stale stamp must not skip the probe";
  auto again = read_file(root + "/overlay-probe.ok");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *stamp);
}

// A step's overlay is mounted `volatile`: its unmount at the commit does not
// sync the whole filesystem (every other writer's dirty pages), nor reach the
// disk for each of the step's own fsyncs. Read-only views are not.
TEST(OpenStore, OverlayfsStepsWorkOnAVolatileOverlay) {
  std::string root = TestFilesystems::get().fresh_dir("ext4");
  auto store = open_store("overlayfs:" + root);
  ASSERT_TRUE(store) << store.error().to_string();
  auto options_at = [](const std::string& path) -> std::string {
    auto mounts = read_mountinfo();
    if (!mounts) return "(mountinfo: " + mounts.error().to_string() + ")";
    std::string found = "(not mounted)";
    for (const MountInfo& m : *mounts)
      if (m.fstype == "overlay" && m.mount_point == path) found = m.super_options;
    return found;
  };
  auto base = (*store)->build(std::nullopt, "base", [](const Workspace& ws) -> Status {
    std::filesystem::create_directories(ws.rootfs);
    return write_file_atomically(ws.rootfs + "/f", "1", 0644);
  });
  ASSERT_TRUE(base) << base.error().to_string();
  std::string step_options;
  auto child = (*store)->build("base", "child", [&](const Workspace& ws) -> Status {
    std::error_code ec;
    step_options = options_at(std::filesystem::canonical(ws.rootfs, ec).parent_path().string());
    return write_file_atomically(ws.rootfs + "/g", "2", 0644);
  });
  ASSERT_TRUE(child) << child.error().to_string();
  // Shown as "volatile" or, since Linux 6.12, "fsync=volatile".
  EXPECT_NE(step_options.find("volatile"), std::string::npos) << step_options;
  EXPECT_NE(step_options.find("upperdir="), std::string::npos) << step_options;
  auto stamp = read_file(root + "/overlay-probe.ok");
  ASSERT_TRUE(stamp);
  EXPECT_TRUE(stamp->ends_with("volatile yes\n")) << *stamp;

  // A read-only view of a two-layer result: no upper, nothing volatile.
  auto view = (*store)->result("child");
  ASSERT_TRUE(view) << view.error().to_string();
  ASSERT_TRUE(*view);
  std::error_code ec;
  std::string view_options = options_at(std::filesystem::canonical(**view, ec).string());
  ASSERT_NE(view_options, "(not mounted)") << **view;
  EXPECT_EQ(view_options.find("volatile"), std::string::npos) << view_options;
  EXPECT_EQ(view_options.find("upperdir="), std::string::npos) << view_options;
}

TEST(OpenStore, RejectsMalformedStoreStrings) {
  for (const char* bad : {"", "/var/cache", "zfs:/x", "btrfs:relative", "overlayfs:/"}) {
    auto s = open_store(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument) << bad;
  }
  EXPECT_EQ(*parse_rsync_mode("hardlink"), RsyncMode::kHardlink);
  EXPECT_FALSE(parse_rsync_mode("symlink"));
}

}  // namespace
}  // namespace kiln::store
