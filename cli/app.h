// What kiln and kiln-local share around their commands: the global options
// (--log-level, --log-json, --version), logging, parsing and the exit code.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kiln::cli {

// Builds the application "kiln" with the global options, lets `add_commands`
// register the commands, parses argv, runs the chosen command and returns the
// process's exit code (see commands.h).
int run_app(int argc, char** argv, const std::function<void(CLI::App&)>& add_commands);

}  // namespace kiln::cli
