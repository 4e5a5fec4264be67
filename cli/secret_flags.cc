#include "cli/secret_flags.h"

#include <fmt/format.h>

#include "common/format.h"
#include "common/fs.h"

namespace kiln::cli {

Result<std::vector<std::pair<std::string, std::string>>> read_secret_flags(
    const std::vector<std::string>& flags, std::size_t max_bytes) {
  std::vector<std::pair<std::string, std::string>> secrets;
  for (const std::string& flag : flags) {
    const std::size_t colon = flag.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == flag.size()) {
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("--secret {:?}: expected ID:FILE, e.g. --secret token:./token.txt", flag));
    }
    const std::string path = flag.substr(colon + 1);
    auto value = read_file(path, max_bytes);
    if (!value && value.error().kind() == ErrorKind::kInvalidArgument) {
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("--secret {}: secret file {} is over {}, the most kiln takes for a secret", flag, path,
                      human_bytes(max_bytes)));
    }
    if (!value)
      return std::unexpected(std::move(value.error()).with_context(fmt::format("--secret {}", flag)));
    secrets.emplace_back(flag.substr(0, colon), std::move(*value));
  }
  return secrets;
}

}  // namespace kiln::cli
