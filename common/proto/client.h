// A blocking client of the scheduler's client port (7800): what `kiln
// submit/status/logs/cancel/jobs/admin`, the tests and the benchmarks use.
//
//   KILN_ASSIGN_OR_RETURN(auto client, proto::Client::connect("tcp://127.0.0.1:7800", "ci-1"));
//   KILN_ASSIGN_OR_RETURN(auto done, client->call<proto::Submitted>(proto::Submit{.job = job}));
//   std::cout << done.job_id << "\n";
//
// connect() says hello and checks the protocol version (an incompatible
// scheduler is a clear kFailedPrecondition). call() stamps a fresh request
// id, sends, and waits up to `timeout` for the reply with that id; an
// "error" reply becomes the Error it carries; no reply is kUnavailable
// ("is kiln-scheduler running at ADDRESS?"). Replies to earlier timed-out
// requests are skipped. For pipelining (benchmarks), send_request() and
// next_reply() split a call in two.
// With `ClientOptions::curve` set the connection is CurveZMQ: a refused
// key or a wrong scheduler key is an error at once (HandshakeWatch), not a
// time-out.
// Thread safety: one thread per Client.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/proto/curve.h"
#include "common/proto/messages.h"

namespace kiln::proto {

// The address `kiln` talks to: `flag` if not empty, else $KILN_SCHEDULER,
// else tcp://127.0.0.1:7800. "HOST:PORT" gets "tcp://" prepended.
std::string scheduler_address(const std::string& flag);

struct ClientOptions {
  CurveClientKeys curve;  // empty: a plaintext connection
  std::string key_file;   // where the keys came from, for error messages
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> connect(const std::string& address, const std::string& client_name,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                                 const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& address() const { return address_; }
  const std::string& scheduler_id() const { return scheduler_id_; }
  const std::string& name() const { return name_; }

  // Sends `request` (its request_id is replaced) and returns the reply of
  // type Reply.
  template <class Reply, class Request>
  Result<Reply> call(Request request, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    request.request_id = ++last_request_id_;
    KILN_RETURN_IF_ERROR(send_body(type_name(Request::kType), encode(request), timeout));
    KILN_ASSIGN_OR_RETURN(auto body, wait_reply(request.request_id, Reply::kType, timeout));
    return decode<Reply>(body);
  }

  // Pipelining: send without waiting; returns the request id used.
  template <class Request>
  Result<std::uint64_t> send_request(Request request) {
    request.request_id = ++last_request_id_;
    KILN_RETURN_IF_ERROR(send_body(type_name(Request::kType), encode(request), std::chrono::seconds(30)));
    return request.request_id;
  }
  // The next reply of any request: its type and body (errors come back as
  // Type::kError bodies, not as Error).
  struct RawReply {
    Type type;
    std::string body;
  };
  Result<RawReply> next_reply(std::chrono::milliseconds timeout);

  // Low level, for tests: sends arbitrary frames.
  Status send_frames(const std::vector<std::string>& frames);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl, std::string address, std::string name);

  Status send_body(std::string_view type, const std::string& body, std::chrono::milliseconds timeout);
  Result<std::string> wait_reply(std::uint64_t request_id, Type expected, std::chrono::milliseconds timeout);

  std::unique_ptr<Impl> impl_;
  std::string address_;
  std::string name_;
  std::string scheduler_id_;
  std::uint64_t last_request_id_ = 0;
};

}  // namespace kiln::proto
