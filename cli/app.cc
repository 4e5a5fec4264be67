#include "cli/app.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "common/log.h"

namespace kiln::cli {
namespace {
int g_exit_code = kExitOk;
}  // namespace

void set_exit(int code) {
  g_exit_code = code;
}
int exit_code() {
  return g_exit_code;
}

int run_app(int argc, char** argv, const std::function<void(CLI::App&)>& add_commands) {
  CLI::App app{
      "kiln: a distributed, cache-aware build farm.\n\n"
      "Build specs use OBuilder's S-expression language (see docs/spec-language.md).\n"
      "Examples:\n"
      "  kiln spec check examples/*.spec\n"
      "  kiln spec ids -f examples/hello.spec examples/context\n"
      "  kiln dockerfile -f examples/multistage.spec --buildkit\n"
      "  kiln up --detach && kiln submit -f examples/hello.spec examples/context --follow",
      "kiln"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");

  LogOptions log_options = log_options_from_env();
  app.add_option("--log-level", log_options.level,
                 std::string("Log level (") + kLogLevels + "); default from KILN_LOG_LEVEL, else info")
      ->capture_default_str();
  app.add_flag("--log-json", log_options.json, "Log JSON lines to stderr (also KILN_LOG_JSON=1)");
  app.parse_complete_callback([&log_options] {
    if (auto s = init_logging(log_options); !s) {
      std::cerr << "kiln: " << s.error().to_string() << "\n";
      std::exit(kExitUsage);
    }
  });
  add_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  std::fflush(stdout);
  return exit_code();
}

}  // namespace kiln::cli
