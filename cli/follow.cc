#include "cli/follow.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cli/farm_client.h"

namespace kiln::cli {
namespace {

using std::chrono::milliseconds;

// How long a follow keeps retrying while the scheduler cannot be reached.
constexpr auto kUnreachableBudget = std::chrono::seconds(60);
constexpr std::uint32_t kFollowWaitMs = 10'000;

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
      // (With the same keys: a farm with authentication refuses anything else.)
      auto options = client_options(flags);
      auto fresh = options ? proto::Client::connect(flags.address(), flags.client_name(), milliseconds(2000),
                                                    *options)
                           : Result<std::unique_ptr<proto::Client>>(std::unexpected(options.error()));
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
std::optional<proto::JobInfo> report_outcome(proto::Client& client, const std::string& job_id) {
  auto job = client.call<proto::Job>(proto::GetStatus{.job_id = job_id});
  if (!job) {
    fail(job.error().with_context("reading the outcome of job " + job_id));
    return std::nullopt;
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
  return std::move(job->job);
}

}  // namespace

std::optional<proto::JobInfo> follow_and_report(std::unique_ptr<proto::Client>& client, const FarmFlags& flags,
                                                const std::string& job_id, std::uint64_t offset, bool end_line) {
  FollowResult followed{.offset = offset};
  Status status = follow_log(client, flags, job_id, followed);
  if (end_line && !followed.ends_with_newline) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!status) {
    fail(status.error());
    return std::nullopt;
  }
  if (!client) {
    auto fresh = connect(flags);
    if (!fresh) {
      fail(fresh.error());
      return std::nullopt;
    }
    client = std::move(*fresh);
  }
  return report_outcome(*client, job_id);
}

}  // namespace kiln::cli
