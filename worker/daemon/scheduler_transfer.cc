#include "worker/daemon/scheduler_transfer.h"

#include <fmt/format.h>

namespace kiln::worker {
namespace {

zmq::socket_t make_socket(zmq::context_t& context, const proto::CurveClientKeys& curve) {
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  proto::configure_dealer(socket);
  // Queued until connected (the default configure_dealer turns this off so
  // that stale requests are dropped; here a request waits for the scheduler).
  socket.set(zmq::sockopt::immediate, 0);
  proto::configure_curve_client(socket, curve);
  return socket;
}

}  // namespace

SchedulerChannel::SchedulerChannel(zmq::context_t& context, const std::string& scheduler_address,
                                   const proto::CurveClientKeys& curve)
    : socket_(make_socket(context, curve)),
      watch_(context, socket_,
             {.address = scheduler_address, .curve = curve.enabled(), .role_hint = "workers/"}) {
  socket_.connect(scheduler_address);
}

Result<std::optional<proto::Frame>> SchedulerChannel::next_frame(const CancelToken* cancel,
                                                                 std::string_view what) {
  if (cancel != nullptr && cancel->cancelled())
    return make_error(ErrorKind::kCancelled, fmt::format("cancelled while {}", what));
  if (auto failed = watch_.failure()) return std::unexpected(std::move(*failed));
  zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(100));
  if (!(item.revents & ZMQ_POLLIN)) return std::optional<proto::Frame>();
  auto frame = proto::receive(socket_, /*router=*/false);
  if (!frame) return std::optional<proto::Frame>();  // malformed: wait for a good one
  return std::optional<proto::Frame>(std::move(*frame));
}

}  // namespace kiln::worker
