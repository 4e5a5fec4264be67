// Metadata::open_read_only and make_writable: a read-only open writes no
// file, refuses changes, and excludes (and is excluded by) a writable open
// in another process through RocksDB's own LOCK file.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "worker/store/metadata.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;

class MetadataReadOnlyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-metadata-ro-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto db = Metadata::open(dir_.string());
    ASSERT_TRUE(db) << db.error().to_string();
    ASSERT_TRUE((*db)->add_result("a", {.created_us = 100, .last_used_us = 100}));
    ASSERT_TRUE((*db)->add_result("b", {.parent = "a", .created_us = 200, .last_used_us = 200}));
    ASSERT_TRUE((*db)->add_lookups(3, 1));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every file's name, size and modification time.
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> listing() const {
    std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> out;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      struct stat st {};
      EXPECT_EQ(::stat(entry.path().c_str(), &st), 0);
      out[entry.path().filename().string()] = {static_cast<std::uintmax_t>(st.st_size),
                                               st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
    }
    return out;
  }

  // Runs `fn` in a forked child and returns its exit status (-1: killed
  // after 30 s, which fails the test). `ready` (optional) is called in the
  // parent while the child runs, after the child wrote a byte to its pipe.
  static int in_child(const std::function<int(int ready_fd, int go_fd)>& child,
                      const std::function<void()>& while_running = nullptr) {
    int ready[2], go[2];
    EXPECT_EQ(::pipe(ready), 0);
    EXPECT_EQ(::pipe(go), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      ::_exit(child(ready[1], go[0]));
    }
    ::close(ready[1]);
    ::close(go[0]);
    if (while_running) {
      char byte = 0;
      EXPECT_EQ(::read(ready[0], &byte, 1), 1) << "the child did not get ready";
      while_running();
    }
    ::close(go[1]);  // the child may go on
    ::close(ready[0]);
    int status = 0;
    for (int i = 0; i < 3000; ++i) {
      if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << "the child process did not end";
    return -1;
  }

  fs::path dir_;
};

TEST_F(MetadataReadOnlyTest, ReadsEverythingWritesNoFileAndRefusesChanges) {
  auto before = listing();
  {
    auto db = Metadata::open_read_only(dir_.string());
    ASSERT_TRUE(db) << db.error().to_string();
    EXPECT_TRUE((*db)->read_only());
    auto b = (*db)->get_result("b");
    ASSERT_TRUE(b && *b);
    EXPECT_EQ((*b)->parent, "a");
    EXPECT_EQ((*db)->result_count(), 2u);
    auto counters = (*db)->lookup_counters();
    ASSERT_TRUE(counters);
    EXPECT_EQ(counters->hits, 3u);
    EXPECT_EQ(counters->misses, 1u);
    auto leaves = (*db)->lru_leaves(1'000, 10);
    ASSERT_TRUE(leaves);
    EXPECT_EQ(*leaves, std::vector<std::string>{"b"});
    for (Status s : {(*db)->mark_used("b", 300), (*db)->add_result("c", {.created_us = 1}),
                     (*db)->add_lookups(1, 0), (*db)->remove_result("b")}) {
      ASSERT_FALSE(s);
      EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition) << s.error().to_string();
    }
  }
  // Not a file added, grown or touched (no manifest, OPTIONS, CURRENT or LOG).
  EXPECT_EQ(listing(), before);
}

TEST_F(MetadataReadOnlyTest, ThereIsNoDatabaseToOpenReadOnlyInAnEmptyDirectory) {
  auto db = Metadata::open_read_only((dir_ / "nothing-here").string());
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind(), ErrorKind::kNotFound) << db.error().to_string();
}

TEST_F(MetadataReadOnlyTest, MakeWritableKeepsTheDataAndTakesChanges) {
  auto db = Metadata::open_read_only(dir_.string());
  ASSERT_TRUE(db) << db.error().to_string();
  ASSERT_TRUE((*db)->make_writable());
  EXPECT_FALSE((*db)->read_only());
  EXPECT_EQ((*db)->result_count(), 2u);
  ASSERT_TRUE((*db)->mark_used("b", 300));
  ASSERT_TRUE((*db)->add_result("c", {.parent = "b", .created_us = 400, .last_used_us = 400}));
  EXPECT_EQ((*db)->result_count(), 3u);
  ASSERT_TRUE((*db)->make_writable());  // a no-op now
  db->reset();
  auto again = Metadata::open(dir_.string());
  ASSERT_TRUE(again) << again.error().to_string();
  auto c = (*again)->get_result("c");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->parent, "b");
}

TEST_F(MetadataReadOnlyTest, AWriterInAnotherProcessIsRefusedWhileItIsOpenReadOnly) {
  const std::string dir = dir_.string();
  auto writer = [&](int, int) { return Metadata::open(dir) ? 0 : 1; };
  {
    auto db = Metadata::open_read_only(dir);
    ASSERT_TRUE(db) << db.error().to_string();
    EXPECT_EQ(in_child(writer), 1) << "a writable open succeeded beside a read-only one";
  }
  EXPECT_EQ(in_child(writer), 0) << "the read-only open's lock outlived it";
}

TEST_F(MetadataReadOnlyTest, AReadOnlyOpenIsRefusedWhileAnotherProcessHasItForWriting) {
  const std::string dir = dir_.string();
  int code = in_child(
      [&](int ready, int go) {
        auto db = Metadata::open(dir);
        if (!db) return 2;
        char byte = 1;
        if (::write(ready, &byte, 1) != 1) return 3;
        (void)::read(go, &byte, 1);  // until the parent closes it
        return 0;
      },
      [&] {
        auto db = Metadata::open_read_only(dir);
        ASSERT_FALSE(db) << "opened read-only while another process writes";
        EXPECT_EQ(db.error().kind(), ErrorKind::kBusy) << db.error().to_string();
      });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(Metadata::open_read_only(dir));
}

TEST_F(MetadataReadOnlyTest, MakeWritableWaitsForOtherReadersToClose) {
  const std::string dir = dir_.string();
  auto db = Metadata::open_read_only(dir);
  ASSERT_TRUE(db) << db.error().to_string();
  Status upgraded;
  int code = in_child(
      [&](int ready, int) {
        auto reader = Metadata::open_read_only(dir);
        if (!reader) return 2;
        char byte = 1;
        if (::write(ready, &byte, 1) != 1) return 3;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return 0;  // the process ends: its read lock goes
      },
      [&] { upgraded = (*db)->make_writable(); });
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(upgraded) << upgraded.error().to_string();
  EXPECT_TRUE((*db)->add_lookups(1, 0));
}

}  // namespace
}  // namespace kiln::store
