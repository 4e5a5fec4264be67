// `kiln submit`, `logs`, `status`, `cancel`, `jobs` and `kiln admin
// workers|pause|unpause|drain|forget|stats`: the farm seen from a user's or an
// operator's terminal, through the scheduler's client port (farm protocol,
// common/proto/client.h). The scheduler is --scheduler, else $KILN_SCHEDULER,
// else tcp://127.0.0.1:7800; the client name is --client, else $KILN_CLIENT,
// else USER@HOSTNAME. `kiln admin stats` alone reads the scheduler's HTTP
// interface instead (/v1/stats, docs/api.md): --http, else
// $KILN_SCHEDULER_HTTP, else the scheduler's host with its client port + 80.
//
// Exit codes: 0 done (a followed job succeeded), 1 the operation failed (the
// scheduler is unreachable or refused, the followed job failed or was
// cancelled), 2 usage errors.
#include <CLI/CLI.hpp>

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/context_tar.h"
#include "common/proto/client.h"
#include "common/sha256.h"
#include "common/spec/spec.h"

namespace kiln::cli {
namespace {

using Json = nlohmann::ordered_json;
using std::chrono::milliseconds;

void report(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

// Reports `e` and records the exit code it deserves: invalid flags are usage
// errors, everything else (the scheduler's answers included) a failure.
void fail(const Error& e, int code = kExitFailed) {
  report(e);
  set_exit(code);
}

constexpr std::size_t kChunkBytes = 1 << 20;
// How long a follow keeps retrying while the scheduler cannot be reached.
constexpr auto kUnreachableBudget = std::chrono::seconds(60);
constexpr std::uint32_t kFollowWaitMs = 10'000;

const std::set<std::string>& job_states() {
  static const std::set<std::string> states = {"queued",    "assigned", "running",
                                               "succeeded", "failed",   "cancelled"};
  return states;
}

bool is_final(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

void add_farm_flags(CLI::App* cmd, FarmFlags& flags) {
  cmd->add_option("--scheduler", flags.scheduler,
                  "Scheduler's client address (default $KILN_SCHEDULER, else tcp://127.0.0.1:7800)");
  cmd->add_option("--client", flags.client,
                  "Client name the scheduler records (default $KILN_CLIENT, else USER@HOST)");
}

// "2026-11-30T00:12:03Z" for milliseconds since the epoch (0: unknown).
std::string utc_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

Json time_or_null(std::int64_t ms) {
  return ms > 0 ? Json(utc_time(ms)) : Json(nullptr);
}

std::string human_bytes(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

// Left-aligned columns sized to their widest cell.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], widths[i]) : row[i];
    }
    std::cout << line << "\n";
  }
}

Result<std::string> read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error(fmt::format("cannot read {} {}", what, path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string join(const std::vector<std::string>& items) {
  return items.empty() ? "-" : fmt::format("{}", fmt::join(items, ","));
}

// ---- follow -------------------------------------------------------------

// What follow_log reached: the log's end offset, and whether the last byte
// written was a newline (or nothing was written).
struct FollowResult {
  std::uint64_t offset = 0;
  bool ends_with_newline = true;
};

// Ctrl-C while following stops the command, not the job: say so on the way
// out. The text is prepared beforehand; the handler only writes and exits.
char g_interrupt_note[512];

void note_and_exit(int) {
  (void)!::write(2, g_interrupt_note, std::strlen(g_interrupt_note));
  ::_exit(130);
}

void explain_interrupts_while_following(const std::string& job_id) {
  std::snprintf(
      g_interrupt_note, sizeof g_interrupt_note,
      "\nkiln: stopped following job %s; it goes on (`kiln logs %s --follow` resumes, `kiln cancel %s` "
      "stops it)\n",
      job_id.c_str(), job_id.c_str(), job_id.c_str());
  struct sigaction action {};
  action.sa_handler = note_and_exit;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
}

// Streams a job's log from `offset` to stdout until the job ends, retrying
// for kUnreachableBudget while the scheduler cannot be reached (it may be
// restarting); `client` is replaced by a fresh connection then (null while
// none could be made). `result` says how far it got, also on failure.
Status follow_log(std::unique_ptr<proto::Client>& client, const FarmFlags& flags, const std::string& job_id,
                  FollowResult& result) {
  explain_interrupts_while_following(job_id);
  std::optional<std::chrono::steady_clock::time_point> unreachable_since;
  milliseconds backoff(250);
  int ended_and_empty = 0;
  for (;;) {
    Result<proto::Log> log = make_error(ErrorKind::kUnavailable, "not connected");
    if (client) {
      log = client->call<proto::Log>(
          proto::ReadLog{
              .job_id = job_id, .offset = result.offset, .max_bytes = 1 << 20, .wait_ms = kFollowWaitMs},
          milliseconds(kFollowWaitMs) + std::chrono::seconds(5));
    }
    if (!log) {
      if (log.error().kind() != ErrorKind::kUnavailable) return std::unexpected(log.error());
      auto now = std::chrono::steady_clock::now();
      if (!unreachable_since) {
        unreachable_since = now;
        std::cerr << fmt::format("kiln: lost the scheduler at {}; retrying for up to {} s\n", flags.address(),
                                 kUnreachableBudget.count());
      } else if (now - *unreachable_since > kUnreachableBudget) {
        return std::unexpected(log.error().with_context(
            fmt::format("following job {} (gave up after {} s; `kiln logs {} --follow --offset {}` resumes)",
                        job_id, kUnreachableBudget.count(), job_id, result.offset)));
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min<milliseconds>(backoff * 2, milliseconds(5000));
      // A fresh connection: the scheduler may have restarted and forgotten us.
      auto fresh = proto::Client::connect(flags.address(), flags.client_name(), milliseconds(2000));
      client = fresh ? std::move(*fresh) : nullptr;
      continue;
    }
    if (unreachable_since) std::cerr << "kiln: the scheduler answers again\n";
    unreachable_since.reset();
    backoff = milliseconds(250);
    if (!log->data.empty()) {
      std::fwrite(log->data.data(), 1, log->data.size(), stdout);
      std::fflush(stdout);
      result.ends_with_newline = log->data.back() == '\n';
    }
    result.offset = log->offset + log->data.size();
    if (log->complete) return {};
    // A job that ended but whose log is not complete yet has more to send:
    // keep reading. An empty reply after the wait just means nothing new;
    // several empty ones for an ended job mean there is nothing more to come.
    ended_and_empty = log->data.empty() && is_final(log->state) ? ended_and_empty + 1 : 0;
    if (ended_and_empty >= 3) return {};
  }
}

// Prints the one-line outcome of an ended job on stderr and sets the exit
// code: 0 succeeded, 1 failed or cancelled.
void report_outcome(proto::Client& client, const std::string& job_id) {
  auto job = client.call<proto::Job>(proto::GetStatus{.job_id = job_id});
  if (!job) {
    fail(job.error().with_context("reading the outcome of job " + job_id));
    return;
  }
  const proto::JobInfo& info = job->job;
  if (info.state == "succeeded") {
    std::cerr << fmt::format("kiln: job {} succeeded on {}: result {}\n", job_id,
                             info.worker.empty() ? "?" : info.worker,
                             info.result.empty() ? "-" : info.result);
    set_exit(kExitOk);
  } else if (info.state == "cancelled") {
    std::cerr << fmt::format("kiln: job {} was cancelled{}\n", job_id,
                             info.error.empty() ? "" : ": " + info.error);
    set_exit(kExitFailed);
  } else if (info.state == "failed") {
    std::cerr << fmt::format("kiln: job {} failed: {}\n", job_id,
                             info.error.empty() ? "(no error recorded; see its log)" : info.error);
    set_exit(kExitFailed);
  } else {
    std::cerr << fmt::format("kiln: job {} is still {}; `kiln logs {} --follow` resumes\n", job_id,
                             info.state, job_id);
    set_exit(kExitFailed);
  }
}

// Follows and then reports; for `submit --follow` and `logs --follow`. With
// `end_line`, a log whose last line has no newline gets one on stdout, so
// what comes next starts a line of its own.
void follow_and_report(std::unique_ptr<proto::Client>& client, const FarmFlags& flags,
                       const std::string& job_id, std::uint64_t offset, bool end_line) {
  FollowResult followed{.offset = offset};
  Status status = follow_log(client, flags, job_id, followed);
  if (end_line && !followed.ends_with_newline) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!status) return fail(status.error());
  if (!client) {
    auto fresh = proto::Client::connect(flags.address(), flags.client_name());
    if (!fresh) return fail(fresh.error());
    client = std::move(*fresh);
  }
  report_outcome(*client, job_id);
}

Result<std::unique_ptr<proto::Client>> connect(const FarmFlags& flags) {
  return proto::Client::connect(flags.address(), flags.client_name());
}

// ---- submit -------------------------------------------------------------

struct SubmitOptions {
  FarmFlags farm;
  std::string file;
  std::string context;
  std::string pool;
  bool urgent = false;
  std::vector<std::string> secrets;
  std::vector<std::string> labels;
  std::uint32_t timeout_seconds = 0;
  double estimate_seconds = 0;
  std::string git_url;
  std::string git_commit;
  bool follow = false;
};

// Uploads `tar_path` (described by `tar`) in chunks, resuming where the
// scheduler says, until it reports the upload complete.
Status upload_context(proto::Client& client, const std::string& tar_path, const ContextTar& tar) {
  std::ifstream in(tar_path, std::ios::binary);
  if (!in) return errno_error("cannot read the context tar " + tar_path);
  std::uint64_t offset = 0;
  std::string chunk;
  // Each round either advances or is told where to resume; a scheduler that
  // keeps answering without progress is a bug, not a reason to spin forever.
  for (int stalls = 0; stalls < 16;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, tar.size - offset));
    chunk.resize(want);
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(chunk.data(), static_cast<std::streamsize>(want)))
      return errno_error("cannot read the context tar " + tar_path);
    KILN_ASSIGN_OR_RETURN(
        auto ack, client.call<proto::ContextAck>(proto::PutContext{
                      .digest = tar.digest, .total_size = tar.size, .offset = offset, .data = chunk}));
    if (ack.complete) return {};
    if (ack.received > tar.size)
      return make_error(
          ErrorKind::kInternal,
          fmt::format("the scheduler acknowledged {} bytes of a {}-byte context", ack.received, tar.size));
    stalls = ack.received > offset ? 0 : stalls + 1;
    offset = ack.received;
  }
  return make_error(
      ErrorKind::kUnavailable,
      fmt::format("the scheduler does not accept the upload of context {}; try again", tar.digest));
}

Result<std::vector<proto::Secret>> read_secrets(const std::vector<std::string>& flags) {
  std::vector<proto::Secret> secrets;
  for (const std::string& flag : flags) {
    std::size_t colon = flag.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == flag.size())
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("--secret {:?}: expected ID:FILE, e.g. --secret token:./token.txt", flag));
    KILN_ASSIGN_OR_RETURN(std::string value, read_file(flag.substr(colon + 1), "secret file"));
    secrets.push_back({.id = flag.substr(0, colon), .value = std::move(value)});
  }
  return secrets;
}

