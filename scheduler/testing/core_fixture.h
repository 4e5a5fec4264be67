// The scheduler's core without sockets, for its unit tests: a fake clock,
// the in-memory job database, the real placement policy, and helpers that
// send messages and take one loop turn's replies (scheduler_test.cc,
// output_handlers_test.cc).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "scheduler/memory_job_db.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace kiln::scheduler::testing_support {

inline const std::string kSpec = "((from busybox) (run (shell \"echo hello\")))";

// Decoded replies of one loop turn.
class Replies {
 public:
  explicit Replies(std::vector<Outgoing> out) : out_(std::move(out)) {}

  template <class T>
  std::vector<T> to(const std::string& routing_id) const {
    std::vector<T> found;
    for (const Outgoing& o : out_) {
      if (o.routing_id != routing_id || o.type != T::kType) continue;
      auto decoded = proto::decode<T>(o.body);
      EXPECT_TRUE(decoded) << decoded.error().to_string();
      if (decoded) found.push_back(std::move(*decoded));
    }
    return found;
  }
  template <class T>
  T one(const std::string& routing_id) const {
    auto found = to<T>(routing_id);
    EXPECT_EQ(found.size(), 1u) << "replies of type " << proto::type_name(T::kType) << " to " << routing_id;
    return found.empty() ? T{} : found.front();
  }
  std::size_t size() const { return out_.size(); }

 private:
  std::vector<Outgoing> out_;
};

class SchedulerCore : public ::testing::Test {
 protected:
  SchedulerCore() {
    options_.state_dir = dir_.path();
    options_.lease_ms = 10'000;
    options_.heartbeat_ms = 1'000;
    start();
  }

  // A scheduler on the database's committed data (a restart: whatever was
  // staged and not committed is gone, as after kill -9).
  void start() {
    auto policy = placement::make_policy("kiln", {.low_disk_bytes = options_.low_disk_bytes});
    ASSERT_TRUE(policy) << policy.error().to_string();
    core_.reset();
    core_ = std::make_unique<Scheduler>(options_, std::make_unique<MemoryJobDb>(store_), std::move(*policy),
                                        clock_);
    auto recovered = core_->recover();
    ASSERT_TRUE(recovered) << recovered.error().to_string();
    (void)core_->take_outbox();
  }

  template <class T>
  void send(Port port, const std::string& from, const T& message) {
    core_->handle(port, Incoming{.routing_id = from,
                                 .type = T::kType,
                                 .type_text = std::string(proto::type_name(T::kType)),
                                 .body = proto::encode(message)});
  }
  void send_event(const std::string& worker, const proto::JobEvent& e) {
    core_->handle(Port::kWorkers, Incoming{.routing_id = worker,
                                           .type = e.type,
                                           .type_text = std::string(proto::type_name(e.type)),
                                           .body = proto::encode(e)});
  }
  void event(const std::string& worker, proto::Type type, const std::string& job, std::uint32_t attempt,
             const std::string& outcome = "", const std::string& log = "", const std::string& result = "") {
    proto::JobEvent e{
        .type = type, .job_id = job, .attempt = attempt, .log = log, .outcome = outcome, .result = result};
    core_->handle(Port::kWorkers, Incoming{.routing_id = worker,
                                           .type = type,
                                           .type_text = std::string(proto::type_name(type)),
                                           .body = proto::encode(e)});
  }
  // One loop turn as the daemon runs it: tick, commit, take the replies.
  Replies turn() {
    core_->tick();
    auto committed = core_->commit();
    EXPECT_TRUE(committed) << committed.error().to_string();
    return Replies(core_->take_outbox());
  }

  Replies register_worker(const std::string& name, std::uint32_t capacity = 1,
                          std::vector<proto::RunningJob> running = {}) {
    send(Port::kWorkers, name,
         proto::Register{.name = name, .pool = "linux-x86_64", .capacity = capacity, .running = running});
    return turn();
  }
  void heartbeat(const std::string& name, std::vector<proto::RunningJob> running = {}) {
    send(Port::kWorkers, name, proto::Heartbeat{.running = std::move(running)});
  }
  std::string submit(proto::JobSpec spec = {.spec = kSpec, .spec_name = "hello.spec"}) {
    send(Port::kClients, "client", proto::Submit{.request_id = 1, .job = std::move(spec)});
    core_->tick();
    EXPECT_TRUE(core_->commit());
    auto out = core_->take_outbox();
    pending_ = std::move(out);
    auto submitted = Replies(pending_).to<proto::Submitted>("client");
    EXPECT_EQ(submitted.size(), 1u);
    return submitted.empty() ? "" : submitted.front().job_id;
  }
  // The replies of the last submit's turn (an assign goes out in the same turn).
  Replies last_submit_turn() const { return Replies(pending_); }

  proto::JobInfo status(const std::string& id) {
    send(Port::kClients, "client", proto::GetStatus{.request_id = 9, .job_id = id});
    return turn().one<proto::Job>("client").job;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<MemoryJobStore> store_ = std::make_shared<MemoryJobStore>();
  SchedulerOptions options_;
  std::unique_ptr<Scheduler> core_;
  std::vector<Outgoing> pending_;
};

}  // namespace kiln::scheduler::testing_support
