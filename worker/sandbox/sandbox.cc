#include "worker/sandbox/sandbox.h"

#include <memory>
#include <optional>
#include <utility>

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

}  // namespace kiln::sandbox
