#include "cli/format.h"

#include <gtest/gtest.h>

namespace kiln::cli {
namespace {

TEST(CliFormat, UnknownTimesAndEmptyListsAreDashes) {
  EXPECT_EQ(time_text(0), "-");
  EXPECT_EQ(time_text(-1), "-");
  EXPECT_EQ(time_text(1795999200000), "2026-11-30T00:40:00Z");
  EXPECT_EQ(join_or_dash({}), "-");
  EXPECT_EQ(join_or_dash({"a=1", "b=2"}), "a=1,b=2");
  EXPECT_EQ(percent_text(std::nullopt), "-");
  EXPECT_EQ(percent_text(0.756), "76%");
}

TEST(CliFormat, SecondsBetweenTwoKnownTimes) {
  EXPECT_EQ(seconds_between(1000, 2250), " (1.2 s)");
  EXPECT_EQ(seconds_between(0, 2250), "");
  EXPECT_EQ(seconds_between(3000, 2000), "");
}

TEST(CliFormat, RoundedDurationsForEstimates) {
  EXPECT_EQ(rounded_duration(0), "0 s");
  EXPECT_EQ(rounded_duration(-3), "0 s");
  EXPECT_EQ(rounded_duration(0.4), "0 s");
  EXPECT_EQ(rounded_duration(41.7), "42 s");
  EXPECT_EQ(rounded_duration(239.4), "3m 59s");
  EXPECT_EQ(rounded_duration(120), "2m 00s");
  EXPECT_EQ(rounded_duration(7649.6), "2h 07m");
}

TEST(CliFormat, IndentLinesUnderALabel) {
  EXPECT_EQ(indent_lines("one\ntwo\n\n", "  "), "one\n  two");
  EXPECT_EQ(indent_lines("single", "  "), "single");
}

TEST(CliFormat, TablesPadEveryColumnButTheLast) {
  EXPECT_EQ(table_text({{"ID", "STATE", "SPEC"}, {"j10", "running", "a.spec"}, {"j9", "queued", "-"}}),
            "ID   STATE    SPEC\n"
            "j10  running  a.spec\n"
            "j9   queued   -\n");
  EXPECT_EQ(table_text({}), "");
}

}  // namespace
}  // namespace kiln::cli
