#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>

namespace kiln {
namespace {

// Captures what the default logger writes to stderr.
std::string capture_stderr(const std::function<void()>& fn) {
  std::fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  std::FILE* tmp = std::tmpfile();
  ::dup2(::fileno(tmp), STDERR_FILENO);
  fn();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::rewind(tmp);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, tmp)) out.append(buf, n);
  std::fclose(tmp);
  return out;
}

TEST(Logging, RejectsUnknownLevel) {
  auto s = init_logging({.level = "loud", .json = false});
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("loud"), std::string::npos);
  EXPECT_NE(s.error().message().find("debug"), std::string::npos);
}

TEST(Logging, LevelFilters) {
  ASSERT_TRUE(init_logging({.level = "warn", .json = false}).has_value());
  std::string out = capture_stderr([] {
    spdlog::info("hidden message");
    spdlog::warn("shown message");
  });
  EXPECT_EQ(out.find("hidden message"), std::string::npos);
  EXPECT_NE(out.find("shown message"), std::string::npos);
}

TEST(Logging, JsonLinesEscapeTheMessage) {
  ASSERT_TRUE(init_logging({.level = "info", .json = true}).has_value());
  std::string out = capture_stderr([] { spdlog::info("say \"hi\"\\ and\nbye"); });
  EXPECT_NE(out.find(R"("level":"info")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("msg":"say \"hi\"\\ and\nbye"})"), std::string::npos) << out;
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one JSON object per line";
  ASSERT_TRUE(init_logging({}).has_value());
}

}  // namespace
}  // namespace kiln
