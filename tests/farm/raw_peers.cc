#include "tests/farm/raw_peers.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <sys/mount.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kiln::testing {

SchedulerProcess::SchedulerProcess(std::string state_dir, std::vector<std::string> extra_args,
                                   std::string worker_listen_host)
    : state_dir_(std::move(state_dir)),
      extra_args_(std::move(extra_args)),
      worker_listen_host_(std::move(worker_listen_host)) {
  // Restarts bind the same ports again: ports no outgoing connection takes.
  const int client_port = free_listen_port();
  do {
    worker_port_ = free_listen_port();
  } while (worker_port_ == client_port);
  client_endpoint_ = "tcp://127.0.0.1:" + std::to_string(client_port);
  worker_endpoint_ = "tcp://127.0.0.1:" + std::to_string(worker_port_);
  start();
}

void SchedulerProcess::start() {
  std::vector<std::string> argv = {KILN_SCHEDULER_BINARY,
                                   "--state-dir",
                                   state_dir_,
                                   "--listen",
                                   client_endpoint_,
                                   "--listen-workers",
                                   "tcp://" + worker_listen_host_ + ":" + std::to_string(worker_port_),
                                   "--http",
                                   "off"};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  child_ = std::make_unique<Child>(argv, state_dir_ + ".log" + std::to_string(starts_++));
  // Ready when a client can say hello.
  bool up = eventually(
      [&] {
        // A scheduler with authentication refuses the keyless probe: it is up all the same.
        auto probe = proto::Client::connect(client_endpoint_, "probe", std::chrono::milliseconds(200));
        return probe.has_value() || probe.error().kind() == ErrorKind::kPermissionDenied;
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(up) << "kiln-scheduler did not come up:\n" << child_->log();
}

void SchedulerProcess::restart() {
  if (child_ && child_->running()) child_->stop();
  start();
}

std::unique_ptr<proto::Client> SchedulerProcess::client(const std::string& name) {
  auto c = proto::Client::connect(client_endpoint_, name);
  EXPECT_TRUE(c) << c.error().to_string();
  return c ? std::move(*c) : nullptr;
}

Result<std::unique_ptr<proto::Client>> SchedulerProcess::client_with(const proto::ClientOptions& options,
                                                                      const std::string& name) {
  return proto::Client::connect(client_endpoint_, name, std::chrono::seconds(5), options);
}

RawWorker::RawWorker(const std::string& endpoint, const std::string& name)
    : socket_(context_, zmq::socket_type::dealer), name_(name) {
  proto::configure_dealer(socket_);
  socket_.set(zmq::sockopt::immediate, 0);  // queue until connected: tests send right away
  socket_.set(zmq::sockopt::routing_id, name);
  socket_.connect(endpoint);
}

RawWorker::RawWorker(const std::string& endpoint, const std::string& name, const proto::CurveClientKeys& keys,
                     const std::string& routing_id)
    : socket_(context_, zmq::socket_type::dealer), name_(name) {
  proto::configure_dealer(socket_);
  socket_.set(zmq::sockopt::immediate, 0);
  proto::configure_curve_client(socket_, keys);
  if (!routing_id.empty()) socket_.set(zmq::sockopt::routing_id, routing_id);
  socket_.connect(endpoint);
}

void RawWorker::send_register(std::uint32_t capacity, std::vector<proto::RunningJob> running,
                              std::uint32_t version, const std::string& pool) {
  proto::Register reg{.protocol_version = version,
                      .name = name_,
                      .pool = pool,
                      .capacity = capacity,
                      .running = std::move(running)};
  reg.stats.disk_free_bytes = 100ull << 30;
  reg.stats.disk_total_bytes = 200ull << 30;
  ASSERT_TRUE(proto::send(socket_, reg));
}

proto::Registered RawWorker::register_worker(std::uint32_t capacity, std::vector<proto::RunningJob> running) {
  send_register(capacity, std::move(running));
  auto r = expect<proto::Registered>();
  EXPECT_TRUE(r) << name_ << " got no registered";
  return r.value_or(proto::Registered{});
}

void RawWorker::heartbeat(std::vector<proto::RunningJob> running) {
  proto::Heartbeat beat{.running = std::move(running)};
  beat.stats.disk_free_bytes = 100ull << 30;
  beat.stats.disk_total_bytes = 200ull << 30;
  proto::send(socket_, beat);
}

void RawWorker::event(proto::Type type, const std::string& job_id, std::uint32_t attempt,
                      const std::string& log, const std::string& outcome, const std::string& result) {
  proto::JobEvent e{
      .type = type, .job_id = job_id, .attempt = attempt, .log = log, .outcome = outcome, .result = result};
  if (type == proto::Type::kJobDone && outcome == "succeeded") {
    e.steps.push_back({.id = std::string(64, 'a'),
                       .description = "(run (shell \"true\"))",
                       .cached = false,
                       .seconds = 0.25});
  }
  proto::send_event(socket_, e);
}

std::optional<proto::Frame> RawWorker::next(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
  auto frame = proto::receive(socket_, false);
  if (!frame) return std::nullopt;
  return *frame;
}

}  // namespace kiln::testing