Status check_submit_flags(const SubmitOptions& o) {
  for (const std::string& label : o.labels) {
    std::size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("--label {:?}: expected KEY=VALUE, e.g. --label arch=x86_64", label));
  }
  if (o.git_url.empty() != o.git_commit.empty())
    return make_error(
        ErrorKind::kInvalidArgument,
        "--git URL and --commit SHA go together: the worker checks out that commit of that repository");
  if (!o.git_url.empty()) {
    if (!o.context.empty())
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("a context directory ({:?}) and --git are exclusive: the context is either "
                      "uploaded or checked out from git",
                      o.context));
    if (o.git_commit.size() != 40 || o.git_commit.find_first_not_of("0123456789abcdef") != std::string::npos)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("--commit {:?}: expected a full 40-character lowercase commit hash (`git "
                                    "rev-parse HEAD` prints it)",
                                    o.git_commit));
  }
  return {};
}

// Packs and uploads the context directory; returns its reference.
Result<proto::ContextRef> send_directory_context(proto::Client& client, const std::string& dir) {
  std::string tmp_dir = std::filesystem::temp_directory_path().string();
  std::string tar_path = fmt::format("{}/kiln-context-{}.tar", tmp_dir, ::getpid());
  KILN_ASSIGN_OR_RETURN(ContextTar tar, write_context_tar(dir, tar_path));
  for (const std::string& skipped : tar.skipped)
    std::cerr << fmt::format("kiln: left {} out of the context: not a file, directory or symlink\n", skipped);
  Status uploaded = upload_context(client, tar_path, tar);
  ::unlink(tar_path.c_str());
  KILN_RETURN_IF_ERROR(
      with_context(std::move(uploaded), fmt::format("uploading context {} ({})", dir, tar.digest)));
  std::cerr << fmt::format("kiln: context {}: {} entries, {}, {}\n", dir, tar.entries, human_bytes(tar.size),
                           tar.digest);
  return proto::ContextRef{.kind = proto::ContextRef::Kind::kTar, .digest = tar.digest, .size = tar.size};
}

