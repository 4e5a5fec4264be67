// `kiln admin stats`: the farm's figures as the dashboard shows them, read
// from the scheduler's HTTP interface (/v1/stats, docs/api.md) rather than
// its client port: per pool the queue, backlog, expected wait and workers
// wanted; per worker disk, cache and running jobs; per client the share.
// The HTTP address is --http, else $KILN_SCHEDULER_HTTP, else the
// scheduler's host with its client port + 80; read with cli/http_get.h.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/farm_client.h"
#include "cli/format.h"
#include "cli/http_get.h"
#include "common/fs.h"

namespace kiln::cli {
namespace {

struct StatsOptions {
  FarmFlags farm;
  std::string http;  // empty: $KILN_SCHEDULER_HTTP, else from the scheduler's address
  std::string token_file;  // empty: $KILN_HTTP_TOKEN_FILE, else no token
  bool json = false;
};

// Where the scheduler's HTTP interface listens.
struct HttpAddress {
  std::string host;
  int port = 0;

  std::string url(const std::string& path) const {
    bool ipv6 = host.find(':') != std::string::npos;
    return fmt::format("http://{}{}{}:{}{}", ipv6 ? "[" : "", host, ipv6 ? "]" : "", port, path);
  }
};

// Splits "HOST:PORT" ("[::1]:PORT" for IPv6) after an optional scheme and
// before an optional trailing slash. `origin` names where the text came from.
Result<HttpAddress> parse_host_port(std::string text, const std::string& scheme, const std::string& origin) {
  const std::string original = text;
  if (text.starts_with(scheme)) text.erase(0, scheme.size());
  while (!text.empty() && text.back() == '/') text.pop_back();
  HttpAddress address;
  std::string port;
  if (text.starts_with("[")) {
    std::size_t close = text.find(']');
    if (close != std::string::npos && close + 1 < text.size() && text[close + 1] == ':') {
      address.host = text.substr(1, close - 1);
      port = text.substr(close + 2);
    }
  } else if (std::size_t colon = text.rfind(':'); colon != std::string::npos) {
    address.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  int value = 0;
  bool digits =
      !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  if (digits) value = std::stoi(port);
  if (address.host.empty() || !digits || value < 1 || value > 65535)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} {:?}: expected HOST:PORT, e.g. 127.0.0.1:7880", origin, original));
  address.port = value;
  return address;
}

// --http, else $KILN_SCHEDULER_HTTP, else the scheduler's host with its
// client port + 80 (the default 7800 -> 7880 pairing, which `kiln up --port P`
// keeps).
Result<HttpAddress> stats_http_address(const StatsOptions& o) {
  if (!o.http.empty()) return parse_host_port(o.http, "http://", "--http");
  if (const char* env = std::getenv("KILN_SCHEDULER_HTTP"); env != nullptr && *env != '\0')
    return parse_host_port(env, "http://", "KILN_SCHEDULER_HTTP");
  const std::string scheduler = o.farm.address();
  if (!scheduler.starts_with("tcp://"))
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("the scheduler address {:?} has no TCP port to derive the HTTP address from; "
                    "pass --http HOST:PORT (or set KILN_SCHEDULER_HTTP)",
                    scheduler));
  KILN_ASSIGN_OR_RETURN(HttpAddress address, parse_host_port(scheduler, "tcp://", "scheduler address"));
  if (address.port + 80 > 65535)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the scheduler address {:?} leaves no room for its HTTP port (port + 80); "
                                  "pass --http HOST:PORT",
                                  scheduler));
  address.port += 80;
  return address;
}

// GET /v1/stats: the body as served, or an error that says how to reach the
// scheduler's HTTP interface.
Result<std::string> fetch_stats(const HttpAddress& address, const std::string& token) {
  const std::string url = address.url("/v1/stats");
  auto res = http_get(address.host, address.port, "/v1/stats", {.bearer_token = token});
  if (!res)
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format(
            "no answer from the scheduler's HTTP interface at {} ({}); is kiln-scheduler running there "
            "with --http on? (set --http HOST:PORT or KILN_SCHEDULER_HTTP to reach another; the default "
            "is the scheduler's host with its client port + 80)",
            url, res.error().message()));
  if (res->status != 200) {
    // The API answers errors as {"error": {"kind", "message"}}.
    auto body = nlohmann::json::parse(res->body, nullptr, false);
    std::string message = res->body.substr(0, 200);
    if (body.is_object() && body.contains("error") && body["error"].is_object() &&
        body["error"].contains("message") && body["error"]["message"].is_string())
      message = body["error"]["message"].get<std::string>();
    return make_error(res->status == 503 ? ErrorKind::kUnavailable : ErrorKind::kInternal,
                      fmt::format("GET {} answered HTTP {}: {}", url, res->status, message));
  }
  return res->body;
}

