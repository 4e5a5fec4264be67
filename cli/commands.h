// The `kiln` command's subcommands. Each group registers itself on the CLI11
// application; main.cc owns global options, logging and exit codes.
//
// A command's callback returns its process exit code through `set_exit`:
// 0 success, 1 the operation failed (bad spec, failed build), 2 usage error.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace kiln::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Records the exit code the process will return (the last call wins).
void set_exit(int code);
int exit_code();

// `kiln spec check|fmt|ids` and `kiln dockerfile`.
void add_spec_commands(CLI::App& app);

// kiln-local's (cli/local_main.cc): `kiln build`, `healthcheck`, `delete`, `prune`, `clean`, `df`, `stats`.
void add_build_commands(CLI::App& app);

// How a farm command reaches the scheduler (--scheduler, --client;
// cli/farm_client.cc).
struct FarmFlags {
  std::string scheduler;  // empty: $KILN_SCHEDULER, else tcp://127.0.0.1:7800
  std::string client;     // empty: $KILN_CLIENT, else USER@HOSTNAME
  // CurveZMQ: this client's key file and the scheduler's public key file.
  // Empty: $KILN_KEY / $KILN_SCHEDULER_KEY, else the keys `kiln up` made
  // (KILN_HOME/farm/keys/admin.key, scheduler.pub) if they exist and the
  // scheduler is on this host, else none.
  std::string key_file;
  std::string scheduler_key_file;

  std::string address() const;
  std::string client_name() const;
};

// The farm commands, each group in its own file; what they share is
// cli/farm_client.h (flags, connection, errors), cli/follow.h (following a
// job's log) and cli/format.h (sizes, durations, times, tables).

// `kiln submit` (cli/submit_command.cc).
void add_submit_command(CLI::App& app);

// `kiln logs`, `status`, `cancel` and `jobs` (cli/job_commands.cc).
void add_job_commands(CLI::App& app);

// `kiln admin workers|pause|unpause|drain|forget|trace`
// (cli/admin_commands.cc), and `kiln admin stats` through
// add_admin_stats_command.
void add_admin_commands(CLI::App& app);

// `kiln admin stats`, on the `admin` subcommand (cli/stats_view.cc).
void add_admin_stats_command(CLI::App& admin);

// kiln-local's: `kiln up` and `kiln down`, a whole local farm (cli/up_command.cc).
void add_up_commands(CLI::App& app);

// `kiln keygen NAME [--out DIR]` (cli/keygen_command.cc).
void add_keygen_command(CLI::App& app);

}  // namespace kiln::cli
