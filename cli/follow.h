// Following a job from the terminal (`kiln submit --follow`, `kiln logs
// --follow`): its log streams to stdout until the job ends, then its outcome
// is one line on stderr and the exit code.
//
//   auto client = connect(flags);
//   if (!client) return fail(client.error());
//   follow_and_report(*client, flags, job_id, /*offset=*/0, /*end_line=*/true);
//
// While the scheduler cannot be reached (it may be restarting) the follow
// retries with backoff for up to 60 s, on fresh connections, and says so on
// stderr; then it gives up with the command that resumes it. Ctrl-C stops
// following, not the job, and says how to resume or cancel it (a SIGINT
// handler is installed for the rest of the process). Exit code: 0 the job
// succeeded; 1 it failed, was cancelled, is still running when the log
// ended, or the follow gave up. Thread safety: the command's one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "common/proto/client.h"

namespace kiln::cli {

// Streams job `job_id`'s log from byte `offset` to stdout until the job
// ends, then reports its outcome (on stderr) and sets the exit code. With
// `end_line`, a log whose last line has no newline gets one on stdout, so
// that what comes next starts a line of its own. `client` may be replaced by
// a fresh connection (or left null when none could be made). Returns the
// job's final status when it was read (nullopt when the follow failed).
std::optional<proto::JobInfo> follow_and_report(std::unique_ptr<proto::Client>& client, const FarmFlags& flags,
                                                const std::string& job_id, std::uint64_t offset, bool end_line);

}  // namespace kiln::cli
