// kiln-scheduler: the farm's scheduler daemon (docs/scheduler.md). One event
// loop owns all state: it reads messages from the client and worker ROUTER
// sockets, lets the core handle them, commits the database once per turn
// (group commit) and only then sends the replies.
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "common/config.h"
#include "common/log.h"
#include "common/proto/transport.h"
#include "scheduler/daemon.h"

int main(int argc, char** argv) {
  using namespace kiln;
  CLI::App app{
      "kiln-scheduler: the kiln farm's scheduler. Keeps the durable job queue (RocksDB under --state-dir), "
      "places each job on a worker, stores job logs and serves clients (kiln submit/status/logs/...) on "
      "--listen and workers (kiln-worker) on --listen-workers. Stop it with SIGINT or SIGTERM; queued and "
      "running jobs survive a restart (or a kill -9)."};
  app.set_version_flag("--version", "kiln-scheduler 0.1.0");
  scheduler::DaemonOptions options;
  options.core.state_dir = kiln_home() + "/scheduler";
  app.add_option("--state-dir", options.core.state_dir,
                 "Where the database and uploaded contexts live (default KILN_HOME/scheduler; KILN_HOME is "
                 "$KILN_HOME, else ./.kiln)");
  app.add_option("--listen", options.client_endpoint, "ZeroMQ endpoint for clients and admins")
      ->default_val(options.client_endpoint);
  app.add_option("--listen-workers", options.worker_endpoint, "ZeroMQ endpoint for workers")
      ->default_val(options.worker_endpoint);
  app.add_option("--http", options.http_address, "HOST:PORT for /metrics, /v1/ and the dashboard, or \"off\"")
      ->default_val(options.http_address);
  app.add_option("--heartbeat-ms", options.core.heartbeat_ms, "How often workers send heartbeats")
      ->default_val(options.core.heartbeat_ms)
      ->check(CLI::Range(50u, 60000u));
  app.add_option("--lease-ms", options.core.lease_ms,
                 "A worker silent this long loses its jobs to the queue (they run again elsewhere)")
      ->default_val(options.core.lease_ms)
      ->check(CLI::Range(200u, 3600000u));
  app.add_option("--default-timeout", options.core.default_timeout_seconds,
                 "Seconds a job may run when its submitter gave no --timeout")
      ->default_val(options.core.default_timeout_seconds);
  app.add_option("--log-cap-bytes", options.core.log_cap_bytes,
                 "Largest stored log per job; later output is dropped and the truncation marked")
      ->default_val(options.core.log_cap_bytes)
      ->check(CLI::PositiveNumber);
  app.add_option("--max-context-bytes", options.core.max_context_bytes, "Largest uploaded build context")
      ->default_val(options.core.max_context_bytes);
  app.add_option("--max-output-bytes", options.core.max_output_bytes,
                 "Largest output tar a job may send back (`kiln submit --output`); a bigger one fails the job")
      ->default_val(options.core.max_output_bytes)
      ->check(CLI::PositiveNumber);
  app.add_option("--output-store-bytes", options.core.output_store_bytes,
                 "Disk the scheduler gives to jobs' outputs in all (STATE/outputs); the oldest go first")
      ->default_val(options.core.output_store_bytes)
      ->check(CLI::PositiveNumber);
  std::uint32_t output_retention_s = static_cast<std::uint32_t>(options.core.output_retention_ms / 1000);
  app.add_option("--output-retention", output_retention_s,
                 "Seconds a job's outputs are kept for its client to fetch (`kiln submit --output`)")
      ->default_val(output_retention_s)
      ->check(CLI::Range(60u, 365u * 86400u));
  app.add_option("--low-disk-bytes", options.core.low_disk_bytes,
                 "Workers with less free disk than this get no new jobs")
      ->default_val(options.core.low_disk_bytes);
  std::vector<std::string> target_waits;
  app.add_option(
      "--target-wait", target_waits,
      "SECONDS of queue wait every pool should meet, or POOL=SECONDS for one pool (repeatable); the "
      "stats recommend how many workers reach it (default 300)");
  app.add_option("--pool", options.core.default_pool, "Pool of jobs submitted without one")
      ->default_val(options.core.default_pool);
  app.add_option(
         "--placement", options.core.placement,
         "Placement policy: kiln (cache-aware: where the job is expected to finish first), least-loaded, "
         "ocluster-hint or random")
      ->default_val(options.core.placement);
  std::vector<std::string> client_rates;
  app.add_option("--client-rate", client_rates,
                 "POOL/CLIENT=RATE, or CLIENT=RATE for the default pool: the client's fair-share weight when "
                 "the pool is "
                 "full (default 1; repeatable)");
  app.add_option("--key", options.key_file,
                 "This scheduler's CurveZMQ key (NAME.key from `kiln keygen`); with --auth-dir, every "
                 "connection is encrypted and authenticated (docs/security.md)");
  app.add_option("--auth-dir", options.auth_dir,
                 "Directory of authorised public keys: clients/NAME.pub, workers/NAME.pub, admins/NAME.pub; "
                 "changes take effect within seconds, without a restart");
  app.add_flag("--insecure", options.insecure,
               "Allow listening on a network address without --key/--auth-dir (and HTTP without a token): "
               "anyone who reaches the ports controls the farm");
  app.add_option(
      "--http-token-file", options.http_token_file,
      "File whose first line is the bearer token HTTP requests must carry (Authorization: Bearer)");
  app.add_flag("--http-public-read", options.http_public_read,
               "With --http-token-file: serve the read-only endpoints without the token");
  app.add_option("--history-interval", options.history_interval_seconds,
                 "Seconds between the points of the dashboard's charts (/v1/stats/history)")
      ->default_val(options.history_interval_seconds)
      ->check(CLI::Range(1u, 3600u));
  app.add_option("--history-hours", options.history_hours, "Hours of history the charts keep")
      ->default_val(options.history_hours)
      ->check(CLI::Range(0.1, 168.0));
  app.add_flag("--sync", options.sync,
               "fsync the database log on every commit (survives power loss, not only a killed process)");
  LogOptions log_options = log_options_from_env();
  app.add_option("--log-level", log_options.level,
                 std::string("Log level: ") + kLogLevels + " (also KILN_LOG_LEVEL)");
  app.add_flag("--log-json", log_options.json, "Log JSON lines to stderr (also KILN_LOG_JSON=1)");
  CLI11_PARSE(app, argc, argv);
  options.core.output_retention_ms = std::int64_t{output_retention_s} * 1000;
  for (const std::string& wait : target_waits) {
    auto eq = wait.rfind('=');
    double value = 0;
    try {
      std::size_t used = 0;
      std::string number = eq == std::string::npos ? wait : wait.substr(eq + 1);
      value = std::stod(number, &used);
      if (used != number.size()) value = 0;
    } catch (const std::exception&) {
    }
    if (eq == 0 || !(value > 0) || !std::isfinite(value)) {
      std::cerr << "kiln-scheduler: --target-wait " << wait
                << ": expected SECONDS or POOL=SECONDS with positive seconds, e.g. 300 or linux-arm64=120\n";
      return 2;
    }
    if (eq == std::string::npos) {
      options.core.target_wait_seconds = value;
    } else {
      options.pool_target_waits[wait.substr(0, eq)] = value;
    }
  }
  for (const std::string& rate : client_rates) {
    auto eq = rate.rfind('=');
    auto slash = rate.find('/');
    double value = 0;
    try {
      value = eq == std::string::npos ? 0 : std::stod(rate.substr(eq + 1));
    } catch (const std::exception&) {
    }
    if (eq == std::string::npos || eq == 0 || value <= 0) {
      std::cerr << "kiln-scheduler: --client-rate " << rate
                << ": expected [POOL/]CLIENT=RATE with a positive RATE, e.g. ci-main=2\n";
      return 2;
    }
    std::string pool =
        slash != std::string::npos && slash < eq ? rate.substr(0, slash) : options.core.default_pool;
    std::string client = slash != std::string::npos && slash < eq ? rate.substr(slash + 1, eq - slash - 1)
                                                                  : rate.substr(0, eq);
    options.core.client_rates.emplace_back(pool, client, value);
  }
  if (auto s = init_logging(log_options); !s) {
    std::cerr << "kiln-scheduler: " << s.error().to_string() << "\n";
    return 2;
  }

  auto daemon = scheduler::Daemon::create(options);
  if (!daemon) {
    std::cerr << "kiln-scheduler: " << daemon.error().to_string() << "\n";
    return 1;
  }
  auto status = (*daemon)->run();
  if (!status) {
    std::cerr << "kiln-scheduler: " << status.error().to_string() << "\n";
    return 1;
  }
  return 0;
}