// Tolerant readers of the stats document: a missing or mistyped field reads
// as unknown rather than throwing, so an older or newer scheduler still gets
// a summary.
const nlohmann::json& field(const nlohmann::json& object, const char* key) {
  static const nlohmann::json null;
  if (!object.is_object()) return null;
  auto it = object.find(key);
  return it == object.end() ? null : *it;
}

std::optional<double> number_field(const nlohmann::json& object, const char* key) {
  const nlohmann::json& value = field(object, key);
  if (!value.is_number()) return std::nullopt;
  return value.get<double>();
}

std::int64_t count_field(const nlohmann::json& object, const char* key) {
  return static_cast<std::int64_t>(number_field(object, key).value_or(0));
}

std::string text_field(const nlohmann::json& object, const char* key, const std::string& fallback = "-") {
  const nlohmann::json& value = field(object, key);
  return value.is_string() ? value.get<std::string>() : fallback;
}

void print_pool(const nlohmann::json& pool) {
  const nlohmann::json& queued = field(pool, "queued");
  const nlohmann::json& workers = field(pool, "workers");
  std::cout << fmt::format("pool {}\n", text_field(pool, "name"));
  std::cout << fmt::format("  queued          {} ({} urgent, {} normal)\n", count_field(queued, "total"),
                           count_field(queued, "urgent"), count_field(queued, "normal"));
  std::cout << fmt::format("  running         {} on {} slots\n", count_field(pool, "running_jobs"),
                           count_field(pool, "capacity_slots"));
  std::optional<double> target = number_field(pool, "target_wait_seconds");
  std::optional<double> wait = number_field(pool, "expected_wait_seconds");
  double backlog = number_field(pool, "backlog_seconds").value_or(0);
  std::string target_text = target ? rounded_duration(*target) : "-";
  std::string wait_text = wait          ? rounded_duration(*wait)
                          : backlog > 0 ? "unknown: no worker accepts jobs"
                                        : "-";
  std::cout << fmt::format("  backlog         {}; expected wait {} (target {})\n", rounded_duration(backlog),
                           wait_text, target_text);
  std::int64_t accepting = count_field(workers, "accepting");
  std::cout << fmt::format(
      "  workers         {} connected ({} active, {} paused, {} draining), {} accepting, {} known\n",
      count_field(workers, "connected"), count_field(workers, "active"), count_field(workers, "paused"),
      count_field(workers, "draining"), accepting, count_field(workers, "known"));
  std::optional<double> hit_rate = number_field(pool, "cache_hit_rate");
  std::cout << fmt::format("  cache hit rate  {}{}\n", percent_text(hit_rate),
                           hit_rate ? fmt::format(" ({} hits, {} misses)", count_field(pool, "cache_hits"),
                                                  count_field(pool, "cache_misses"))
                                    : " (no lookups yet)");
  std::int64_t wanted = count_field(pool, "workers_wanted");
  std::string advice = wanted > accepting ? fmt::format("ADD {}", wanted - accepting) : "enough";
  std::cout << fmt::format("  WORKERS WANTED  {} to meet the {} target wait; {} accepting: {}\n", wanted,
                           target_text, accepting, advice);
  const nlohmann::json& warnings = field(pool, "low_disk_warnings");
  if (warnings.is_array())
    for (const nlohmann::json& warning : warnings)
      if (warning.is_string()) std::cout << fmt::format("  LOW DISK        {}\n", warning.get<std::string>());
}

void print_workers(const nlohmann::json& workers) {
  std::vector<std::vector<std::string>> rows = {
      {"WORKER", "POOL", "STATE", "HEALTH", "RUNNING", "DISK FREE", "ITEMS", "HITS/MISSES", "HEARTBEAT"}};
  for (const nlohmann::json& w : workers) {
    std::vector<std::string> running;
    if (const nlohmann::json& ids = field(w, "running"); ids.is_array())
      for (const nlohmann::json& id : ids)
        if (id.is_string()) running.push_back(id.get<std::string>());
    std::string disk = "-";  // a worker reporting no disk size (--fake-build) has no disk figures
    if (count_field(w, "disk_total_bytes") > 0) {
      disk = human_bytes(static_cast<std::uint64_t>(count_field(w, "disk_free_bytes")));
      if (auto ratio = number_field(w, "disk_free_ratio")) disk += fmt::format(" ({})", percent_text(ratio));
    }
    std::optional<double> age = number_field(w, "heartbeat_age_seconds");
    rows.push_back({text_field(w, "name"), text_field(w, "pool"), text_field(w, "state"),
                    text_field(w, "health"),
                    fmt::format("{}/{}{}", running.size(), count_field(w, "capacity"),
                                running.empty() ? "" : " " + join_or_dash(running)),
                    disk,
                    fmt::format("{} ({})", count_field(w, "store_items"),
                                human_bytes(static_cast<std::uint64_t>(count_field(w, "store_bytes")))),
                    fmt::format("{}/{}", count_field(w, "cache_hits"), count_field(w, "cache_misses")),
                    age ? fmt::format("{:.1f} s ago", *age) : "never"});
  }
  print_table(rows);
}

