#include "cli/format.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

namespace kiln::cli {

std::string time_text(std::int64_t ms) {
  return ms > 0 ? utc_timestamp(ms) : "-";
}

std::string seconds_between(std::int64_t from_ms, std::int64_t to_ms) {
  if (from_ms <= 0 || to_ms < from_ms) return "";
  return fmt::format(" ({:.1f} s)", static_cast<double>(to_ms - from_ms) / 1000);
}

std::string rounded_duration(double seconds) {
  if (!(seconds > 0)) return human_duration(std::chrono::milliseconds(0));
  return human_duration(std::chrono::seconds(std::llround(seconds)));
}

std::string percent_text(std::optional<double> ratio) {
  return ratio ? fmt::format("{:.0f}%", *ratio * 100) : "-";
}

std::string join_or_dash(const std::vector<std::string>& items) {
  return items.empty() ? "-" : fmt::format("{}", fmt::join(items, ","));
}

std::string indent_lines(const std::string& text, std::string_view prefix) {
  std::string trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  std::string out;
  for (char c : trimmed) {
    out += c;
    if (c == '\n') out += prefix;
  }
  return out;
}

std::string table_text(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      out += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], widths[i]) : row[i];
    out += "\n";
  }
  return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::cout << table_text(rows);
}

}  // namespace kiln::cli
