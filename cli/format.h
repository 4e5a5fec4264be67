// How the `kiln` command prints figures: sizes, durations and UTC times come
// from common/format.h (re-exported here); this adds what only the command
// shows: "-" for an unknown time or an empty list, a run time in seconds,
// percentages and left-aligned text tables.
//
//   print_table({{"NAME", "DISK FREE"}, {"w1", human_bytes(free)}});
//   std::cout << "submitted: " << time_text(job.submitted_at_ms) << "\n";
//
// Pure functions (print_table writes to std::cout); thread safety: as
// std::cout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/format.h"

namespace kiln::cli {

// utc_timestamp(ms), or "-" when ms <= 0 (the protocol's "unknown").
std::string time_text(std::int64_t ms);

// " (1.2 s)": the seconds from `from_ms` to `to_ms` with one decimal, for a
// status line; "" when `from_ms` is unknown or `to_ms` is earlier.
std::string seconds_between(std::int64_t from_ms, std::int64_t to_ms);

// human_duration of `seconds` rounded to whole seconds ("0 s", "42 s",
// "3m 59s", "2h 07m"): for estimates and backlogs, which are not precise to
// the millisecond. Negative reads as "0 s".
std::string rounded_duration(double seconds);

// "75%" for 0.75; "-" when unknown.
std::string percent_text(std::optional<double> ratio);

// "a,b,c"; "-" for none.
std::string join_or_dash(const std::vector<std::string>& items);

// `text` without trailing newlines, every line after the first preceded by
// `prefix` (a value under a label, such as an error carrying a log's tail).
std::string indent_lines(const std::string& text, std::string_view prefix);

// Left-aligned columns, each as wide as its widest cell, two spaces apart;
// the last column is not padded. One line per row, each ending in "\n".
std::string table_text(const std::vector<std::vector<std::string>>& rows);

// table_text(rows) on stdout.
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace kiln::cli
