// The `kiln` command's subcommands. Each group registers itself on the CLI11
// application; main.cc owns global options, logging and exit codes.
//
// A command's callback returns its process exit code through `set_exit`:
// 0 success, 1 the operation failed (bad spec, failed build), 2 usage error.
#pragma once

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

}  // namespace kiln::cli
