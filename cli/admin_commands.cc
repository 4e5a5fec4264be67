// `kiln admin workers|pause|unpause|drain|forget|trace`: the farm's workers
// as the scheduler's client port reports them, the operator's actions on
// one of them, and the farm's recent load as a placement trace. (`kiln admin
// stats` reads the HTTP interface instead: cli/stats_view.cc.)
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/farm_client.h"
#include "cli/format.h"
#include "common/proto/client.h"
#include "common/proto/farm_json.h"
#include "common/trace/placement_trace.h"

namespace kiln::cli {
namespace {

using std::chrono::milliseconds;

struct AdminOptions {
  FarmFlags farm;
  std::string worker;
  bool json = false;
  bool wait = false;
};

void run_workers(const AdminOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto workers = (*client)->call<proto::Workers>(proto::ListWorkers{});
  if (!workers) return fail(workers.error().with_context("listing workers"));
  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& w : workers->workers) list.push_back(proto::worker_to_json(w));
    std::cout << proto::dump_json(list);
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "POOL", "STATE", "RUNNING", "DISK FREE", "ITEMS", "HITS/MISSES", "HEARTBEAT", "LABELS"}};
  for (const auto& w : workers->workers) {
    std::string state = w.state + (w.connected || w.state == "disconnected" ? "" : " (disconnected)");
    if (!w.stats.healthy) state += " (unhealthy)";
    rows.push_back({w.name, w.pool, state,
                    fmt::format("{}/{}{}", w.running.size(), w.capacity,
                                w.running.empty() ? "" : " " + join_or_dash(w.running)),
                    human_bytes(w.stats.disk_free_bytes), std::to_string(w.stats.store_items),
                    fmt::format("{}/{}", w.stats.cache_hits, w.stats.cache_misses),
                    time_text(w.last_heartbeat_ms), join_or_dash(w.labels)});
  }
  print_table(rows);
  if (workers->workers.empty()) std::cout << "(no workers have registered)\n";
}

Result<proto::WorkerInfo> find_worker(proto::Client& client, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(auto workers, client.call<proto::Workers>(proto::ListWorkers{}));
  for (auto& w : workers.workers)
    if (w.name == name) return w;
  return make_error(
      ErrorKind::kNotFound,
      fmt::format("no worker {:?} is known to the scheduler; `kiln admin workers` lists them", name));
}

void run_worker_action(const AdminOptions& o, const std::string& action) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto ok = (*client)->call<proto::Ok>(proto::WorkerAction{.worker = o.worker, .action = action});
  if (!ok) return fail(ok.error().with_context(fmt::format("{} worker {}", action, o.worker)));
  static const std::map<std::string, std::string> done = {{"pause", "paused: it takes no new jobs"},
                                                          {"unpause", "active again"},
                                                          {"drain", "draining: it takes no new jobs"},
                                                          {"forget", "forgotten"}};
  std::cout << fmt::format("{} {}\n", o.worker, done.at(action));
  if (action != "drain" || !o.wait) return;
  bool announced = false;
  for (;;) {
    auto worker = find_worker(**client, o.worker);
    if (!worker) return fail(worker.error().with_context("waiting for worker " + o.worker + " to drain"));
    if (worker->running.empty()) break;
    if (!announced)
      std::cerr << fmt::format("kiln: waiting for {} to finish {}\n", o.worker,
                               join_or_dash(worker->running));
    announced = true;
    std::this_thread::sleep_for(milliseconds(500));
  }
  std::cout << fmt::format("{} drained: it runs nothing\n", o.worker);
}

// ---- admin trace ----------------------------------------------------------

struct TraceOptions {
  FarmFlags farm;
  std::uint32_t limit = 1000;
  std::string out;  // empty: stdout
};

