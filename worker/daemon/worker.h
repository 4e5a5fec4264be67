// The worker daemon's event loop (`kiln-worker`, docs/worker.md): connects
// out to the scheduler's worker port and runs the protocol of
// docs/protocol.md, with the assigned jobs run by a JobExecutor.
//
//   WorkerOptions options;
//   options.name = "w1";
//   auto executor = std::make_unique<BuilderExecutor>(
//       BuilderExecutorOptions{.state_dir = "/var/lib/kiln/w1"}, local->builder());
//   // or std::make_unique<FakeBuildExecutor>(FakeBuildOptions{.seconds = 0}) (--fake-build)
//   Worker worker(options, std::move(executor));
//   std::thread signals([&] { wait_for_sigterm(); worker.stop(); });
//   KILN_RETURN_IF_ERROR(worker.run());                  // until stop()
//
// The parts, one file each:
//   scheduler_session.h    the protocol, without a socket: registering (with
//                          retry and backoff), reregister, heartbeats, events
//                          kept while unregistered (log text dropped first
//                          past the bound, the gap noted), recent job-done
//                          resent after a re-registration, assign, cancel-job,
//                          worker-state. Its comment has the details.
//   inventory_reporter.h   the cache inventory: full set in chunks, deltas, digest.
//   job_executor.h         how jobs run: builder_executor.h (real builds, a
//                          thread per job, contexts, timeouts; maintenance.h
//                          prunes the store) or fake_build_executor.h.
//   worker.h (this)        owns the ZeroMQ DEALER socket (routing id = name),
//                          the eventfd job threads wake it with, and the loop
//                          that feeds the session and polls the executor.
//
// Threads: run() is the event loop and the only user of the socket, the
// session and the executor; an executor's own threads hand their events to
// the loop and wake it (see job_executor.h).
//
// stop(): no new work; running jobs are stopped and reported `interrupted`
// ("kiln-worker NAME is shutting down"), so the scheduler runs them again;
// run() returns once their reports are sent (best effort, 2 s linger).
// Errors from run(): kFailedPrecondition when the scheduler refuses the
// registration (an incompatible protocol version: `kiln-worker` exits 2);
// kInvalidArgument for bad options (no name, an executor without what it
// needs); the executor's open() errors.
// Thread safety: stop() may be called from any thread; everything else from
// the thread that calls run().
#pragma once

#include <atomic>
#include <memory>

#include <zmq.hpp>

#include "common/error.h"
#include "common/proto/curve.h"
#include "common/unique_fd.h"
#include "worker/daemon/job_executor.h"
#include "worker/daemon/message_out.h"
#include "worker/daemon/scheduler_session.h"

namespace kiln::worker {

// Who the worker is and how it talks to the scheduler; how it builds is the
// executor's business.
using WorkerOptions = SessionOptions;

class Worker {
 public:
  // The Worker owns `executor` (null: run() fails with kInvalidArgument).
  Worker(WorkerOptions options, std::unique_ptr<JobExecutor> executor);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Status run();
  void stop();

 private:
  // The session's messages, sent on socket_ without blocking.
  class SocketOut final : public MessageOut {
   public:
    explicit SocketOut(std::unique_ptr<zmq::socket_t>& socket) : socket_(socket) {}
    bool send(proto::Type type, std::string_view body) override;

   private:
    std::unique_ptr<zmq::socket_t>& socket_;
  };

  Status connect();
  void receive_messages();
  std::chrono::milliseconds poll_timeout() const;
  void wake();

  WorkerOptions options_;
  std::unique_ptr<JobExecutor> executor_;
  zmq::context_t context_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<proto::HandshakeWatch> watch_;  // before socket_ is reset, after it is made
  std::optional<Error> handshake_fatal_;
  SocketOut out_{socket_};
  std::unique_ptr<SchedulerSession> session_;  // null without an executor
  UniqueFd wake_fd_;
  std::atomic<bool> stopping_{false};
};

}  // namespace kiln::worker
