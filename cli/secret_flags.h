// `--secret ID:FILE` (kiln build, kiln submit): the flag's syntax and the
// file's size limit in one place.
//
//   KILN_ASSIGN_OR_RETURN(auto secrets, read_secret_flags(flags));   // [(id, value)]
//
// Errors: kInvalidArgument for a malformed flag ("expected ID:FILE") or a
// file over `max_bytes`, the read error otherwise, each naming the flag.
// Thread safety: a pure function of the files.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace kiln::cli {

inline constexpr std::size_t kMaxSecretBytes = 1u << 20;

Result<std::vector<std::pair<std::string, std::string>>> read_secret_flags(
    const std::vector<std::string>& flags, std::size_t max_bytes = kMaxSecretBytes);

}  // namespace kiln::cli
