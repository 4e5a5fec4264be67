// CurveZMQ on kiln's sockets (docs/security.md): the options that make a
// socket a CurveZMQ server (the scheduler's ports) or client (workers and
// the `kiln` command), and a watch on a client socket's handshakes that
// turns a refused or failed handshake into a clear error at once, instead
// of a silent wait for a reply that cannot come.
//
//   CurveClientKeys keys{.server_public_z85 = sched, .public_z85 = mine.public_z85,
//                        .secret_z85 = mine.secret_z85};
//   configure_curve_client(socket, keys);
//   HandshakeWatch watch(context, socket, {.address = address, .curve = true,
//                                          .role_hint = "clients/ or admins/"});
//   socket.connect(address);
//   ...
//   if (auto error = watch.failure()) return std::unexpected(*error);
//
// Thread safety: a HandshakeWatch belongs to the thread that uses its socket.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "common/error.h"

namespace kiln::proto {

struct CurveClientKeys {
  std::string server_public_z85;
  std::string public_z85;
  std::string secret_z85;
  bool enabled() const { return !server_public_z85.empty(); }
};

// The socket authenticates peers with CurveZMQ: `secret_z85` is the
// server's secret key; `zap_domain` tells the ZAP handler which port it is.
void configure_curve_server(zmq::socket_t& socket, const std::string& secret_z85,
                            std::string_view zap_domain);
// No-op when !keys.enabled().
void configure_curve_client(zmq::socket_t& socket, const CurveClientKeys& keys);

struct HandshakeWatchOptions {
  std::string address;    // the scheduler's address, for messages
  bool curve = false;     // whether this end uses CurveZMQ
  std::string key_file;   // this end's key file, for messages
  std::string role_hint;  // where its public key belongs: "clients/ or admins/", "workers/"
};

class HandshakeWatch {
 public:
  // Starts monitoring `socket`; create it before connect().
  HandshakeWatch(zmq::context_t& context, zmq::socket_t& socket, HandshakeWatchOptions options);
  ~HandshakeWatch();
  HandshakeWatch(const HandshakeWatch&) = delete;
  HandshakeWatch& operator=(const HandshakeWatch&) = delete;

  // Reads the events so far without blocking. A failure that trying again
  // cannot fix (a refused key, a mechanism mismatch, repeated failed
  // handshakes: the wrong scheduler key) as kPermissionDenied or
  // kFailedPrecondition with what to do; nullopt while nothing is wrong.
  std::optional<Error> failure();
  // A handshake has succeeded since the last failure.
  bool connected();

 private:
  void drain();

  HandshakeWatchOptions options_;
  zmq::socket_t monitor_;
  std::optional<Error> failure_;
  bool connected_ = false;
  int failed_handshakes_ = 0;
};

}  // namespace kiln::proto
