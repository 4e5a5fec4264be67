#include "common/proto/transport.h"

#include <fmt/format.h>

#include <vector>

namespace kiln::proto {

void configure_router(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, kHardFrameLimitBytes);
  socket.set(zmq::sockopt::sndhwm, 100000);
  socket.set(zmq::sockopt::rcvhwm, 100000);
  // A reconnecting peer that presents the same identity takes over.
  socket.set(zmq::sockopt::router_handover, 1);
}

void configure_dealer(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, kHardFrameLimitBytes);
  socket.set(zmq::sockopt::sndhwm, 100000);
  socket.set(zmq::sockopt::rcvhwm, 100000);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 2000);
  // Drop what was queued for a peer that went away instead of replaying it
  // to the next one (a restarted scheduler must not see stale requests).
  socket.set(zmq::sockopt::immediate, 1);
}

bool send_raw(zmq::socket_t& socket, const std::string* routing_id, std::string_view type,
              std::string_view body) {
  try {
    if (routing_id) {
      if (!socket.send(zmq::buffer(*routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return false;
      }
    }
    if (!socket.send(zmq::buffer(type), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    return socket.send(zmq::buffer(body), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    // EHOSTUNREACH and friends: the peer is gone; as good as dropped.
    return false;
  }
}

std::expected<Frame, BadFrame> receive(zmq::socket_t& socket, bool router) {
  std::vector<zmq::message_t> parts;
  while (true) {
    zmq::message_t part;
    if (!socket.recv(part, zmq::recv_flags::none)) break;
    const bool more = part.more();
    // Keep the routing id and the first two frames; count the rest.
    if (parts.size() < 4) parts.push_back(std::move(part));
    if (!more) break;
  }
  Frame frame;
  std::size_t first = 0;
  if (router) {
    if (parts.empty())
      return std::unexpected(BadFrame{"", Error(ErrorKind::kInvalidArgument, "empty message")});
    frame.routing_id = parts[0].to_string();
    first = 1;
  }
  const std::size_t count = parts.size() - first;
  if (count != 2) {
    return std::unexpected(BadFrame{
        frame.routing_id, Error(ErrorKind::kInvalidArgument,
                                fmt::format("malformed message: expected 2 frames (type, body), got {}",
                                            count >= 3 ? std::string("3 or more") : std::to_string(count)))});
  }
  if (const char* user = zmq_msg_gets(parts[first].handle(), "User-Id"); user != nullptr)
    frame.user_id = user;
  frame.source_fd = zmq_msg_get(parts[first].handle(), ZMQ_SRCFD);
  frame.type_text = parts[first].to_string();
  if (frame.type_text.size() > 64) frame.type_text.resize(64);
  frame.type = parse_type(frame.type_text);
  if (parts[first + 1].size() > kMaxBodyBytes) {
    const std::uint64_t request_id =
        frame.type
            ? peek_request_id(*frame.type, std::string_view(static_cast<const char*>(parts[first + 1].data()),
                                                            parts[first + 1].size()))
            : 0;
    return std::unexpected(
        BadFrame{frame.routing_id,
                 Error(ErrorKind::kInvalidArgument,
                       fmt::format("message too large: {} body is {} bytes, the limit is {} bytes",
                                   frame.type_text, parts[first + 1].size(), kMaxBodyBytes)),
                 request_id});
  }
  frame.body = parts[first + 1].to_string();
  return frame;
}

}  // namespace kiln::proto
