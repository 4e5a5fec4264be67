// Test peers that speak the wire protocol by hand: a scheduler started as a
// process on free ports, and a "raw worker" whose every message the test
// writes, so scheduler behaviour (leases, attempts, superseded reports,
// malformed frames) can be driven exactly.
//
//   SchedulerProcess s(dir, {"--lease-ms", "800"});
//   auto client = s.client();
//   RawWorker w(s.worker_endpoint(), "w1");
//   w.register_worker(2);
//   auto assign = w.expect<proto::Assign>();
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/proto/client.h"
#include "common/proto/curve.h"
#include "common/proto/messages.h"
#include "common/proto/transport.h"
#include "tests/support/child.h"
#include "tests/support/temp_dir.h"

namespace kiln::testing {

class SchedulerProcess {
 public:
  // Workers connect to worker_endpoint() on 127.0.0.1; with
  // `worker_listen_host` "0.0.0.0" the worker port also takes workers in
  // network namespaces (at this host's veth addresses; the scheduler then
  // needs --insecure or keys).
  SchedulerProcess(std::string state_dir, std::vector<std::string> extra_args = {},
                   std::string worker_listen_host = "127.0.0.1");
  // Starts again on the same ports and state (after kill_now()/stop()).
  void restart();
  Child& child() { return *child_; }
  const std::string& client_endpoint() const { return client_endpoint_; }
  const std::string& worker_endpoint() const { return worker_endpoint_; }
  int worker_port() const { return worker_port_; }
  std::unique_ptr<proto::Client> client(const std::string& name = "test");
  // A client over CurveZMQ (for a scheduler started with --key/--auth-dir).
  Result<std::unique_ptr<proto::Client>> client_with(const proto::ClientOptions& options,
                                                     const std::string& name = "test");

 private:
  void start();
  std::string state_dir_;
  std::vector<std::string> extra_args_;
  std::string client_endpoint_;
  std::string worker_endpoint_;
  std::string worker_listen_host_;
  int worker_port_ = 0;
  std::unique_ptr<Child> child_;
  int starts_ = 0;
};

class RawWorker {
 public:
  RawWorker(const std::string& endpoint, const std::string& name);
  // Over CurveZMQ with `keys`; `routing_id` empty: none (as kiln-worker does with a key).
  RawWorker(const std::string& endpoint, const std::string& name, const proto::CurveClientKeys& keys,
            const std::string& routing_id = "");

  void send_register(std::uint32_t capacity, std::vector<proto::RunningJob> running = {},
                     std::uint32_t version = proto::kProtocolVersion,
                     const std::string& pool = "linux-x86_64");
  // Registers and waits for "registered".
  proto::Registered register_worker(std::uint32_t capacity, std::vector<proto::RunningJob> running = {});
  void heartbeat(std::vector<proto::RunningJob> running = {});
  void event(proto::Type type, const std::string& job_id, std::uint32_t attempt, const std::string& log = "",
             const std::string& outcome = "", const std::string& result = "");

  // The next message of any type, or nullopt after `timeout`.
  std::optional<proto::Frame> next(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next message of type T (others are skipped); fails the test on timeout.
  template <class T>
  std::optional<T> expect(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto frame = next(left);
      if (!frame) break;
      if (frame->type == T::kType) {
        auto m = proto::decode<T>(frame->body);
        if (m) return *m;
      }
    }
    return std::nullopt;
  }
  zmq::socket_t& socket() { return socket_; }
  const std::string& name() const { return name_; }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string name_;
};

}  // namespace kiln::testing
