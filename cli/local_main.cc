// kiln-local: the commands of kiln that use this machine's store and
// sandbox, and the local farm. `kiln` runs it for them (cli/local_commands.h);
// it is installed in PREFIX/libexec/kiln, not on PATH.
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  return kiln::cli::run_app(argc, argv, [](CLI::App& app) {
    kiln::cli::add_build_commands(app);
    kiln::cli::add_up_commands(app);
  });
}
