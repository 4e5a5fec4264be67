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

// `kiln build`, `healthcheck`, `delete`, `prune`, `clean`, `df`, `stats`.
void add_build_commands(CLI::App& app);

// How a farm command reaches the scheduler (--scheduler, --client).
struct FarmFlags {
  std::string scheduler;  // empty: $KILN_SCHEDULER, else tcp://127.0.0.1:7800
  std::string client;     // empty: $KILN_CLIENT, else USER@HOSTNAME

  std::string address() const;
  std::string client_name() const;
};

// `kiln submit`, `logs`, `status`, `cancel`, `jobs` and `kiln admin ...`
// (cli/farm_commands.cc).
void add_farm_commands(CLI::App& app);

// `kiln up` and `kiln down`: a whole local farm (cli/up_command.cc).
void add_up_commands(CLI::App& app);

}  // namespace kiln::cli
