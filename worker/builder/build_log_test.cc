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

}  // namespace
}  // namespace kiln::builder