void run_submit(const SubmitOptions& o) {
  if (auto s = check_submit_flags(o); !s) return fail(s.error(), kExitUsage);
  auto secrets = read_secrets(o.secrets);
  if (!secrets) return fail(secrets.error(), kExitUsage);
  auto text = read_file(o.file, "spec");
  if (!text) return fail(text.error());
  // Checked here too so a typo is reported with its line and column before
  // anything is packed or sent.
  if (auto spec = spec::parse_spec(*text, o.file); !spec) return fail(spec.error());

  auto client = connect(o.farm);
  if (!client) return fail(client.error());

  proto::JobSpec job{.spec = *text,
                     .spec_name = o.file,
                     .pool = o.pool,
                     .client = (*client)->name(),
                     .urgent = o.urgent,
                     .secrets = std::move(*secrets),
                     .timeout_seconds = o.timeout_seconds,
                     .labels = o.labels,
                     .estimate_seconds = o.estimate_seconds};
  if (!o.git_url.empty()) {
    job.context = {.kind = proto::ContextRef::Kind::kGit, .git_repo = o.git_url, .git_commit = o.git_commit};
  } else {
    // Always sent, even when the spec copies nothing: an unchanged context is
    // deduplicated by the scheduler after its first chunk.
    auto context = send_directory_context(**client, o.context.empty() ? "." : o.context);
    if (!context) return fail(context.error());
    job.context = *context;
  }
  auto submitted = (*client)->call<proto::Submitted>(proto::Submit{.job = std::move(job)});
  if (!submitted) return fail(submitted.error().with_context("submitting " + o.file));
  const std::string& id = submitted->job_id;
  if (!o.follow) {
    std::cout << id << "\n";
    return;
  }
  std::cerr << fmt::format(
      "kiln: submitted job {}; following its log (Ctrl-C stops following, not the job)\n", id);
  follow_and_report(*client, o.farm, id, 0, /*end_line=*/true);
  // The id stays the last line of stdout, as without --follow.
  std::cout << id << "\n";
}

