// Internal to worker/daemon: byte counts as the worker's log lines print
// them ("1.5 GiB", "3.0 MiB", "512 bytes"). A pure function.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace kiln::worker::internal {

inline std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30));
  if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1ull << 20));
  return fmt::format("{} bytes", bytes);
}

}  // namespace kiln::worker::internal
