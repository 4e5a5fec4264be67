// Base64 (RFC 4648, the standard alphabet, with padding): docker config
// credentials (`auths[...].auth`), basic auth headers, and the path stat
// header of dockerd's archive API.
//
//   std::string header = "Basic " + base64_encode("user:secret");   // "Basic dXNlcjpzZWNyZXQ="
//   KILN_ASSIGN_OR_RETURN(std::string raw, base64_decode(text));
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln {

std::string base64_encode(std::string_view data);
// Line breaks are skipped. kInvalidArgument when `text` is not base64.
Result<std::string> base64_decode(std::string_view text);

}  // namespace kiln
