#include "common/proto/curve.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>

namespace kiln::proto {
namespace {

std::atomic<std::uint64_t> g_next_monitor{0};

}  // namespace

void configure_curve_server(zmq::socket_t& socket, const std::string& secret_z85,
                            std::string_view zap_domain) {
  socket.set(zmq::sockopt::zap_domain, std::string(zap_domain));
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, secret_z85);
}

void configure_curve_client(zmq::socket_t& socket, const CurveClientKeys& keys) {
  if (!keys.enabled()) return;
  socket.set(zmq::sockopt::curve_serverkey, keys.server_public_z85);
  socket.set(zmq::sockopt::curve_publickey, keys.public_z85);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_z85);
}

HandshakeWatch::HandshakeWatch(zmq::context_t& context, zmq::socket_t& socket, HandshakeWatchOptions options)
    : options_(std::move(options)), monitor_(context, zmq::socket_type::pair) {
  const std::string endpoint = fmt::format("inproc://kiln-handshake-{}", g_next_monitor.fetch_add(1));
  const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                     ZMQ_EVENT_DISCONNECTED;
  if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), events) == 0) {
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(endpoint);
  }
}

HandshakeWatch::~HandshakeWatch() = default;

void HandshakeWatch::drain() {
  while (true) {
    zmq::message_t event, address;
    try {
      if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
      if (event.more()) (void)monitor_.recv(address, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t&) {
      return;
    }
    if (event.size() < 6) continue;
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::memcpy(&id, event.data(), 2);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
    switch (id) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        connected_ = true;
        failed_handshakes_ = 0;
        break;
      case ZMQ_EVENT_DISCONNECTED: connected_ = false; break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        connected_ = false;
        failure_ = Error(
            ErrorKind::kPermissionDenied,
            fmt::format(
                "the scheduler at {} refused this key{} (its public key is not in {} of the scheduler's "
                "auth directory, or was removed; ask the scheduler's operator to add it; status {})",
                options_.address, options_.key_file.empty() ? "" : fmt::format(" ({})", options_.key_file),
                options_.role_hint.empty() ? std::string("the right role directory") : options_.role_hint,
                value));
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        connected_ = false;
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
          failure_ =
              options_.curve
                  ? Error(ErrorKind::kFailedPrecondition,
                          fmt::format("the scheduler at {} does not use CurveZMQ (it was started without "
                                      "--key); connect without a key, or start it with --key and --auth-dir",
                                      options_.address))
                  : Error(ErrorKind::kPermissionDenied,
                          fmt::format("the scheduler at {} requires CurveZMQ authentication: pass --key FILE "
                                      "and --scheduler-key FILE (or set KILN_KEY and KILN_SCHEDULER_KEY)",
                                      options_.address));
        } else if (++failed_handshakes_ >= 2) {
          failure_ = Error(
              ErrorKind::kPermissionDenied,
              fmt::format("the secure handshake with the scheduler at {} failed (protocol error {:#x}); "
                          "is --scheduler-key that scheduler's public key?",
                          options_.address, value));
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        connected_ = false;
        // The scheduler could not open our hello: it has another key than
        // the one we pinned. Twice, so a connection cut mid-handshake is not
        // taken for it.
        // Without a key: a CurveZMQ scheduler that finds the mechanisms
        // differ may close before its greeting reaches us, so the mismatch
        // shows as a handshake cut short, never completed. Twice in a row
        // (a restart cuts at most one) means it requires a key.
        if (!options_.curve && ++failed_handshakes_ >= 2) {
          failure_ = Error(ErrorKind::kPermissionDenied,
                           fmt::format("the scheduler at {} closed every connection during the handshake: it "
                                       "most likely requires CurveZMQ authentication: pass --key FILE and "
                                       "--scheduler-key FILE (or set KILN_KEY and KILN_SCHEDULER_KEY)",
                                       options_.address));
        }
        if (options_.curve && ++failed_handshakes_ >= 2) {
          failure_ = Error(
              ErrorKind::kPermissionDenied,
              fmt::format(
                  "the secure handshake with the scheduler at {} failed{}: --scheduler-key (or "
                  "KILN_SCHEDULER_KEY) is not that scheduler's public key, or the scheduler does not use "
                  "CurveZMQ (it was started without --key)",
                  options_.address,
                  options_.key_file.empty() ? "" : fmt::format(" (this end's key: {})", options_.key_file)));
        }
        break;
      default: break;
    }
  }
}

std::optional<Error> HandshakeWatch::failure() {
  drain();
  return failure_;
}

bool HandshakeWatch::connected() {
  drain();
  return connected_;
}

}  // namespace kiln::proto
