// The policy registry: names as `kiln-scheduler --placement NAME` takes them.
#include <fmt/format.h>

#include "scheduler/placement/policy.h"

namespace kiln::placement {

Result<std::unique_ptr<Policy>> make_policy(const std::string& name, const PolicyOptions& options) {
  if (name == "kiln") return make_kiln_policy(options);
  if (name == "least-loaded") return make_least_loaded_policy(options);
  if (name == "random") return make_random_policy(options);
  if (name == "ocluster-hint") return make_ocluster_hint_policy(options);
  return make_error(
      ErrorKind::kInvalidArgument,
      fmt::format("unknown placement policy {:?}; known: kiln (the default), least-loaded, random, "
                  "ocluster-hint",
                  name));
}

Result<std::unique_ptr<Policy>> make_policy(const std::string& name) {
  return make_policy(name, PolicyOptions{});
}

}  // namespace kiln::placement
