// `kiln keygen NAME [--out DIR]`: a CurveZMQ key pair for a scheduler, a
// worker, a client or an admin (docs/security.md).
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/auth/curve_keys.h"

namespace kiln::cli {

void add_keygen_command(CLI::App& app) {
  struct Options {
    std::string name;
    std::string out = ".";
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "keygen",
      "Make a CurveZMQ key pair: OUT/NAME.key (secret and public, mode 0600; keep it on its host) and "
      "OUT/NAME.pub (public). NAME is the identity: put NAME.pub in the scheduler's --auth-dir under "
      "clients/, workers/ or admins/. An existing NAME.key is never overwritten.");
  cmd->add_option("NAME", options->name, "The identity (a worker's name, a client's name)")->required();
  cmd->add_option("--out", options->out, "Directory for the two files (made 0700 if missing)")
      ->capture_default_str();
  cmd->callback([options] {
    auto pair = auth::generate_curve_key_pair();
    if (!pair) {
      std::cerr << "kiln: " << pair.error().to_string() << "\n";
      return set_exit(kExitFailed);
    }
    if (auto s = auth::write_key_files(*pair, options->out, options->name); !s) {
      std::cerr << "kiln: " << s.error().to_string() << "\n";
      return set_exit(s.error().kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitFailed);
    }
    std::cout << options->out << "/" << options->name << ".key\n"
              << options->out << "/" << options->name << ".pub  public key " << pair->public_z85 << "\n";
  });
}

}  // namespace kiln::cli