// The farm as a placement trace (docs/placement.md, "Trace format"), for
// kiln-sim to replay: the scheduler's workers, and its jobs (the newest
// `limit` it keeps in memory, oldest first) with their chains and what
// each step cost when a worker built it cold. A step no listed job built
// cold (a base image cached since before) costs 0 s. Jobs without a chain
// (git contexts: the scheduler cannot compute their step ids) are left out.
void run_trace(const TraceOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto workers = (*client)->call<proto::Workers>(proto::ListWorkers{});
  if (!workers) return fail(workers.error().with_context("listing workers"));
  auto jobs = (*client)->call<proto::Jobs>(proto::ListJobs{.limit = o.limit});
  if (!jobs) return fail(jobs.error().with_context("listing jobs"));
  std::vector<proto::JobInfo> full;
  for (auto it = jobs->jobs.rbegin(); it != jobs->jobs.rend(); ++it) {
    auto job = (*client)->call<proto::Job>(proto::GetStatus{.job_id = it->id});
    if (!job) return fail(job.error().with_context("reading job " + it->id));
    full.push_back(std::move(job->job));
  }
  std::map<std::string, double> cold;
  for (const proto::JobInfo& job : full)
    for (const proto::StepInfo& step : job.steps)
      if (!step.cached && step.seconds > 0) cold[step.id] = step.seconds;

  // The workers and the jobs with a chain and a submit time, in the shared
  // format (common/trace/placement_trace.h); times from the first job's.
  trace::Trace farm;
  for (const proto::WorkerInfo& w : workers->workers)
    farm.workers.push_back({.name = w.name, .pool = w.pool, .capacity = w.capacity, .labels = w.labels});
  std::int64_t first = 0;
  for (const proto::JobInfo& job : full)
    if (job.submitted_at_ms > 0 && (first == 0 || job.submitted_at_ms < first)) first = job.submitted_at_ms;
  std::size_t without_chain = 0, unknown_costs = 0;
  for (const proto::JobInfo& job : full) {
    if (job.planned_steps.empty() || job.submitted_at_ms <= 0) {
      ++without_chain;
      continue;
    }
    trace::TraceJob traced{.id = job.id,
                           .submit = static_cast<double>(job.submitted_at_ms - first) / 1000.0,
                           .pool = job.pool,
                           .client = job.client,
                           .urgent = job.urgent,
                           .labels = job.labels,
                           .estimate = job.estimate_seconds};
    for (const std::string& id : job.planned_steps) {
      auto cost = cold.find(id);
      if (cost == cold.end()) ++unknown_costs;
      traced.steps.push_back({.id = id, .seconds = cost == cold.end() ? 0.0 : cost->second});
    }
    farm.jobs.push_back(std::move(traced));
  }
  const std::size_t written = farm.jobs.size();

  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!o.out.empty()) {
    file.open(o.out);
    if (!file)
      return fail(errno_error(fmt::format("cannot write the trace to {}", o.out)).error(), kExitFailed);
    out = &file;
  }
  trace::write_trace(farm, *out,
                     fmt::format("kiln admin trace: {} workers, jobs oldest first", workers->workers.size()));
  out->flush();
  if (!*out)
    return fail(Error(ErrorKind::kIo,
                      fmt::format("writing the trace to {} failed", o.out.empty() ? "stdout" : o.out)));
  std::cerr << fmt::format(
      "kiln: trace of {} job(s) and {} worker(s){}{}{}; replay it with kiln-sim --trace FILE\n", written,
      workers->workers.size(), o.out.empty() ? "" : " written to " + o.out,
      without_chain
          ? fmt::format("; {} job(s) without a chain or submit time left out (git contexts)", without_chain)
          : "",
      unknown_costs ? fmt::format("; {} step(s) no listed job built cold cost 0 s", unknown_costs) : "");
}

}  // namespace

void add_admin_commands(CLI::App& app) {
  auto* admin = app.add_subcommand("admin", "Operate the farm's workers");
  admin->require_subcommand(1);
  auto workers = std::make_shared<AdminOptions>();
  auto* workers_cmd = admin->add_subcommand("workers", "List workers: state, running jobs, disk, cache");
  workers_cmd->add_flag("--json", workers->json, "Print JSON");
  add_farm_flags(workers_cmd, workers->farm);
  workers_cmd->callback([workers] { run_workers(*workers); });

  add_admin_stats_command(*admin);

  auto trace_options = std::make_shared<TraceOptions>();
  auto* trace_cmd = admin->add_subcommand(
      "trace",
      "Write the farm's workers and recent jobs (chains, what each step cost to build) as a placement trace "
      "that kiln-sim --trace replays (docs/placement.md, \"Trace format\")");
  trace_cmd->add_option("--limit", trace_options->limit, "The newest N jobs the scheduler keeps")
      ->capture_default_str();
  trace_cmd->add_option("--out", trace_options->out, "Write to FILE instead of stdout");
  add_farm_flags(trace_cmd, trace_options->farm);
  trace_cmd->callback([trace_options] { run_trace(*trace_options); });

  struct Action {
    const char* name;
    const char* help;
  };
  for (Action action : {Action{"pause", "Stop giving a worker new jobs (its running jobs go on)"},
                        Action{"unpause", "Give a paused or draining worker jobs again"},
                        Action{"drain", "Stop giving a worker new jobs, to take it down when it is idle"},
                        Action{"forget", "Remove a disconnected worker's record"}}) {
    auto options = std::make_shared<AdminOptions>();
    auto* cmd = admin->add_subcommand(action.name, action.help);
    cmd->add_option("worker", options->worker, "Worker name")->required();
    if (std::string(action.name) == "drain")
      cmd->add_flag("--wait", options->wait, "Wait until the worker runs nothing");
    add_farm_flags(cmd, options->farm);
    std::string name = action.name;
    cmd->callback([options, name] { run_worker_action(*options, name); });
  }
}

}  // namespace kiln::cli
