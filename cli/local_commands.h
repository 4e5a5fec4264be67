// The commands of kiln that run on this machine's store and sandbox (build,
// healthcheck, delete, prune, clean, df, stats) or start a local farm (up,
// down) live in a second program, kiln-local (cli/local_main.cc), so that
// the farm commands do not load RocksDB, the builder and their libraries.
// `kiln` runs kiln-local for them with the same arguments; to the user they
// are one command (`kiln --help` lists both halves).
#pragma once

namespace CLI {
class App;
}

namespace kiln::cli {

// If argv names a local command (after kiln's global options), replaces this
// process with kiln-local and the same arguments; returns only when argv
// names another command. On failure to start kiln-local, exits with a message.
void run_local_command_if_named(int argc, char** argv);

// Lists the local commands in `kiln --help`, under their own heading; should
// one be parsed after all, it runs kiln-local with `argv`.
void add_local_command_entries(CLI::App& app, char** argv);

}  // namespace kiln::cli