// ---- logs, status, cancel, jobs -----------------------------------------

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

Json step_json(const proto::StepInfo& step) {
  return Json{
      {"id", step.id}, {"description", step.description}, {"cached", step.cached}, {"seconds", step.seconds}};
}

std::string context_text(const proto::ContextRef& c) {
  switch (c.kind) {
    case proto::ContextRef::Kind::kTar: return fmt::format("{} ({})", c.digest, human_bytes(c.size));
    case proto::ContextRef::Kind::kGit: return fmt::format("git {} {}", c.git_repo, c.git_commit);
    case proto::ContextRef::Kind::kNone: break;
  }
  return "none";
}

Json context_json(const proto::ContextRef& c) {
  switch (c.kind) {
    case proto::ContextRef::Kind::kTar: return Json{{"kind", "tar"}, {"digest", c.digest}, {"size", c.size}};
    case proto::ContextRef::Kind::kGit:
      return Json{{"kind", "git"}, {"repo", c.git_repo}, {"commit", c.git_commit}};
    case proto::ContextRef::Kind::kNone: break;
  }
  return Json{{"kind", "none"}};
}

Json job_json(const proto::JobInfo& job) {
  Json steps = Json::array();
  for (const auto& step : job.steps) steps.push_back(step_json(step));
  Json attempts = Json::array();
  for (const auto& a : job.attempts)
    attempts.push_back(Json{{"number", a.number},
                            {"worker", a.worker},
                            {"assigned_at", time_or_null(a.assigned_at_ms)},
                            {"ended_at", time_or_null(a.ended_at_ms)},
                            {"outcome", a.outcome}});
  return Json{{"id", job.id},
              {"state", job.state},
              {"pool", job.pool},
              {"client", job.client},
              {"urgent", job.urgent},
              {"spec_name", job.spec_name},
              {"context", context_json(job.context)},
              {"worker", job.worker},
              {"attempt", job.attempt},
              {"submitted_at", time_or_null(job.submitted_at_ms)},
              {"started_at", time_or_null(job.started_at_ms)},
              {"finished_at", time_or_null(job.finished_at_ms)},
              {"submitted_at_ms", job.submitted_at_ms},
              {"started_at_ms", job.started_at_ms},
              {"finished_at_ms", job.finished_at_ms},
              {"result", job.result},
              {"error", job.error},
              {"log_bytes", job.log_bytes},
              {"labels", job.labels},
              {"timeout_seconds", job.timeout_seconds},
              {"estimate_seconds", job.estimate_seconds},
              {"secret_ids", job.secret_ids},
              {"cancel_requested", job.cancel_requested},
              {"steps", steps},
              {"attempts", attempts}};
}

