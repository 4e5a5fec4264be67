// Test helper: the scheduler's side of the worker port, driven message by
// message by a test: a ROUTER socket bound to an ephemeral 127.0.0.1 port.
// It answers get-context from the contexts it is given (from any peer), and
// collects heartbeats, inventories and job-log text while a test waits for
// other messages.
//
//   FakeScheduler scheduler;
//   WorkerOptions o{.scheduler = scheduler.address(), .name = "w1"};
//   ... start the worker ...
//   proto::Register reg = scheduler.accept_registration();
//   scheduler.send(assign);
//   auto events = scheduler.events_until_done(&log);
//
// Failures are reported with GoogleTest's ADD_FAILURE. Thread safety: one thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/proto/messages.h"
#include "common/proto/transport.h"
#include "common/sha256.h"

namespace kiln::worker::testing {

using namespace std::chrono_literals;

class FakeScheduler {
 public:
  FakeScheduler() : socket_(context_, zmq::socket_type::router) {
    proto::configure_router(socket_);
    socket_.bind("tcp://127.0.0.1:*");
    address_ = socket_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& address() const { return address_; }

  // Contexts answered to get-context (from any peer), by digest.
  void serve_context(const std::string& digest, std::string bytes) { contexts_[digest] = std::move(bytes); }

  // The next message of `type` from the worker, skipping heartbeats and
  // inventories (collected) and answering get-context. Fails the test after
  // `timeout`.
  proto::Frame expect(proto::Type type, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto frame = next(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!frame) break;
      if (frame->type == type) return *frame;
      if (frame->type == proto::Type::kHeartbeat) {
        ++heartbeats;
        continue;
      }
      if (frame->type == proto::Type::kInventory) {
        inventories.push_back(*proto::decode<proto::Inventory>(frame->body));
        continue;
      }
      if (frame->type == proto::Type::kJobLog) {  // streamed text, collected
        if (auto e = proto::decode<proto::JobEvent>(frame->body)) logs += e->log;
        continue;
      }
      ADD_FAILURE() << "expected " << proto::type_name(type) << ", got " << frame->type_text;
    }
    ADD_FAILURE() << "no " << proto::type_name(type) << " within " << timeout.count() << " ms";
    return {};
  }

  // The next message of `type`, decoded.
  template <class T>
  T expect_message(std::chrono::milliseconds timeout = 10s) {
    proto::Frame f = expect(T::kType, timeout);
    auto m = proto::decode<T>(f.body);
    EXPECT_TRUE(m) << proto::type_name(T::kType);
    return m.value_or(T{});
  }
  proto::JobEvent expect_event(proto::Type type, std::chrono::milliseconds timeout = 10s) {
    proto::Frame f = expect(type, timeout);
    auto m = proto::decode<proto::JobEvent>(f.body);
    EXPECT_TRUE(m);
    return m.value_or(proto::JobEvent{});
  }
  // Job events up to and including the job-done; job-log texts joined in `log`.
  std::vector<proto::JobEvent> events_until_done(std::string* log, std::chrono::milliseconds timeout = 20s) {
    std::vector<proto::JobEvent> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto frame = next(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!frame) break;
      if (frame->type != proto::Type::kJobLog && frame->type != proto::Type::kJobStep &&
          frame->type != proto::Type::kJobDone && frame->type != proto::Type::kJobStarted) {
        if (frame->type == proto::Type::kInventory)
          inventories.push_back(*proto::decode<proto::Inventory>(frame->body));
        continue;
      }
      auto e = proto::decode<proto::JobEvent>(frame->body);
      EXPECT_TRUE(e);
      if (!e) break;
      e->type = *frame->type;
      if (e->type == proto::Type::kJobLog && log != nullptr) *log += e->log;
      out.push_back(*e);
      if (e->type == proto::Type::kJobDone) return out;
    }
    ADD_FAILURE() << "no job-done within " << timeout.count() << " ms";
    return out;
  }

