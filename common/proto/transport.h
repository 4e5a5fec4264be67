// Sending and receiving kiln messages over ZeroMQ (docs/protocol.md).
//
// A message is a multipart ZeroMQ message: [routing id,] type name, body.
// ROUTER sockets (the scheduler) see the routing id frame its DEALER peers
// (workers, clients) never see.
//
//   zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
//   proto::configure_dealer(dealer);
//   dealer.connect("tcp://127.0.0.1:7800");
//   proto::send(dealer, proto::Hello{.client = "ci"});
//   KILN_ASSIGN_OR_RETURN(proto::Frame frame, proto::receive(dealer, /*router=*/false));
//   if (frame.type == proto::Type::kWelcome) { auto w = proto::decode<proto::Welcome>(frame.body); }
//
// send() never blocks: when the peer's queue is full (a slow or gone peer)
// the message is dropped and false returned, so one slow peer cannot stall
// the scheduler. receive() turns every malformed multipart message into an
// error the caller answers (kInvalidArgument with what was wrong), draining
// the rest of the message so the socket stays usable.
// Thread safety: ZeroMQ sockets belong to one thread.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/proto/messages.h"

namespace kiln::proto {

// Largest body kiln accepts in one message (a context chunk is 1 MiB; a
// worker's full inventory of 100,000 ids is ~3.2 MiB).
inline constexpr std::size_t kMaxBodyBytes = 8u << 20;
// ZMQ_MAXMSGSIZE on every socket: a peer sending a frame larger than this is
// disconnected by ZeroMQ itself (it cannot even be answered).
inline constexpr std::int64_t kHardFrameLimitBytes = 64ll << 20;

struct Frame {
  std::string routing_id;    // ROUTER sockets only
  std::optional<Type> type;  // nullopt: unknown type name (see type_text)
  std::string type_text;
  std::string body;
  // On a CurveZMQ server socket: the connection's User-Id, as its ZAP
  // handler named it ("" on plaintext sockets), and the connection's file
  // descriptor (-1 if unknown), so that a revoked peer can be cut off.
  std::string user_id;
  int source_fd = -1;
};

// A received message that could not be taken apart: the routing id (so the
// caller can answer) and what was wrong.
struct BadFrame {
  std::string routing_id;
  Error error;
  std::uint64_t request_id = 0;  // of the request, when it could be read (proto::peek_request_id)
};

// Socket options kiln uses everywhere: no linger on close, bounded queues,
// the hard frame limit, reconnect backoff (DEALER).
void configure_router(zmq::socket_t& socket);
void configure_dealer(zmq::socket_t& socket);

// Sends [routing_id,] type, body without blocking. False when dropped.
bool send_raw(zmq::socket_t& socket, const std::string* routing_id, std::string_view type,
              std::string_view body);

template <class T>
bool send(zmq::socket_t& socket, const T& message) {
  return send_raw(socket, nullptr, type_name(T::kType), encode(message));
}
template <class T>
bool send_to(zmq::socket_t& socket, const std::string& routing_id, const T& message) {
  return send_raw(socket, &routing_id, type_name(T::kType), encode(message));
}
inline bool send_event(zmq::socket_t& socket, const JobEvent& event) {
  return send_raw(socket, nullptr, type_name(event.type), encode(event));
}

// Receives one whole message (call when the socket is readable, or it
// blocks). Returns the frame, or a BadFrame for wrong frame counts, bodies
// over kMaxBodyBytes and unknown types are returned as frames with
// type == nullopt so the caller can name them in its answer.
std::expected<Frame, BadFrame> receive(zmq::socket_t& socket, bool router);

}  // namespace kiln::proto
