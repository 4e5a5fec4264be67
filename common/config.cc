#include "common/config.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

namespace kiln {

std::string kiln_home() {
  const char* env = std::getenv("KILN_HOME");
  std::string home = env != nullptr && *env != '\0' ? env : ".kiln";
  std::error_code ec;
  auto absolute = std::filesystem::absolute(home, ec);
  return ec ? home : absolute.lexically_normal().string();
}

std::string default_base_image_dir() {
  return kiln_home() + "/images/busybox";
}

Result<std::map<std::string, std::string>> image_aliases(std::span<const std::string> flags) {
  std::map<std::string, std::string> aliases;
  const std::string base = default_base_image_dir();
  std::error_code ec;
  if (std::filesystem::exists(base + "/index.json", ec)) aliases["busybox"] = "oci:" + base + ":latest";
  for (const std::string& alias : flags) {
    std::size_t eq = alias.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == alias.size()) {
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("--image-alias {:?}: expected NAME=REF, e.g. busybox=oci:/images/busybox:latest",
                      alias));
    }
    aliases[alias.substr(0, eq)] = alias.substr(eq + 1);
  }
  return aliases;
}

Result<std::uint64_t> parse_byte_size(std::string_view flag, std::string_view text) {
  std::size_t digits = text.find_first_not_of("0123456789");
  std::string number(text.substr(0, digits));
  std::string unit(digits == std::string_view::npos ? "" : text.substr(digits));
  static const std::map<std::string, int> shifts = {{"", 0},     {"K", 10}, {"KiB", 10}, {"M", 20},
                                                    {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40}};
  auto shift = shifts.find(unit);
  if (number.empty() || number.size() > 12 || shift == shifts.end()) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} {:?}: expected a size such as 512M, 2G or 1048576", flag, text));
  }
  return std::stoull(number) << shift->second;
}

}  // namespace kiln