std::string seconds_between(std::int64_t from_ms, std::int64_t to_ms) {
  if (from_ms <= 0 || to_ms < from_ms) return "";
  return fmt::format(" ({:.1f} s)", static_cast<double>(to_ms - from_ms) / 1000);
}

// Every line after the first of `text` indented by `prefix` (for values
// under a label, such as an error carrying the end of a step's log).
std::string indent_lines(const std::string& text, std::string_view prefix) {
  std::string trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  std::string out;
  for (char c : trimmed) {
    out += c;
    if (c == '\n') out += prefix;
  }
  return out;
}

void print_status(const proto::JobInfo& job) {
  std::cout << fmt::format("job:       {}\n", job.id);
  std::cout << fmt::format("state:     {}\n", job.state);
  if (!job.error.empty()) std::cout << fmt::format("error:     {}\n", indent_lines(job.error, "           "));
  std::cout << fmt::format("spec:      {}\n", job.spec_name.empty() ? "-" : job.spec_name);
  std::cout << fmt::format("context:   {}\n", context_text(job.context));
  std::cout << fmt::format("pool:      {}{}\n", job.pool, job.urgent ? " (urgent)" : "");
  std::cout << fmt::format("client:    {}\n", job.client);
  if (!job.labels.empty()) std::cout << fmt::format("labels:    {}\n", join(job.labels));
  if (!job.secret_ids.empty()) std::cout << fmt::format("secrets:   {}\n", join(job.secret_ids));
  if (job.timeout_seconds > 0) std::cout << fmt::format("timeout:   {} s\n", job.timeout_seconds);
  if (job.estimate_seconds > 0)
    std::cout << fmt::format("estimate:  {:g} s (the client's, for a cold build)\n", job.estimate_seconds);
  if (job.cancel_requested && !is_final(job.state))
    std::cout << "cancel:    requested; waiting for the worker to stop it\n";
  std::cout << fmt::format("worker:    {}\n", job.worker.empty() ? "-" : job.worker);
  std::cout << fmt::format("attempt:   {}\n", job.attempt);
  std::cout << fmt::format("submitted: {}\n", utc_time(job.submitted_at_ms));
  std::cout << fmt::format("started:   {}{}\n", utc_time(job.started_at_ms),
                           seconds_between(job.submitted_at_ms, job.started_at_ms));
  std::cout << fmt::format("finished:  {}{}\n", utc_time(job.finished_at_ms),
                           seconds_between(job.started_at_ms, job.finished_at_ms));
  std::cout << fmt::format("result:    {}\n", job.result.empty() ? "-" : job.result);
  std::cout << fmt::format("log:       {} (kiln logs {})\n", human_bytes(job.log_bytes), job.id);
  if (!job.steps.empty()) {
    std::cout << "steps:\n";
    for (const auto& step : job.steps)
      std::cout << fmt::format("  {:.12}  {:>7}  {}\n", step.id,
                               step.cached ? "cached" : fmt::format("{:.1f}s", step.seconds),
                               step.description);
  }
  if (job.attempts.size() > 1) {
    std::cout << "attempts:\n";
    for (const auto& a : job.attempts)
      std::cout << fmt::format("  #{} on {} at {}: {}\n", a.number, a.worker, utc_time(a.assigned_at_ms),
                               a.outcome.empty() ? "-" : a.outcome);
  }
}

