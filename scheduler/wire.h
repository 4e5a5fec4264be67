// What the scheduler's core receives and sends: a message with its routing
// id and port, already taken out of its ZeroMQ frames (the daemon does the
// framing, common/proto/transport.h). Plain data; no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/auth/auth_dir.h"
#include "common/proto/messages.h"

namespace kiln::scheduler {

// The client port (clients and admins) and the worker port.
enum class Port : std::uint8_t { kClients, kWorkers };

struct Incoming {
  std::string routing_id;
  std::optional<proto::Type> type;  // unset: a type this scheduler does not know
  std::string type_text;
  std::string body;
  // Who sent it, as its CurveZMQ key says (docs/security.md); nullopt when
  // the scheduler runs without authentication (everyone may do everything).
  std::optional<auth::Identity> peer;
};

struct Outgoing {
  Port port;
  std::string routing_id;
  proto::Type type;
  std::string body;
};

}  // namespace kiln::scheduler