  template <class T>
  void send(const T& message, const std::string& to = "w1") {
    ASSERT_TRUE(proto::send_to(socket_, to, message));
  }

  // Answers the worker's register.
  proto::Register accept_registration(std::uint32_t heartbeat_ms = 200) {
    auto reg = expect_message<proto::Register>();
    send(proto::Registered{
        .scheduler_id = "fake", .heartbeat_ms = heartbeat_ms, .lease_ms = 5000, .state = "active"});
    return reg;
  }

  // Answers get-context requests for `duration`; any other message fails the test.
  void serve_for(std::chrono::milliseconds duration) {
    if (auto frame = next(duration)) ADD_FAILURE() << "unexpected " << frame->type_text;
  }

  int heartbeats = 0;
  int get_contexts_served = 0;
  // put-output, as the scheduler's output store answers it: bytes held per
  // digest (seed one to play a second uploader of the same output), and
  // the digests stored complete and verified.
  std::map<std::string, std::string> outputs_received;
  std::map<std::string, std::string> outputs_stored;
  int put_outputs_seen = 0;
  int put_outputs_to_ignore = 0;   // the first N go unanswered (a scheduler restarting)
  std::string refuse_outputs_with;  // non-empty: every put-output is answered with this error
  std::vector<proto::Inventory> inventories;
  std::string logs;  // job-log text that arrived while expect() waited for something else
  std::string last_sender;

 private:
  std::optional<proto::Frame> next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      auto frame = proto::receive(socket_, /*router=*/true);
      if (!frame) continue;
      if (frame->type == proto::Type::kGetContext) {
        answer_get_context(*frame);
        continue;
      }
      if (frame->type == proto::Type::kPutOutput) {
        answer_put_output(*frame);
        continue;
      }
      last_sender = frame->routing_id;
      return *frame;
    }
  }

  void answer_get_context(const proto::Frame& frame) {
    auto request = proto::decode<proto::GetContext>(frame.body);
    ASSERT_TRUE(request);
    ++get_contexts_served;
    auto it = contexts_.find(request->digest);
    if (it == contexts_.end()) {
      proto::send_to(
          socket_, frame.routing_id,
          proto::ErrorReply{
              .request_id = request->request_id, .kind = "not found", .message = "no such context"});
      return;
    }
    const std::string& bytes = it->second;
    std::size_t offset = std::min<std::size_t>(request->offset, bytes.size());
    std::size_t n = std::min<std::size_t>(request->max_bytes, bytes.size() - offset);
    proto::send_to(socket_, frame.routing_id,
                   proto::ContextChunk{.request_id = request->request_id,
                                       .digest = request->digest,
                                       .total_size = bytes.size(),
                                       .offset = offset,
                                       .data = bytes.substr(offset, n)});
  }

  void answer_put_output(const proto::Frame& frame) {
    auto put = proto::decode<proto::PutOutput>(frame.body);
    ASSERT_TRUE(put);
    if (++put_outputs_seen <= put_outputs_to_ignore) return;
    if (!refuse_outputs_with.empty()) {
      proto::send_to(socket_, frame.routing_id,
                     proto::ErrorReply{
                         .request_id = put->request_id, .kind = "permission denied", .message = refuse_outputs_with});
      return;
    }
    std::string& held = outputs_received[put->digest];
    bool complete = outputs_stored.contains(put->digest);
    if (!complete && put->offset == held.size() && held.size() + put->data.size() <= put->total_size) {
      held += put->data;
      if (held.size() == put->total_size && "sha256:" + sha256_hex(held) == put->digest) {
        outputs_stored[put->digest] = held;
        complete = true;
      }
    }
    proto::send_to(socket_, frame.routing_id,
                   proto::ContextAck{.request_id = put->request_id,
                                     .digest = put->digest,
                                     .received = complete ? put->total_size : held.size(),
                                     .complete = complete});
  }

  zmq::context_t context_;
  zmq::socket_t socket_;
  std::string address_;
  std::map<std::string, std::string> contexts_;
};

}  // namespace kiln::worker::testing
