// Human-readable sizes, durations and UTC timestamps: the one place every
// kiln program formats them, so a size reads the same in a build error, a
// worker's log, the HTTP API's warnings and `kiln admin stats`.
//
//   human_bytes(64ull << 20)                    // "64.0 MiB"
//   human_duration(std::chrono::seconds(125))   // "2m 05s"
//   utc_timestamp(1795999200000)                // "2026-11-30T00:40:00Z"
//
// Conventions: sizes in binary (IEC) units with one decimal from KiB up,
// whole bytes below ("512 B"); durations below a minute as a number and a
// unit ("250 ms", "1.5 s"), longer ones as two fields, the second
// zero-padded ("2m 05s", "2h 07m"). Machine-readable output (JSON, metrics)
// keeps raw numbers and does not use these.
//
// Pure functions; thread safety: safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kiln {

// "512 B", "1.5 KiB", "64.0 MiB", "5.0 GiB", up to EiB. Divides by 1024
// until the value is below 1024, then prints one decimal (whole bytes below
// 1 KiB).
std::string human_bytes(std::uint64_t bytes);

// "250 ms" below a second; "5 s" or "1.5 s" below a minute (tenths,
// truncated; none when whole); "1m 00s", "2m 05s" below an hour (whole
// seconds, truncated); "2h 07m", "100h 00m" from an hour (whole minutes,
// truncated).
// Zero (or a negative duration) reads as "0 s".
std::string human_duration(std::chrono::milliseconds duration);

// "2026-11-30T00:12:03Z": ISO 8601 in UTC, whole seconds (milliseconds are
// truncated), for milliseconds since the Unix epoch. Any value is
// formatted, 0 included: callers that use 0 for "unknown" check first.
std::string utc_timestamp(std::int64_t unix_ms);

}  // namespace kiln
