// `kiln logs`, `status`, `cancel` and `jobs`: one job, or the list of them,
// as the scheduler's client port answers. --json prints the job form that the
// HTTP API serves too (common/proto/farm_json.h, docs/api.md).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/farm_client.h"
#include "cli/follow.h"
#include "cli/job_outputs.h"
#include "cli/format.h"
#include "common/proto/client.h"
#include "common/proto/farm_json.h"

namespace kiln::cli {
namespace {

struct JobOptions {
  FarmFlags farm;
  std::string job_id;
  bool follow = false;
  std::uint64_t offset = 0;
  bool json = false;
};

void run_logs(const JobOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  if (o.follow) {
    follow_and_report(*client, o.farm, o.job_id, o.offset, /*end_line=*/false);
    return;
  }
  std::uint64_t offset = o.offset;
  for (;;) {
    auto log = (*client)->call<proto::Log>(
        proto::ReadLog{.job_id = o.job_id, .offset = offset, .max_bytes = 1 << 20});
    if (!log) return fail(log.error().with_context("reading the log of job " + o.job_id));
    std::fwrite(log->data.data(), 1, log->data.size(), stdout);
    offset = log->offset + log->data.size();
    if (log->complete || log->data.empty()) break;
  }
  std::fflush(stdout);
}

std::string context_text(const proto::ContextRef& c) {
  switch (c.kind) {
    case proto::ContextRef::Kind::kTar: return fmt::format("{} ({})", c.digest, human_bytes(c.size));
    case proto::ContextRef::Kind::kGit: return fmt::format("git {} {}", c.git_repo, c.git_commit);
    case proto::ContextRef::Kind::kNone: break;
  }
  return "none";
}

void print_status(const proto::JobInfo& job) {
  std::cout << fmt::format("job:       {}\n", job.id);
  std::cout << fmt::format("state:     {}\n", job.state);
  if (!job.error.empty()) std::cout << fmt::format("error:     {}\n", indent_lines(job.error, "           "));
  std::cout << fmt::format("spec:      {}\n", job.spec_name.empty() ? "-" : job.spec_name);
  std::cout << fmt::format("context:   {}\n", context_text(job.context));
  std::cout << fmt::format("pool:      {}{}\n", job.pool, job.urgent ? " (urgent)" : "");
  std::cout << fmt::format("client:    {}\n", job.client);
  if (!job.labels.empty()) std::cout << fmt::format("labels:    {}\n", join_or_dash(job.labels));
  if (!job.secret_ids.empty()) std::cout << fmt::format("secrets:   {}\n", join_or_dash(job.secret_ids));
  if (job.timeout_seconds > 0) std::cout << fmt::format("timeout:   {} s\n", job.timeout_seconds);
  if (!job.pull.empty()) std::cout << fmt::format("pull:      {}\n", job.pull);
  if (job.estimate_seconds > 0)
    std::cout << fmt::format("estimate:  {:g} s (the client's, for a cold build)\n", job.estimate_seconds);
  if (job.cancel_requested && !is_final(job.state))
    std::cout << "cancel:    requested; waiting for the worker to stop it\n";
  std::cout << fmt::format("worker:    {}\n", job.worker.empty() ? "-" : job.worker);
  std::cout << fmt::format("attempt:   {}\n", job.attempt);
  std::cout << fmt::format("submitted: {}\n", time_text(job.submitted_at_ms));
  std::cout << fmt::format("started:   {}{}\n", time_text(job.started_at_ms),
                           seconds_between(job.submitted_at_ms, job.started_at_ms));
  std::cout << fmt::format("finished:  {}{}\n", time_text(job.finished_at_ms),
                           seconds_between(job.started_at_ms, job.finished_at_ms));
  std::cout << fmt::format("result:    {}\n", job.result.empty() ? "-" : job.result);
  if (!job.push.empty())
    std::cout << fmt::format("pushed:    {}\n", job.pushed.empty() ? "- (to " + job.push + ")" : job.pushed);
  if (!job.outputs.empty()) {
    std::cout << "outputs:\n";
    for (const std::string& src : job.outputs) {
      auto it = std::find_if(job.output_files.begin(), job.output_files.end(),
                             [&](const proto::Output& o) { return o.src == src; });
      std::cout << (it == job.output_files.end()
                        ? fmt::format("  {}  -\n", src)
                        : fmt::format("  {}  {} entries, {}  {}\n", src, it->entries, human_bytes(it->size),
                                      it->digest));
    }
  }
  std::cout << fmt::format("log:       {} (kiln logs {})\n", human_bytes(job.log_bytes), job.id);
  if (!job.steps.empty()) {
    std::cout << "steps:\n";
    for (const auto& step : job.steps) {
      std::cout << fmt::format("  {:.12}  {:>7}  {}\n", step.id,
                               step.cached ? "cached" : fmt::format("{:.1f}s", step.seconds),
                               step.description);
      if (!step.image.empty()) std::cout << fmt::format("  {:12}  {:>7}  is {}\n", "", "", step.image);
    }
  }
  if (job.attempts.size() > 1) {
    std::cout << "attempts:\n";
    for (const auto& a : job.attempts)
      std::cout << fmt::format("  #{} on {} at {}: {}\n", a.number, a.worker, time_text(a.assigned_at_ms),
                               a.outcome.empty() ? "-" : a.outcome);
  }
}

void run_status(const JobOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto job = (*client)->call<proto::Job>(proto::GetStatus{.job_id = o.job_id});
  if (!job) return fail(job.error().with_context("reading the status of job " + o.job_id));
  if (o.json) {
    std::cout << proto::dump_json(proto::job_to_json(job->job, proto::JobJsonDetail::kFull));
  } else {
    print_status(job->job);
  }
}

void run_cancel(const JobOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto ok = (*client)->call<proto::Ok>(proto::CancelJob{.job_id = o.job_id});
  if (!ok) return fail(ok.error().with_context("cancelling job " + o.job_id));
  auto job = (*client)->call<proto::Job>(proto::GetStatus{.job_id = o.job_id});
  if (job && job->job.state == "cancelled") {
    std::cout << fmt::format("{} cancelled\n", o.job_id);
  } else {
    std::cout << fmt::format("{}: cancel requested; its worker stops it (`kiln status {}` shows when)\n",
                             o.job_id, o.job_id);
  }
}

struct OutputOptions {
  FarmFlags farm;
  std::string job_id;
  std::vector<std::string> outputs;
};

void run_output(const OutputOptions& o) {
  auto wanted = parse_output_flags(o.outputs);
  if (!wanted) return fail(wanted.error(), kExitUsage);
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto job = (*client)->call<proto::Job>(proto::GetStatus{.job_id = o.job_id});
  if (!job) return fail(job.error().with_context("reading the status of job " + o.job_id));
  if (auto fetched = fetch_outputs(**client, job->job, *wanted, std::cerr); !fetched) fail(fetched.error());
}

struct JobsOptions {
  FarmFlags farm;
  std::vector<std::string> states;
  std::uint32_t limit = 20;
  bool json = false;
};

void run_jobs(const JobsOptions& o) {
  for (const std::string& state : o.states)
    if (!job_states().contains(state))
      return fail(
          Error(ErrorKind::kInvalidArgument,
                fmt::format("--state {:?}: expected one of queued, assigned, running, succeeded, failed, "
                            "cancelled",
                            state)),
          kExitUsage);
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto jobs = (*client)->call<proto::Jobs>(proto::ListJobs{.states = o.states, .limit = o.limit});
  if (!jobs) return fail(jobs.error().with_context("listing jobs"));
  if (o.json) {
    // The scheduler lists jobs without their spec and steps: the list form.
    nlohmann::json list = nlohmann::json::array();
    for (const auto& job : jobs->jobs) list.push_back(proto::job_to_json(job, proto::JobJsonDetail::kList));
    std::cout << proto::dump_json({{"jobs", list}, {"total", jobs->total}});
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "POOL", "CLIENT", "WORKER", "SUBMITTED", "TOOK", "SPEC"}};
  for (const auto& job : jobs->jobs) {
    std::string took = seconds_between(job.started_at_ms, job.finished_at_ms);
    if (took.size() > 3) took = took.substr(2, took.size() - 3);  // " (1.2 s)" -> "1.2 s"
    rows.push_back({job.id, job.state + (job.urgent ? "!" : ""), job.pool, job.client,
                    job.worker.empty() ? "-" : job.worker, time_text(job.submitted_at_ms),
                    took.empty() ? "-" : took, job.spec_name.empty() ? "-" : job.spec_name});
  }
  print_table(rows);
  if (jobs->total > jobs->jobs.size())
    std::cout << fmt::format("({} of {} jobs; --limit N shows more)\n", jobs->jobs.size(), jobs->total);
}

}  // namespace

