// kiln: the user's command. See `kiln --help`. The commands that build on
// this machine or start a local farm are kiln-local's (cli/local_main.cc),
// started from here (cli/local_commands.h) before anything else is done.
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "cli/commands.h"
#include "cli/local_commands.h"

int main(int argc, char** argv) {
  kiln::cli::run_local_command_if_named(argc, argv);
  return kiln::cli::run_app(argc, argv, [argv](CLI::App& app) {
    kiln::cli::add_spec_commands(app);
    kiln::cli::add_submit_command(app);
    kiln::cli::add_job_commands(app);
    kiln::cli::add_admin_commands(app);
    kiln::cli::add_keygen_command(app);
    kiln::cli::add_local_command_entries(app, argv);
  });
}
