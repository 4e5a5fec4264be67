// parse_output_flag (result_tar.h), apart from the tar code: the kiln client
// parses `--output` and links only the unpacking side of libarchive.
#include <fmt/format.h>

#include "common/context/result_tar.h"

namespace kiln::context {

Result<std::pair<std::string, std::string>> parse_output_flag(std::string_view value) {
  std::size_t colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("--output {:?}: expected SRC:DESTDIR, the file or directory SRC of the "
                                  "result and the directory on this machine to put it in (e.g. "
                                  "--output /app/bin:./out)",
                                  value));
  return std::pair<std::string, std::string>(value.substr(0, colon), value.substr(colon + 1));
}

}  // namespace kiln::context
