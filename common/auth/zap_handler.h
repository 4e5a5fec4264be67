// ZeroMQ's authentication hook (ZAP, RFC 27) for the scheduler's CurveZMQ
// sockets: each new connection's public key is looked up in the auth
// directory (auth_dir.h) and accepted only in the role its socket serves.
//
//   KILN_ASSIGN_OR_RETURN(auto zap, ZapHandler::start(context, "/etc/kiln/auth"));
//   socket.set(zmq::sockopt::zap_domain, std::string(kZapDomainWorkers));
//   socket.set(zmq::sockopt::curve_server, 1);   // + the server's secret key
//   ... then per received message:
//   auto who = zap->check(frame.user_id);          // nullopt: revoked since it connected
//
// Domains: kZapDomainClients accepts client and admin keys; kZapDomainWorkers
// accepts worker keys. An accepted connection's User-Id property is
// "ROLE:NAME:KEY" (Identity::user_id() plus the key), which check() turns
// back into an Identity while that key still has that identity.
// The directory is read again every `reload_interval`: added keys work and
// removed or changed ones stop working within it, without a restart. A
// refused handshake gets ZAP status 400; the peer sees an authentication
// failure (kiln's clients turn it into a clear error).
// Thread safety: start() runs the handler on a thread of its own; check(),
// keys() and the counters may be called from any thread. The context must
// outlive the handler.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <zmq.hpp>

#include "common/auth/auth_dir.h"
#include "common/error.h"

namespace kiln::auth {

inline constexpr std::string_view kZapDomainClients = "kiln-clients";
inline constexpr std::string_view kZapDomainWorkers = "kiln-workers";

class ZapHandler {
 public:
  static Result<std::unique_ptr<ZapHandler>> start(
      zmq::context_t& context, std::string auth_dir,
      std::chrono::milliseconds reload_interval = std::chrono::seconds(2));
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // The identity of a connection's User-Id if its key still has it.
  std::optional<Identity> check(std::string_view user_id) const;
  std::shared_ptr<const KeyTable> keys() const;
  // Bumped each time a reload changed the table.
  std::uint64_t generation() const { return generation_.load(); }
  std::uint64_t accepted() const { return accepted_.load(); }
  std::uint64_t refused() const { return refused_.load(); }

 private:
  ZapHandler(zmq::context_t& context, std::string auth_dir, std::chrono::milliseconds reload_interval);
  void run();
  void reload(bool first);
  void answer(zmq::socket_t& socket);

  zmq::context_t& context_;
  std::string auth_dir_;
  std::chrono::milliseconds reload_interval_;
  mutable std::mutex mu_;
  std::shared_ptr<const KeyTable> keys_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<bool> stop_{false};
  std::string bind_error_;
  std::thread thread_;
  // Log rate limit for refusals.
  std::chrono::steady_clock::time_point log_window_{};
  int logged_in_window_ = 0;
};

}  // namespace kiln::auth
