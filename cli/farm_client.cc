#include "cli/farm_client.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace kiln::cli {

std::string FarmFlags::address() const {
  return proto::scheduler_address(scheduler);
}

std::string FarmFlags::client_name() const {
  if (!client.empty()) return client;
  if (const char* env = std::getenv("KILN_CLIENT"); env != nullptr && *env != '\0') return env;
  std::string user;
  if (const char* env = std::getenv("USER"); env != nullptr && *env != '\0') user = env;
  if (user.empty())
    if (passwd* pw = ::getpwuid(::getuid()); pw != nullptr) user = pw->pw_name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return fmt::format("{}@{}", user.empty() ? "unknown" : user, host);
}

void add_farm_flags(CLI::App* cmd, FarmFlags& flags) {
  cmd->add_option("--scheduler", flags.scheduler,
                  "Scheduler's client address (default $KILN_SCHEDULER, else tcp://127.0.0.1:7800)");
  cmd->add_option("--client", flags.client,
                  "Client name the scheduler records (default $KILN_CLIENT, else USER@HOST)");
}

Result<std::unique_ptr<proto::Client>> connect(const FarmFlags& flags) {
  return proto::Client::connect(flags.address(), flags.client_name());
}

void report_error(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

void fail(const Error& e, int code) {
  report_error(e);
  set_exit(code);
}

const std::set<std::string>& job_states() {
  static const std::set<std::string> states = {"queued",    "assigned", "running",
                                               "succeeded", "failed",   "cancelled"};
  return states;
}

bool is_final(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

}  // namespace kiln::cli
