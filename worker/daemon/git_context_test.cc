// GitContexts against a repository made in the test with the git CLI and
// reached by its file path: clone, check out, fetch a commit made later, and
// the errors for a missing commit and a bad hash.
#include "worker/daemon/git_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/ids/temp_tree_for_test.h"

namespace kiln::worker {
namespace {

using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command; returns its stdout without the final newline.
std::string sh(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int status = p != nullptr ? ::pclose(p) : -1;
  EXPECT_EQ(status, 0) << command;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class GitContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = tree_.host("repo");
    tree_.file("repo/hello.txt", "hello\n");
    tree_.file("repo/bin/run.sh", "#!/bin/sh\necho run\n", 0755);
    tree_.symlink("repo/link", "hello.txt");
    first_ = commit("first");
  }
  std::string commit(const std::string& message) {
    return sh(fmt::format(
        "cd {} && (test -d .git || git init -q -b main .) && git add -A && "
        "git -c user.name=t -c user.email=t@example.org -c commit.gpgsign=false commit -q -m {} && "
        "git rev-parse HEAD",
        repo_, message));
  }
  std::string fresh_dir(const std::string& name) {
    tree_.dir(name);
    return tree_.host(name);
  }

  ids::TempTree tree_;
  std::string repo_;
  std::string first_;
};

TEST_F(GitContextTest, ChecksOutACommitThenFetchesALaterOne) {
  GitContexts git(tree_.host("cache"));
  std::string dest = fresh_dir("job1");
  Status s = git.checkout(repo_, first_, dest, nullptr);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(read_text(dest + "/hello.txt"), "hello\n");
  EXPECT_EQ(std::filesystem::read_symlink(dest + "/link"), "hello.txt");
  struct stat st {};
  ASSERT_EQ(::stat((dest + "/bin/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  EXPECT_FALSE(std::filesystem::exists(dest + "/.git"));
  EXPECT_TRUE(std::filesystem::exists(git.repository_dir(repo_) + "/HEAD"));  // the cached bare clone

  tree_.file("repo/hello.txt", "changed\n");
  tree_.file("repo/new.txt", "new\n");
  std::string second = commit("second");
  std::string dest2 = fresh_dir("job2");
  s = git.checkout(repo_, second, dest2, nullptr);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(read_text(dest2 + "/hello.txt"), "changed\n");
  EXPECT_EQ(read_text(dest2 + "/new.txt"), "new\n");

  // The older commit is still served from the cache.
  std::string dest3 = fresh_dir("job3");
  ASSERT_TRUE(git.checkout(repo_, first_, dest3, nullptr));
  EXPECT_EQ(read_text(dest3 + "/hello.txt"), "hello\n");
  EXPECT_FALSE(std::filesystem::exists(dest3 + "/new.txt"));
}

TEST_F(GitContextTest, MissingCommitAndBadHashAreClearErrors) {
  GitContexts git(tree_.host("cache"));
  Status s = git.checkout(repo_, std::string(40, 'a'), fresh_dir("job"), nullptr);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(s.error().to_string(), HasSubstr(std::string(40, 'a')));

  s = git.checkout(repo_, "main", fresh_dir("job2"), nullptr);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(s.error().to_string(), HasSubstr("40-character"));

  s = git.checkout(tree_.host("no-such-repo"), first_, fresh_dir("job3"), nullptr);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kUnavailable);
}

TEST_F(GitContextTest, RefusesATreeWithASymlinkLeadingOutside) {
  tree_.symlink("repo/escape", "../../outside");
  std::string bad = commit("escape");
  GitContexts git(tree_.host("cache"));
  Status s = git.checkout(repo_, bad, fresh_dir("job"), nullptr);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(s.error().to_string(), HasSubstr("escape"));
}

TEST(RedactUrlTest, HidesPasswordsOnly) {
  EXPECT_EQ(redact_url("https://bot:s3cret@example.org/r.git"), "https://bot:***@example.org/r.git");
  EXPECT_EQ(redact_url("https://example.org/r.git"), "https://example.org/r.git");
  EXPECT_EQ(redact_url("ssh://git@example.org:22/r.git"), "ssh://git@example.org:22/r.git");
  EXPECT_EQ(redact_url("/srv/git/r.git"), "/srv/git/r.git");
  EXPECT_EQ(redact_url("https://example.org/a@b"), "https://example.org/a@b");
}

}  // namespace
}  // namespace kiln::worker
