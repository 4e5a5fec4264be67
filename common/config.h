// Where kiln keeps its state on a machine, and the flag values that `kiln
// build`, `kiln up`, kiln-worker and kiln-scheduler share, so that each is
// read one way everywhere.
//
//   std::string dir = kiln_home() + "/farm";                      // $KILN_HOME, else ./.kiln
//   KILN_ASSIGN_OR_RETURN(auto aliases, image_aliases(flags.image_aliases));
//   KILN_ASSIGN_OR_RETURN(std::uint64_t bytes, parse_byte_size("--memory", "512M"));
//
// Thread safety: reads the environment and the filesystem; no state.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln {

// KILN_HOME: $KILN_HOME, else ./.kiln; absolute and normalised.
std::string kiln_home();

// The embedded base image's directory, KILN_HOME/images/busybox
// (scripts/make-base-image makes it).
std::string default_base_image_dir();

// What `(from NAME)` fetches: busybox -> oci:BASE:latest when the default
// base image exists, then each NAME=REF flag (later ones win).
// kInvalidArgument for a flag that is not NAME=REF.
Result<std::map<std::string, std::string>> image_aliases(std::span<const std::string> flags);

// "512M", "2G", "1048576": bytes, with an optional K/M/G/T (or KiB/MiB/GiB)
// suffix in powers of 1024. Errors name `flag` ("--memory \"x\": ...").
Result<std::uint64_t> parse_byte_size(std::string_view flag, std::string_view text);

}  // namespace kiln
