#include "worker/sandbox/sandbox.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <thread>

namespace kiln::sandbox {

StdinProvider stdin_from_bytes(std::string bytes) {
  auto remaining = std::make_shared<std::optional<std::string>>(std::move(bytes));
  return [remaining]() -> Result<std::string> {
    if (!*remaining) return std::string();
    std::string out = std::move(**remaining);
    remaining->reset();
    return out;
  };
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return fmt::format("{} bytes", bytes);
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  // Whole numbers print without decimals ("64 MiB", not "64.0 MiB").
  if (value == static_cast<double>(static_cast<std::uint64_t>(value)))
    return fmt::format("{} {}", static_cast<std::uint64_t>(value), kUnits[unit]);
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string human_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms < 1000) return fmt::format("{} ms", ms);
  if (ms < 60'000) {
    if (ms % 1000 == 0) return fmt::format("{} s", ms / 1000);
    return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000);
  }
  auto total_s = ms / 1000;
  if (total_s % 60 == 0) return fmt::format("{} min", total_s / 60);
  return fmt::format("{} min {} s", total_s / 60, total_s % 60);
}

}  // namespace kiln::sandbox
