// Process-wide logging through spdlog.
//
// Every kiln binary calls `init_logging` once at start with the level from
// `--log-level` (or the KILN_LOG_LEVEL environment variable) and chooses
// between human lines on stderr and JSON lines (one object per line, for log
// shippers). After that, code logs with spdlog directly:
//
//   kiln::init_logging({.level = "debug", .json = false});
//   spdlog::info("worker {} registered in pool {}", name, pool);
//
// Thread safety: init_logging is called before other threads start; spdlog's
// logging calls are thread-safe.
#pragma once

#include <string>

#include "common/error.h"

namespace kiln {

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  bool json = false;           // JSON lines instead of human-readable lines
};

// Valid level names for --log-level, as one string for help text.
inline constexpr const char* kLogLevels = "trace|debug|info|warn|error|critical|off";

// Reads the default level from KILN_LOG_LEVEL and JSON mode from
// KILN_LOG_JSON=1, so flags can override the environment.
LogOptions log_options_from_env();

// Installs the default logger writing to stderr. Fails on an unknown level.
Status init_logging(const LogOptions& options);

}  // namespace kiln