void run_status(const JobOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto job = (*client)->call<proto::Job>(proto::GetStatus{.job_id = o.job_id});
  if (!job) return fail(job.error().with_context("reading the status of job " + o.job_id));
  if (o.json) {
    std::cout << job_json(job->job).dump(2) << "\n";
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
    Json list = Json::array();
    for (const auto& job : jobs->jobs) list.push_back(job_json(job));
    std::cout << Json{{"jobs", list}, {"total", jobs->total}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "POOL", "CLIENT", "WORKER", "SUBMITTED", "TOOK", "SPEC"}};
  for (const auto& job : jobs->jobs) {
    std::string took = seconds_between(job.started_at_ms, job.finished_at_ms);
    if (took.size() > 3) took = took.substr(2, took.size() - 3);  // " (1.2 s)" -> "1.2 s"
    rows.push_back({job.id, job.state + (job.urgent ? "!" : ""), job.pool, job.client,
                    job.worker.empty() ? "-" : job.worker, utc_time(job.submitted_at_ms),
                    took.empty() ? "-" : took, job.spec_name.empty() ? "-" : job.spec_name});
  }
  print_table(rows);
  if (jobs->total > jobs->jobs.size())
    std::cout << fmt::format("({} of {} jobs; --limit N shows more)\n", jobs->jobs.size(), jobs->total);
}

// ---- admin --------------------------------------------------------------

struct AdminOptions {
  FarmFlags farm;
  std::string worker;
  bool json = false;
  bool wait = false;
};

Json worker_json(const proto::WorkerInfo& w) {
  return Json{{"name", w.name},
              {"pool", w.pool},
              {"state", w.state},
              {"connected", w.connected},
              {"capacity", w.capacity},
              {"running", w.running},
              {"labels", w.labels},
              {"disk_free_bytes", w.stats.disk_free_bytes},
              {"disk_total_bytes", w.stats.disk_total_bytes},
              {"store_items", w.stats.store_items},
              {"store_bytes", w.stats.store_bytes},
              {"cache_hits", w.stats.cache_hits},
              {"cache_misses", w.stats.cache_misses},
              {"healthy", w.stats.healthy},
              {"last_heartbeat_ms", w.last_heartbeat_ms},
              {"last_heartbeat", time_or_null(w.last_heartbeat_ms)}};
}

void run_workers(const AdminOptions& o) {
  auto client = connect(o.farm);
  if (!client) return fail(client.error());
  auto workers = (*client)->call<proto::Workers>(proto::ListWorkers{});
  if (!workers) return fail(workers.error().with_context("listing workers"));
  if (o.json) {
    Json list = Json::array();
    for (const auto& w : workers->workers) list.push_back(worker_json(w));
    std::cout << list.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "POOL", "STATE", "RUNNING", "DISK FREE", "ITEMS", "HITS/MISSES", "HEARTBEAT", "LABELS"}};
  for (const auto& w : workers->workers) {
    std::string state = w.state + (w.connected || w.state == "disconnected" ? "" : " (disconnected)");
    if (!w.stats.healthy) state += " (unhealthy)";
    rows.push_back(
        {w.name, w.pool, state,
         fmt::format("{}/{}{}", w.running.size(), w.capacity, w.running.empty() ? "" : " " + join(w.running)),
         human_bytes(w.stats.disk_free_bytes), std::to_string(w.stats.store_items),
         fmt::format("{}/{}", w.stats.cache_hits, w.stats.cache_misses), utc_time(w.last_heartbeat_ms),
         join(w.labels)});
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
      std::cerr << fmt::format("kiln: waiting for {} to finish {}\n", o.worker, join(worker->running));
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

  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!o.out.empty()) {
    file.open(o.out);
    if (!file)
      return fail(errno_error(fmt::format("cannot write the trace to {}", o.out)).error(), kExitFailed);
    out = &file;
  }
  *out << "# kiln admin trace: " << workers->workers.size() << " workers, jobs oldest first\n";
  for (const proto::WorkerInfo& w : workers->workers) {
    *out << Json{{"type", "worker"},       {"name", w.name},     {"pool", w.pool},
                 {"capacity", w.capacity}, {"labels", w.labels}, {"cache_limit", 0}}
                .dump()
         << "\n";
  }
  std::int64_t first = 0;
  for (const proto::JobInfo& job : full)
    if (job.submitted_at_ms > 0 && (first == 0 || job.submitted_at_ms < first)) first = job.submitted_at_ms;
  std::size_t written = 0, without_chain = 0, unknown_costs = 0;
  for (const proto::JobInfo& job : full) {
    if (job.planned_steps.empty() || job.submitted_at_ms <= 0) {
      ++without_chain;
      continue;
    }
    Json steps = Json::array();
    for (const std::string& id : job.planned_steps) {
      auto cost = cold.find(id);
      if (cost == cold.end()) ++unknown_costs;
      steps.push_back({{"id", id}, {"seconds", cost == cold.end() ? 0.0 : cost->second}});
    }
    *out << Json{{"type", "job"},
                 {"id", job.id},
                 {"t", static_cast<double>(job.submitted_at_ms - first) / 1000.0},
                 {"pool", job.pool},
                 {"client", job.client},
                 {"urgent", job.urgent},
                 {"labels", job.labels},
                 {"estimate", job.estimate_seconds},
                 {"steps", steps}}
                .dump()
         << "\n";
    ++written;
  }
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

