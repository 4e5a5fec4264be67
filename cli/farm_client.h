// What every farm command shares (`kiln submit`, `logs`, `status`, `cancel`,
// `jobs`, `kiln admin ...`): the --scheduler and --client flags and the
// connection they give, how errors are reported, and the job states.
//
//   FarmFlags farm;
//   add_farm_flags(cmd, farm);
//   ...
//   auto client = connect(farm);
//   if (!client) return fail(client.error());
//
// The scheduler is --scheduler, else $KILN_SCHEDULER, else
// tcp://127.0.0.1:7800; the client name is --client, else $KILN_CLIENT, else
// USER@HOSTNAME (FarmFlags, commands.h). Exit codes: 0 done (a followed job
// succeeded), 1 the operation failed (the scheduler is unreachable or
// refused, the followed job failed or was cancelled), 2 usage errors.
// Thread safety: the command's one thread.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "cli/commands.h"
#include "common/error.h"
#include "common/proto/client.h"

namespace CLI {
class App;
}

namespace kiln::cli {

// Adds --scheduler, --client, --key and --scheduler-key to `cmd`, filling `flags`.
void add_farm_flags(CLI::App* cmd, FarmFlags& flags);

// Whether `address` stays on this host (127.0.0.0/8, localhost, ::1, ipc://).
bool is_loopback_address(std::string_view address);

// The CurveZMQ options `flags` (or the environment) give; with neither, and a
// scheduler on this host, the admin key of the farm `kiln up` runs under
// KILN_HOME/farm, if there is one.
Result<proto::ClientOptions> client_options(const FarmFlags& flags);

// A client connected to the scheduler `flags` name, as the client they name.
Result<std::unique_ptr<proto::Client>> connect(const FarmFlags& flags);

// "kiln: <error>" on stderr.
void report_error(const Error& e);

// Reports `e` and records the exit code it deserves: invalid flags are usage
// errors (kExitUsage), everything else (the scheduler's answers included) a
// failure.
void fail(const Error& e, int code = kExitFailed);

// queued, assigned, running, succeeded, failed, cancelled.
const std::set<std::string>& job_states();

// succeeded, failed or cancelled: the job will not change again.
bool is_final(const std::string& state);

}  // namespace kiln::cli
