#include "cli/local_commands.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/fs.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

struct LocalCommand {
  const char* name;
  const char* description;
};

// What `kiln --help` says of them; kiln-local's own --help has the flags.
constexpr std::array kLocalCommands = {
    LocalCommand{"build",
                 "Build a spec on this machine, reusing every step the store already has; prints the log "
                 "and `Got: ID`"},
    LocalCommand{"healthcheck", "Run a tiny build (echo healthcheck) on the base image to check the store and "
                                "sandbox"},
    LocalCommand{"delete", "Delete a result and every result built on it"},
    LocalCommand{"prune", "Delete least-recently-used results that nothing is built on, oldest first"},
    LocalCommand{"clean", "Delete every result in the store (caches are kept)"},
    LocalCommand{"df", "Print the percentage of free space where the store is"},
    LocalCommand{"stats", "Print the store's result count and cache hits and misses"},
    LocalCommand{"up", "Run a whole local farm: kiln-scheduler and N kiln-workers on 127.0.0.1, state and "
                       "logs under DIR; Ctrl-C stops it"},
    LocalCommand{"down", "Stop a farm started with `kiln up --detach`"},
};

bool is_local(std::string_view word) {
  for (const auto& c : kLocalCommands)
    if (word == c.name) return true;
  return false;
}

// The command word: the first argument that is not a global option or its value.
std::string_view command_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--log-level") {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    return arg;
  }
  return {};
}

[[noreturn]] void exec_local(char** argv) {
  // Installed: PREFIX/libexec/kiln/kiln-local; in a build tree: beside kiln.
  const std::string dir = executable_dir();
  const std::array<std::string, 2> candidates = {
      fs::path(dir + "/" + KILN_LIBEXEC_FROM_BIN + "/kiln-local").lexically_normal().string(),
      dir + "/kiln-local"};
  int error = ENOENT;
  for (const std::string& path : candidates) {
    if (::access(path.c_str(), X_OK) != 0) continue;
    ::execv(path.c_str(), argv);
    error = errno;
  }
  std::cerr << "kiln: cannot run kiln-local, the half of kiln that builds on this machine (looked for "
            << candidates[0] << " and " << candidates[1] << "): " << std::strerror(error)
            << "; reinstall kiln or rebuild it (scripts/build)\n";
  std::exit(kExitFailed);
}

}  // namespace

void run_local_command_if_named(int argc, char** argv) {
  if (is_local(command_word(argc, argv))) exec_local(argv);
}

void add_local_command_entries(CLI::App& app, char** argv) {
  for (const auto& c : kLocalCommands) {
    auto* sub = app.add_subcommand(c.name, c.description);
    sub->group("Commands on this machine (kiln-local)");
    // Reached only if run_local_command_if_named missed it: pass it on.
    sub->prefix_command();
    sub->set_help_flag();
    sub->callback([argv] { exec_local(argv); });
  }
}

}  // namespace kiln::cli