// ---- admin stats ----------------------------------------------------------

struct StatsOptions {
  FarmFlags farm;
  std::string http;  // empty: $KILN_SCHEDULER_HTTP, else from the scheduler's address
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

// Why an HTTP request got no answer, in the words of the other farm errors.
std::string http_failure_text(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection: return "cannot connect";
    case httplib::Error::ConnectionTimeout: return "timed out connecting";
    case httplib::Error::Read: return "the connection closed before an answer";
    default: return httplib::to_string(error);
  }
}

// GET /v1/stats: the body as served, or an error that says how to reach the
// scheduler's HTTP interface.
Result<std::string> fetch_stats(const HttpAddress& address) {
  const std::string url = address.url("/v1/stats");
  httplib::Client client(address.host, address.port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(15, 0);
  httplib::Result res = client.Get("/v1/stats");
  if (!res)
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format(
            "no answer from the scheduler's HTTP interface at {} ({}); is kiln-scheduler running there "
            "with --http on? (set --http HOST:PORT or KILN_SCHEDULER_HTTP to reach another; the default "
            "is the scheduler's host with its client port + 80)",
            url, http_failure_text(res.error())));
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

// "42 s", "5m 03s", "2h 07m".
std::string duration_text(double seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return fmt::format("{:.0f} s", seconds);
  auto whole = static_cast<std::int64_t>(seconds + 0.5);
  if (whole < 3600) return fmt::format("{}m {:02}s", whole / 60, whole % 60);
  return fmt::format("{}h {:02}m", whole / 3600, (whole % 3600) / 60);
}

std::string percent_text(std::optional<double> ratio) {
  return ratio ? fmt::format("{:.0f}%", *ratio * 100) : "-";
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
  std::string target_text = target ? duration_text(*target) : "-";
  std::string wait_text = wait ? duration_text(*wait) : backlog > 0 ? "unknown: no worker accepts jobs" : "-";
  std::cout << fmt::format("  backlog         {}; expected wait {} (target {})\n", duration_text(backlog),
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
                                running.empty() ? "" : " " + join(running)),
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
                           now && started ? ", up " + duration_text((*now - *started) / 1000) : "");
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
  auto body = fetch_stats(*address);
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

// ---- FarmFlags ------------------------------------------------------------

std::string FarmFlags::address() const {
  return proto::scheduler_address(scheduler);
}

std::string FarmFlags::client_name() const {
  if (!client.empty()) return client;
  if (const char* env = std::getenv("KILN_CLIENT"); env != nullptr && *env != '\0') return env;
  std::string user;
  if (const char* env = std::getenv("USER"); env != nullptr && *env != '\0') user = env;
  if (user.empty())
    if (passwd* pw = ::getpwuid(::getuid()); pw != nullptr) user = pw->pw_name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return fmt::format("{}@{}", user.empty() ? "unknown" : user, host);
}

void add_farm_commands(CLI::App& app) {
  auto submit = std::make_shared<SubmitOptions>();
  auto* submit_cmd = app.add_subcommand("submit",
                                        "Submit a spec to the farm: packs and uploads CONTEXT (default .), "
                                        "prints the job id as the last line of stdout");
  submit_cmd->add_option("-f,--file", submit->file, "Spec file")->required()->check(CLI::ExistingFile);
  submit_cmd
      ->add_option("context", submit->context,
                   "Build context directory (default .; .git and .kiln are left out)")
      ->check(CLI::ExistingDirectory);
  submit_cmd->add_option("--pool", submit->pool, "Worker pool (default: the scheduler's, linux-x86_64)");
  submit_cmd->add_flag("--urgent", submit->urgent, "Run before non-urgent jobs");
  submit_cmd->add_option("--secret", submit->secrets,
                         "ID:FILE: secret ID's value is FILE's content; held in memory only (repeatable)");
  submit_cmd->add_option("--label", submit->labels, "KEY=VALUE the worker must carry (repeatable)");
  submit_cmd->add_option("--timeout", submit->timeout_seconds,
                         "Seconds the job may run (default: the scheduler's, 3600)");
  submit_cmd
      ->add_option(
          "--estimate", submit->estimate_seconds,
          "Seconds a cold build of this spec takes, if you know; placement costs the steps no worker "
          "has built before from it (default: learned from the pool's builds)")
      ->check(CLI::NonNegativeNumber);
  submit_cmd->add_option("--git", submit->git_url,
                         "Use this git repository as the context instead of uploading");
  submit_cmd->add_option("--commit", submit->git_commit, "Full commit hash to check out (with --git)");
  submit_cmd->add_flag(
      "--follow", submit->follow,
      "Stream the log until the job ends; exit 0 if it succeeded, 1 if it failed or was cancelled");
  add_farm_flags(submit_cmd, submit->farm);
  submit_cmd->callback([submit] { run_submit(*submit); });

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

  auto jobs = std::make_shared<JobsOptions>();
  auto* jobs_cmd = app.add_subcommand("jobs", "List jobs, newest first");
  jobs_cmd->add_option(
      "--state", jobs->states,
      "Only jobs in this state: queued, assigned, running, succeeded, failed, cancelled (repeatable)");
  jobs_cmd->add_option("--limit", jobs->limit, "At most N jobs")->capture_default_str();
  jobs_cmd->add_flag("--json", jobs->json, "Print JSON");
  add_farm_flags(jobs_cmd, jobs->farm);
  jobs_cmd->callback([jobs] { run_jobs(*jobs); });

  auto* admin = app.add_subcommand("admin", "Operate the farm's workers");
  admin->require_subcommand(1);
  auto workers = std::make_shared<AdminOptions>();
  auto* workers_cmd = admin->add_subcommand("workers", "List workers: state, running jobs, disk, cache");
  workers_cmd->add_flag("--json", workers->json, "Print JSON");
  add_farm_flags(workers_cmd, workers->farm);
  workers_cmd->callback([workers] { run_workers(*workers); });

  auto stats = std::make_shared<StatsOptions>();
  auto* stats_cmd = admin->add_subcommand(
      "stats",
      "Show the farm's figures from the scheduler's HTTP /v1/stats: per pool queue, backlog, workers and "
      "workers wanted; per worker disk, cache and running jobs; per client share");
  stats_cmd->add_flag("--json", stats->json, "Print the /v1/stats JSON as the scheduler serves it");
  stats_cmd->add_option("--http", stats->http,
                        "The scheduler's HTTP address HOST:PORT (default $KILN_SCHEDULER_HTTP, else the "
                        "scheduler's host with its client port + 80: 7800 -> 7880)");
  stats_cmd->add_option("--scheduler", stats->farm.scheduler,
                        "Scheduler's client address, whose host (and port + 80) give the HTTP address when "
                        "neither --http nor $KILN_SCHEDULER_HTTP is set");
  stats_cmd->callback([stats] { run_stats(*stats); });

  auto trace = std::make_shared<TraceOptions>();
  auto* trace_cmd = admin->add_subcommand(
      "trace",
      "Write the farm's workers and recent jobs (chains, what each step cost to build) as a placement trace "
      "that kiln-sim --trace replays (docs/placement.md, \"Trace format\")");
  trace_cmd->add_option("--limit", trace->limit, "The newest N jobs the scheduler keeps")
      ->capture_default_str();
  trace_cmd->add_option("--out", trace->out, "Write to FILE instead of stdout");
  add_farm_flags(trace_cmd, trace->farm);
  trace_cmd->callback([trace] { run_trace(*trace); });

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
