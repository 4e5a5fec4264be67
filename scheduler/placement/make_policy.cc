// The policy registry: names as `kiln-scheduler --placement NAME` takes them.
#include <fmt/format.h>

#include "scheduler/placement/policy.h"

namespace kiln::placement {

Result<std::unique_ptr<Policy>> make_policy(const std::string& name) {
  if (name == "least-loaded") return make_least_loaded_policy();
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("unknown placement policy {:?}; known: least-loaded", name));
}

}  // namespace kiln::placement
