#include "worker/sandbox/sandbox.h"

#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "common/format.h"

namespace kiln::sandbox {

StdinProvider stdin_from_bytes(std::string bytes) {
  auto remaining = std::make_shared<std::optional<std::string>>(std::move(bytes));
  return [remaining]() -> Result<std::string> {
    if (!*remaining) return std::string();
    std::string out = std::move(**remaining);
    remaining->reset();
    return out;
  };
}

Error cancelled_step_error() {
  return Error(ErrorKind::kCancelled, "cancelled: the step's container was killed");
}

Error timed_out_step_error(std::chrono::milliseconds limit) {
  return Error(ErrorKind::kTimeout,
               fmt::format("timed out after {} (the step's time limit); the container was killed",
                           human_duration(limit)));
}

Error output_failed_step_error(std::string_view why) {
  return Error(ErrorKind::kInternal,
               fmt::format("the step's output could not be taken ({}); the container was killed", why));
}

}  // namespace kiln::sandbox
