#include "common/proto/client.h"

#include <fmt/format.h>

#include <cstdlib>
#include <zmq.hpp>

#include "common/proto/transport.h"

namespace kiln::proto {
namespace {

using Clock = std::chrono::steady_clock;

std::unexpected<Error> unavailable(const std::string& address, std::string_view what) {
  return std::unexpected(
      Error(ErrorKind::kUnavailable,
            fmt::format("no answer from the scheduler at {} ({}); is kiln-scheduler running there? "
                        "(set --scheduler or KILN_SCHEDULER to reach another)",
                        address, what)));
}

// The request id every reply body carries first; 0 when absent.
std::uint64_t reply_request_id(Type type, const std::string& body) {
  switch (type) {
#define KILN_ID(T)                \
  case T::kType: {                \
    auto m = decode<T>(body);     \
    return m ? m->request_id : 0; \
  }
    KILN_ID(ErrorReply)
    KILN_ID(Welcome)
    KILN_ID(Ok)
    KILN_ID(Submitted)
    KILN_ID(ContextAck)
    KILN_ID(Job)
    KILN_ID(Jobs)
    KILN_ID(Log)
    KILN_ID(Workers)
    KILN_ID(ContextChunk)
#undef KILN_ID
    default: return 0;
  }
}

}  // namespace

struct Client::Impl {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
  std::unique_ptr<HandshakeWatch> watch;
};

std::string scheduler_address(const std::string& flag) {
  std::string address = flag;
  if (address.empty()) {
    if (const char* env = std::getenv("KILN_SCHEDULER"); env && *env) address = env;
  }
  if (address.empty()) address = "tcp://127.0.0.1:7800";
  if (address.find("://") == std::string::npos) address = "tcp://" + address;
  return address;
}

Client::Client(std::unique_ptr<Impl> impl, std::string address, std::string name)
    : impl_(std::move(impl)), address_(std::move(address)), name_(std::move(name)) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(const std::string& address, const std::string& client_name,
                                                std::chrono::milliseconds timeout,
                                                const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  configure_dealer(impl->socket);
  configure_curve_client(impl->socket, options.curve);
  impl->watch = std::make_unique<HandshakeWatch>(impl->context, impl->socket,
                                                 HandshakeWatchOptions{.address = address,
                                                                       .curve = options.curve.enabled(),
                                                                       .key_file = options.key_file,
                                                                       .role_hint = "clients/ or admins/"});
  try {
    impl->socket.connect(address);
  } catch (const zmq::error_t& e) {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("cannot use scheduler address {:?}: {} (expected e.g. tcp://127.0.0.1:7800)", address,
                    e.what()));
  }
  std::unique_ptr<Client> client(new Client(std::move(impl), address, client_name));
  Hello hello{.client = client_name};
  hello.request_id = ++client->last_request_id_;
  KILN_RETURN_IF_ERROR(client->send_body(type_name(Hello::kType), encode(hello), timeout));
  KILN_ASSIGN_OR_RETURN(auto body, client->wait_reply(hello.request_id, Type::kWelcome, timeout));
  KILN_ASSIGN_OR_RETURN(auto welcome, decode<Welcome>(body));
  client->scheduler_id_ = welcome.scheduler_id;
  return client;
}

Status Client::send_body(std::string_view type, const std::string& body, std::chrono::milliseconds timeout) {
  // With ZMQ_IMMEDIATE a DEALER accepts messages only once connected: wait
  // for that (the first call after connect, or while the scheduler restarts).
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (send_raw(impl_->socket, nullptr, type, body)) return {};
    if (auto failed = impl_->watch->failure()) return std::unexpected(std::move(*failed));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return unavailable(address_, "cannot connect");
    zmq::pollitem_t item{impl_->socket.handle(), 0, ZMQ_POLLOUT, 0};
    zmq::poll(&item, 1, std::min<std::chrono::milliseconds>(left, std::chrono::milliseconds(50)));
  }
}

Result<Client::RawReply> Client::next_reply(std::chrono::milliseconds timeout) {
  // Polled in slices so that a refused handshake (a revoked key) ends the
  // wait at once.
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto failed = impl_->watch->failure()) return std::unexpected(std::move(*failed));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return unavailable(address_, "timed out waiting for a reply");
    zmq::pollitem_t item{impl_->socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::min<std::chrono::milliseconds>(left, std::chrono::milliseconds(100))) > 0)
      break;
  }
  auto frame = receive(impl_->socket, /*router=*/false);
  if (!frame) return std::unexpected(frame.error().error);
  if (!frame->type) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the scheduler sent an unknown message type {:?}", frame->type_text));
  }
  return RawReply{*frame->type, std::move(frame->body)};
}

Result<std::string> Client::wait_reply(std::uint64_t request_id, Type expected,
                                       std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return unavailable(address_, "timed out waiting for a reply");
    KILN_ASSIGN_OR_RETURN(RawReply reply, next_reply(left));
    if (reply_request_id(reply.type, reply.body) != request_id) continue;  // a late reply to an earlier call
    if (reply.type == Type::kError) {
      KILN_ASSIGN_OR_RETURN(auto error, decode<ErrorReply>(reply.body));
      return std::unexpected(to_error(error));
    }
    if (reply.type != expected) {
      return make_error(ErrorKind::kInvalidArgument, fmt::format("the scheduler answered {} with {:?}",
                                                                 type_name(expected), type_name(reply.type)));
    }
    return std::move(reply.body);
  }
}

Status Client::send_frames(const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!impl_->socket.send(zmq::buffer(frames[i]), flags)) return unavailable(address_, "send failed");
  }
  return {};
}

}  // namespace kiln::proto