void print_clients(const nlohmann::json& clients) {
  std::vector<std::vector<std::string>> rows = {{"CLIENT", "SUBMITTED", "RUNNING", "WAITING", "SHARE"}};
  for (const nlohmann::json& c : clients)
    rows.push_back({text_field(c, "name"), std::to_string(count_field(c, "submitted")),
                    std::to_string(count_field(c, "running")), std::to_string(count_field(c, "waiting")),
                    percent_text(number_field(c, "share"))});
  print_table(rows);
}

void print_stats(const nlohmann::json& stats, const HttpAddress& address) {
  const nlohmann::json& scheduler = field(stats, "scheduler");
  std::optional<double> now = number_field(scheduler, "now_ms");
  std::optional<double> started = number_field(scheduler, "started_at_ms");
  std::cout << fmt::format("scheduler {} at {} (placement {}{})\n", text_field(scheduler, "id"),
                           address.url("/"), text_field(scheduler, "placement_policy"),
                           now && started ? ", up " + rounded_duration((*now - *started) / 1000) : "");
  const nlohmann::json& by_state = field(stats, "jobs_by_state");
  std::vector<std::string> counts;
  for (const char* state : {"queued", "assigned", "running", "succeeded", "failed", "cancelled"})
    counts.push_back(fmt::format("{} {}", count_field(by_state, state), state));
  std::cout << fmt::format("jobs: {}\n", fmt::join(counts, ", "));

  const nlohmann::json& pools = field(stats, "pools");
  const nlohmann::json& workers = field(stats, "workers");
  const nlohmann::json& clients = field(stats, "clients");
  std::cout << "\n";
  if (pools.is_array() && !pools.empty()) {
    for (const nlohmann::json& pool : pools) print_pool(pool);
  } else {
    std::cout << "(no pools: no worker has registered and no job was submitted)\n";
  }
  std::cout << "\n";
  if (workers.is_array() && !workers.empty()) {
    print_workers(workers);
  } else {
    std::cout << "(no workers have registered)\n";
  }
  std::cout << "\n";
  if (clients.is_array() && !clients.empty()) {
    print_clients(clients);
  } else {
    std::cout << "(no clients have submitted jobs)\n";
  }
}

void run_stats(const StatsOptions& o) {
  auto address = stats_http_address(o);
  if (!address) return fail(address.error(), kExitUsage);
  std::string token_file = o.token_file;
  if (const char* env = std::getenv("KILN_HTTP_TOKEN_FILE"); token_file.empty() && env != nullptr)
    token_file = env;
  std::string token;
  if (!token_file.empty()) {
    auto text = read_file(token_file, 64 * 1024);
    if (!text) return fail(Error(ErrorKind::kInvalidArgument,
                                 fmt::format("cannot read the HTTP token file {}: {}", token_file,
                                             text.error().message())),
                           kExitUsage);
    token = text->substr(0, text->find_first_of("\r\n"));
  }
  auto body = fetch_stats(*address, token);
  if (!body) return fail(body.error());
  if (o.json) {
    std::cout << *body;
    if (body->empty() || body->back() != '\n') std::cout << "\n";
    return;
  }
  auto stats = nlohmann::json::parse(*body, nullptr, false);
  if (!stats.is_object())
    return fail(
        Error(ErrorKind::kInternal, fmt::format("{} did not answer a JSON object; is that a kiln-scheduler?",
                                                address->url("/v1/stats"))));
  print_stats(stats, *address);
}

}  // namespace

void add_admin_stats_command(CLI::App& admin) {
  auto stats = std::make_shared<StatsOptions>();
  auto* stats_cmd = admin.add_subcommand(
      "stats",
      "Show the farm's figures from the scheduler's HTTP /v1/stats: per pool queue, backlog, workers and "
      "workers wanted; per worker disk, cache and running jobs; per client share");
  stats_cmd->add_flag("--json", stats->json, "Print the /v1/stats JSON as the scheduler serves it");
  stats_cmd->add_option("--http", stats->http,
                        "The scheduler's HTTP address HOST:PORT (default $KILN_SCHEDULER_HTTP, else the "
                        "scheduler's host with its client port + 80: 7800 -> 7880)");
  stats_cmd->add_option("--http-token-file", stats->token_file,
                        "File whose first line is the scheduler's HTTP bearer token, for a scheduler started "
                        "with --http-token-file (default $KILN_HTTP_TOKEN_FILE)");
  stats_cmd->add_option("--scheduler", stats->farm.scheduler,
                        "Scheduler's client address, whose host (and port + 80) give the HTTP address when "
                        "neither --http nor $KILN_SCHEDULER_HTTP is set");
  stats_cmd->callback([stats] { run_stats(*stats); });
}

}  // namespace kiln::cli
