#include "cli/farm_client.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <filesystem>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "common/auth/curve_keys.h"
#include "common/config.h"

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
                  "Client name the scheduler records (default $KILN_CLIENT, else USER@HOST); with a key, "
                  "the key's name is used instead");
  cmd->add_option(
      "--key", flags.key_file,
      "This client's CurveZMQ key (NAME.key from `kiln keygen`; default $KILN_KEY, else the admin "
      "key of the farm `kiln up` runs under KILN_HOME/farm)");
  cmd->add_option("--scheduler-key", flags.scheduler_key_file,
                  "The scheduler's public key file (default $KILN_SCHEDULER_KEY, else KILN_HOME/farm's)");
}

bool is_loopback_address(std::string_view address) {
  for (std::string_view prefix : {"tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://"}) {
    if (address.starts_with(prefix)) return true;
  }
  return false;
}

Result<proto::ClientOptions> client_options(const FarmFlags& flags) {
  auto pick = [](const std::string& flag, const char* env) {
    if (!flag.empty()) return flag;
    const char* value = std::getenv(env);
    return std::string(value != nullptr ? value : "");
  };
  std::string key = pick(flags.key_file, "KILN_KEY");
  std::string scheduler_key = pick(flags.scheduler_key_file, "KILN_SCHEDULER_KEY");
  if (key.empty() && scheduler_key.empty() && is_loopback_address(flags.address())) {
    // The farm `kiln up` runs here (on 127.0.0.1), with its admin key. Never
    // offered to a scheduler on another host: its keys are not this farm's.
    const std::string dir = kiln_home() + "/farm/keys";
    std::error_code ec;
    if (std::filesystem::exists(dir + "/admin.key", ec) &&
        std::filesystem::exists(dir + "/scheduler.pub", ec)) {
      key = dir + "/admin.key";
      scheduler_key = dir + "/scheduler.pub";
    }
  }
  if (key.empty() && scheduler_key.empty()) return proto::ClientOptions{};
  if (key.empty() || scheduler_key.empty()) {
    return make_error(
        ErrorKind::kInvalidArgument,
        "--key and --scheduler-key go together (KILN_KEY and KILN_SCHEDULER_KEY): this client's "
        "secret key and the scheduler's public key");
  }
  KILN_ASSIGN_OR_RETURN(auth::CurveKeyPair mine, auth::read_secret_key_file(key));
  KILN_ASSIGN_OR_RETURN(std::string theirs, auth::read_public_key_file(scheduler_key));
  return proto::ClientOptions{
      .curve = {.server_public_z85 = theirs, .public_z85 = mine.public_z85, .secret_z85 = mine.secret_z85},
      .key_file = key};
}

Result<std::unique_ptr<proto::Client>> connect(const FarmFlags& flags) {
  KILN_ASSIGN_OR_RETURN(proto::ClientOptions options, client_options(flags));
  return proto::Client::connect(flags.address(), flags.client_name(), std::chrono::seconds(5), options);
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
