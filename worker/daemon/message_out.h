// Where a worker's messages to the scheduler go: the one seam between the
// socket-free protocol code (SchedulerSession, InventoryReporter) and the
// transport. The Worker implements it on its ZeroMQ DEALER socket; tests
// record the messages.
//
//   class Recorder final : public MessageOut {
//     bool send(proto::Type type, std::string_view body) override { sent.push_back(...); return true; }
//   };
//
// Contract: send() never blocks; false when the message could not be sent
// (not connected yet, or the queue to the scheduler is full): it is dropped
// and the caller decides what to do (keep it, retry, register again). The
// body is an encoded message of that type (proto::encode).
// Thread safety: the loop's thread only, as the socket.
#pragma once

#include <string_view>

#include "common/proto/messages.h"

namespace kiln::worker {

class MessageOut {
 public:
  virtual ~MessageOut() = default;
  virtual bool send(proto::Type type, std::string_view body) = 0;

  template <class T>
  bool send_message(const T& message) {
    return send(T::kType, proto::encode(message));
  }
};

}  // namespace kiln::worker
