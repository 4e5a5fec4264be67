#include "common/format.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>

namespace kiln {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(HumanBytes, WholeBytesBelowOneKibibyte) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(100), "100 B");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(999), "999 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
}

TEST(HumanBytes, TheLargestBinaryUnitBelow1024WithOneDecimal) {
  EXPECT_EQ(human_bytes(1024), "1.0 KiB");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(64ull << 20), "64.0 MiB");
  EXPECT_EQ(human_bytes(1536ull << 20), "1.5 GiB");
  EXPECT_EQ(human_bytes(5ull << 30), "5.0 GiB");
  EXPECT_EQ(human_bytes(1ull << 50), "1.0 PiB");
  EXPECT_EQ(human_bytes(std::numeric_limits<std::uint64_t>::max()), "16.0 EiB");
}

// The image fetcher's progress used decimal units ("12.3 MB"); it now
// prints the same sizes in binary units like everything else.
TEST(HumanBytes, SizesTheFetcherPrints) {
  EXPECT_EQ(human_bytes(12'300'000), "11.7 MiB");
  EXPECT_EQ(human_bytes(1'500'000'000), "1.4 GiB");
  EXPECT_EQ(human_bytes(42ull << 20), "42.0 MiB");
}

TEST(HumanDuration, MillisecondsSecondsMinutesHours) {
  EXPECT_EQ(human_duration(milliseconds(0)), "0 s");
  EXPECT_EQ(human_duration(milliseconds(1)), "1 ms");
  EXPECT_EQ(human_duration(milliseconds(250)), "250 ms");
  EXPECT_EQ(human_duration(seconds(5)), "5 s");
  EXPECT_EQ(human_duration(milliseconds(1500)), "1.5 s");
  EXPECT_EQ(human_duration(seconds(42)), "42 s");
  EXPECT_EQ(human_duration(milliseconds(1999)), "1.9 s");  // truncated to tenths
  EXPECT_EQ(human_duration(milliseconds(5040)), "5 s");
  EXPECT_EQ(human_duration(milliseconds(59'999)), "59.9 s");
  EXPECT_EQ(human_duration(seconds(60)), "1m 00s");
  EXPECT_EQ(human_duration(seconds(125)), "2m 05s");
  EXPECT_EQ(human_duration(seconds(239)), "3m 59s");
  EXPECT_EQ(human_duration(milliseconds(125'900)), "2m 05s");  // truncated to whole seconds
  EXPECT_EQ(human_duration(seconds(3599)), "59m 59s");
  EXPECT_EQ(human_duration(seconds(3600)), "1h 00m");
  EXPECT_EQ(human_duration(seconds(7620)), "2h 07m");
  EXPECT_EQ(human_duration(seconds(7679)), "2h 07m");  // truncated to whole minutes
  EXPECT_EQ(human_duration(seconds(100 * 3600)), "100h 00m");
}

TEST(HumanDuration, NegativeIsZero) {
  EXPECT_EQ(human_duration(milliseconds(-5)), "0 s");
}

TEST(UtcTimestamp, Iso8601WholeSeconds) {
  EXPECT_EQ(utc_timestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_timestamp(1795999200000), "2026-11-30T00:40:00Z");
  EXPECT_EQ(utc_timestamp(1795999200999), "2026-11-30T00:40:00Z");
  EXPECT_EQ(utc_timestamp(-1), "1969-12-31T23:59:59Z");
}

}  // namespace
}  // namespace kiln
