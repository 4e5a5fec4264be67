#include "common/format.h"

#include <algorithm>
#include <ctime>
#include <iterator>

#include <fmt/format.h>

namespace kiln {

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string human_duration(std::chrono::milliseconds duration) {
  const std::int64_t ms = std::max<std::int64_t>(duration.count(), 0);
  if (ms == 0) return "0 s";
  if (ms < 1000) return fmt::format("{} ms", ms);
  if (ms < 60'000) {
    const std::int64_t tenths = ms / 100;
    if (tenths % 10 == 0) return fmt::format("{} s", tenths / 10);
    return fmt::format("{}.{} s", tenths / 10, tenths % 10);
  }
  const std::int64_t seconds = ms / 1000;
  if (seconds < 3600) return fmt::format("{}m {:02}s", seconds / 60, seconds % 60);
  const std::int64_t minutes = seconds / 60;
  return fmt::format("{}h {:02}m", minutes / 60, minutes % 60);
}

std::string utc_timestamp(std::int64_t unix_ms) {
  // Floor, not truncation toward zero, so that times before 1970 stay in
  // their own second.
  std::int64_t seconds = unix_ms / 1000;
  if (unix_ms % 1000 < 0) --seconds;
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace kiln
