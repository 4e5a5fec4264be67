// The scheduler daemon: ZeroMQ sockets and the event loop around the core
// (scheduler.h), plus the HTTP side (http/).
//
//   KILN_ASSIGN_OR_RETURN(auto daemon, Daemon::create(options));
//   KILN_RETURN_IF_ERROR(daemon->run());     // until SIGINT/SIGTERM or stop()
//
// The loop: wait for messages (or 20 ms), hand each to the core (at most a
// bounded batch per socket per turn so neither port starves the other),
// tick, commit the database once, then send every reply without blocking.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/error.h"
#include "scheduler/scheduler.h"

namespace kiln::scheduler {

struct DaemonOptions {
  SchedulerOptions core;
  std::string client_endpoint = "tcp://127.0.0.1:7800";
  std::string worker_endpoint = "tcp://127.0.0.1:7801";
  std::string http_address = "127.0.0.1:7880";  // "off": no HTTP
  // Target queue waits of named pools (the others: core.target_wait_seconds).
  std::map<std::string, double> pool_target_waits;
  bool sync = false;
  bool handle_signals = true;  // SIGINT/SIGTERM stop run()
  // CurveZMQ (docs/security.md): the scheduler's own key file (NAME.key) and
  // the directory of authorised public keys (clients/, workers/, admins/).
  // Both or neither.
  std::string key_file;
  std::string auth_dir;
  std::chrono::milliseconds auth_reload{2000};
  // Listen on a network address without authentication (a warning at every start).
  bool insecure = false;
  // HTTP: a file holding the bearer token every request must carry
  // (Authorization: Bearer TOKEN); `http_public_read` serves GETs without it.
  std::string http_token_file;
  bool http_public_read = false;
  // The dashboard's history (/v1/stats/history): a point every interval,
  // kept for `history_hours`.
  std::uint32_t history_interval_seconds = 60;
  double history_hours = 6;
};

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> create(const DaemonOptions& options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  Status run();
  void stop() { stop_.store(true); }

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace kiln::scheduler