void add_job_commands(CLI::App& app) {
  auto logs = std::make_shared<JobOptions>();
  auto* logs_cmd =
      app.add_subcommand("logs", "Print a job's log (from --offset bytes); --follow streams it live");
  logs_cmd->add_option("job", logs->job_id, "Job id")->required();
  logs_cmd->add_flag("--follow", logs->follow, "Stream until the job ends; exit 0 if it succeeded, else 1");
  logs_cmd->add_option("--offset", logs->offset, "Start at this byte of the log")->capture_default_str();
  add_farm_flags(logs_cmd, logs->farm);
  logs_cmd->callback([logs] { run_logs(*logs); });

  auto status = std::make_shared<JobOptions>();
  auto* status_cmd = app.add_subcommand("status", "Show a job: state, worker, times, result and its steps");
  status_cmd->add_option("job", status->job_id, "Job id")->required();
  status_cmd->add_flag("--json", status->json, "Print JSON");
  add_farm_flags(status_cmd, status->farm);
  status_cmd->callback([status] { run_status(*status); });

  auto cancel = std::make_shared<JobOptions>();
  auto* cancel_cmd = app.add_subcommand("cancel", "Cancel a queued or running job");
  cancel_cmd->add_option("job", cancel->job_id, "Job id")->required();
  add_farm_flags(cancel_cmd, cancel->farm);
  cancel_cmd->callback([cancel] { run_cancel(*cancel); });

  auto output = std::make_shared<OutputOptions>();
  auto* output_cmd = app.add_subcommand(
      "output", "Copy outputs of a succeeded job (submitted with --output SRC:...) into directories here");
  output_cmd->add_option("job", output->job_id, "Job id")->required();
  output_cmd
      ->add_option("outputs", output->outputs,
                   "SRC:DESTDIR: the job's output SRC into DESTDIR (created if missing); repeatable. The "
                   "scheduler keeps outputs for its --output-retention (24 h by default)")
      ->required();
  add_farm_flags(output_cmd, output->farm);
  output_cmd->callback([output] { run_output(*output); });

  auto jobs = std::make_shared<JobsOptions>();
  auto* jobs_cmd = app.add_subcommand("jobs", "List jobs, newest first");
  jobs_cmd->add_option(
      "--state", jobs->states,
      "Only jobs in this state: queued, assigned, running, succeeded, failed, cancelled (repeatable)");
  jobs_cmd->add_option("--limit", jobs->limit, "At most N jobs")->capture_default_str();
  jobs_cmd->add_flag("--json", jobs->json, "Print JSON");
  add_farm_flags(jobs_cmd, jobs->farm);
  jobs_cmd->callback([jobs] { run_jobs(*jobs); });
}

}  // namespace kiln::cli
