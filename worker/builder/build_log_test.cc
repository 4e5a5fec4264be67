#include "worker/builder/build_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/ids/temp_tree_for_test.h"

namespace kiln::builder {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(BuildLogTest, LateSubscriberGetsEverythingThenLiveText) {
  BuildLog log;
  log.heading("/: (run (shell \"make\"))");
  log.output("one\n");
  std::vector<std::pair<LogTag, std::string>> seen;
  auto handle = log.subscribe([&](LogTag tag, std::string_view text) { seen.emplace_back(tag, text); });
  log.note("---> done");
  log.unsubscribe(handle);
  log.output("after\n");
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<LogTag, std::string>{LogTag::kHeading, "/: (run (shell \"make\"))\n"}));
  EXPECT_EQ(seen[1], (std::pair<LogTag, std::string>{LogTag::kOutput, "one\n"}));
  EXPECT_EQ(seen[2], (std::pair<LogTag, std::string>{LogTag::kNote, "---> done\n"}));
}

TEST(BuildLogTest, FileGetsWhatCameBeforeAndAfterAttachingAndReplays) {
  ids::TempTree tree;
  BuildLog log;
  log.heading("step");
  ASSERT_TRUE(log.attach_file(tree.host("log")));
  log.output("partial");
  EXPECT_EQ(read_text(tree.host("log")), "step\npartial");  // readable while building
  log.note("---> done");
  ASSERT_TRUE(log.detach_file());
  log.output(" not in the file");
  EXPECT_EQ(read_text(tree.host("log")), "step\npartial---> done\n");
  std::vector<std::pair<LogTag, std::string>> replayed;
  auto collect = [&](LogTag tag, std::string_view text) { replayed.emplace_back(tag, text); };
  ASSERT_TRUE(replay_log_file(tree.host("log"), collect));
  EXPECT_EQ(replayed,
            (std::vector<std::pair<LogTag, std::string>>{
                {LogTag::kHeading, "step\n"}, {LogTag::kOutput, "partial"}, {LogTag::kNote, "---> done\n"}}));
  // Without a matching tag index the text still replays, as output.
  std::ofstream(tree.host("log.tags")) << "heading 3\n";
  replayed.clear();
  ASSERT_TRUE(replay_log_file(tree.host("log"), collect));
  EXPECT_EQ(replayed,
            (std::vector<std::pair<LogTag, std::string>>{{LogTag::kOutput, "step\npartial---> done\n"}}));
  EXPECT_FALSE(replay_log_file(tree.host("missing"), {}));
}

TEST(BuildLogTest, TailKeepsTheLastLines) {
  BuildLog log;
  log.output("a\nb\nc\nd\n");
  EXPECT_EQ(log.tail(2), "c\nd");
  EXPECT_EQ(log.tail(10), "a\nb\nc\nd");
  log.output("e");
  EXPECT_EQ(log.tail(1), "e");
}

TEST(BuildLogTest, MemoryStaysBoundedWhateverTheStepPrintsAndLateSubscribersReadTheFile) {
  ids::TempTree tree;
  BuildLog log;
  log.heading("/: (run (shell \"yes\"))");
  ASSERT_TRUE(log.attach_file(tree.host("log")));
  std::string expected = "/: (run (shell \"yes\"))\n";
  const std::string chunk = std::string((64 << 10) - 1, 'y') + "\n";
  for (int i = 0; i < 128; ++i) {  // 8 MiB
    log.output(chunk);
    expected += chunk;
    EXPECT_LT(log.memory_bytes(), 512u << 10) << "after " << i + 1 << " chunks";
  }
  log.note("---> done");
  expected += "---> done\n";
  // A requester joining now gets all of it, tagged, in bounded pieces, then what follows.
  std::string replayed;
  std::size_t largest = 0;
  std::vector<LogTag> tags;
  auto handle = log.subscribe([&](LogTag tag, std::string_view text) {
    replayed.append(text);
    largest = std::max(largest, text.size());
    if (tags.empty() || tags.back() != tag) tags.push_back(tag);
  });
  log.output("live\n");
  log.unsubscribe(handle);
  EXPECT_EQ(replayed.size(), expected.size() + 5);
  EXPECT_TRUE(replayed == expected + "live\n");
  EXPECT_LE(largest, 64u << 10);
  EXPECT_EQ(tags, (std::vector<LogTag>{LogTag::kHeading, LogTag::kOutput, LogTag::kNote, LogTag::kOutput}));
  EXPECT_EQ(log.tail(2), "---> done\nlive");
  ASSERT_TRUE(log.detach_file());
  // A cached step's replay reads the file a piece at a time too.
  std::string again;
  largest = 0;
  ASSERT_TRUE(replay_log_file(tree.host("log"), [&](LogTag, std::string_view text) {
    again.append(text);
    largest = std::max(largest, text.size());
  }));
  EXPECT_TRUE(again == expected + "live\n");
  EXPECT_LE(largest, 64u << 10);
}

}  // namespace
}  // namespace kiln::builder
