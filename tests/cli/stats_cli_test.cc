// `kiln admin stats` as a user runs it: which HTTP address it reads (--http,
// else $KILN_SCHEDULER_HTTP, else the scheduler's host with its client port
// + 80), what an unreachable or malformed address says, and a real
// kiln-scheduler with no workers read through the derived address. The busy
// farm (queued and running jobs, workers) is tests/farm/dashboard_e2e_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child.h"
#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using kiln::testing::run_process;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

std::string stats_scheduler_binary() {
#ifdef KILN_SCHEDULER_BINARY
  return KILN_SCHEDULER_BINARY;
#else
  return (fs::path(KILN_BINARY).parent_path() / ".." / "scheduler/kiln-scheduler")
      .lexically_normal()
      .string();
#endif
}

std::string stats_worker_binary() {
#ifdef KILN_WORKER_BINARY
  return KILN_WORKER_BINARY;
#else
  return (fs::path(KILN_BINARY).parent_path() / ".." / "worker/daemon/kiln-worker")
      .lexically_normal()
      .string();
#endif
}

// A fresh directory under /tmp, removed with what it holds.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = "/tmp/kiln-stats-cli-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A port P such that P and P + 80 were both free a moment ago.
int free_port_pair() {
  return kiln::testing::free_port_and(80);
}

// `kiln admin stats ARGS...` with KILN_SCHEDULER_HTTP unset, or set to
// `http_env` when that is not empty.
kiln::testing::ProcessResult admin_stats(std::vector<std::string> args, const std::string& http_env = "") {
  std::vector<std::string> argv = {"/usr/bin/env", "-u", "KILN_SCHEDULER_HTTP", "-u", "KILN_SCHEDULER"};
  if (!http_env.empty()) argv.push_back("KILN_SCHEDULER_HTTP=" + http_env);
  argv.insert(argv.end(), {KILN_BINARY, "admin", "stats"});
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

TEST(AdminStats, UnreachableDerivedAddressIsTheSchedulersPortPlus80) {
  int port = free_port_pair();
  auto r = admin_stats({"--scheduler", "tcp://127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("no answer from the scheduler's HTTP interface at http://127.0.0.1:" +
                               std::to_string(port + 80) + "/v1/stats"));
  EXPECT_THAT(r.err, HasSubstr("--http"));  // says how to point it elsewhere
}

TEST(AdminStats, EnvironmentOverridesTheDerivedAddressAndTheFlagOverridesBoth) {
  int scheduler_port = free_port_pair();
  int env_port = kiln::testing::free_port();
  int flag_port = kiln::testing::free_port();
  std::string scheduler = "tcp://127.0.0.1:" + std::to_string(scheduler_port);

  auto from_env = admin_stats({"--scheduler", scheduler}, "127.0.0.1:" + std::to_string(env_port));
  EXPECT_EQ(from_env.exit_code, 1);
  EXPECT_THAT(from_env.err, HasSubstr("http://127.0.0.1:" + std::to_string(env_port) + "/v1/stats"));

  auto from_flag =
      admin_stats({"--scheduler", scheduler, "--http", "http://127.0.0.1:" + std::to_string(flag_port)},
                  "127.0.0.1:" + std::to_string(env_port));
  EXPECT_EQ(from_flag.exit_code, 1);
  EXPECT_THAT(from_flag.err, HasSubstr("http://127.0.0.1:" + std::to_string(flag_port) + "/v1/stats"));
  EXPECT_THAT(from_flag.err, Not(HasSubstr(std::to_string(env_port))));
}

TEST(AdminStats, MalformedAddressesAreUsageErrors) {
  auto bad_flag = admin_stats({"--http", "localhost"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.err;
  EXPECT_THAT(bad_flag.err, HasSubstr("--http \"localhost\": expected HOST:PORT"));

  auto bad_env = admin_stats({}, "127.0.0.1:99999");
  EXPECT_EQ(bad_env.exit_code, 2) << bad_env.err;
  EXPECT_THAT(bad_env.err, HasSubstr("KILN_SCHEDULER_HTTP \"127.0.0.1:99999\""));

  auto no_tcp = admin_stats({"--scheduler", "ipc:///tmp/kiln.sock"});
  EXPECT_EQ(no_tcp.exit_code, 2) << no_tcp.err;
  EXPECT_THAT(no_tcp.err, HasSubstr("pass --http HOST:PORT"));
}

TEST(AdminStats, AnIdleSchedulerThroughTheDerivedAddress) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  int port = free_port_pair();
  std::string scheduler = "tcp://127.0.0.1:" + std::to_string(port);
  kiln::testing::Child daemon(
      {stats_scheduler_binary(), "--state-dir", dir.path() + "/scheduler", "--listen", scheduler,
       "--listen-workers", "tcp://127.0.0.1:" + std::to_string(kiln::testing::free_port()), "--http",
       "127.0.0.1:" + std::to_string(port + 80)},
      dir.path() + "/scheduler.log");
  kiln::testing::ProcessResult r;
  ASSERT_TRUE(kiln::testing::eventually([&] {
    r = admin_stats({"--scheduler", scheduler});
    return r.exit_code == 0;
  })) << r.err
      << daemon.log();
  EXPECT_THAT(r.out,
              HasSubstr("jobs: 0 queued, 0 assigned, 0 running, 0 succeeded, 0 failed, 0 cancelled\n"));
  EXPECT_THAT(r.out, HasSubstr("(no workers have registered)"));
  EXPECT_THAT(r.out, HasSubstr("http://127.0.0.1:" + std::to_string(port + 80) + "/"));

  auto json = admin_stats({"--json", "--scheduler", scheduler});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json doc = Json::parse(json.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << json.out;
  EXPECT_TRUE(doc["scheduler"]["id"].is_string());
  EXPECT_TRUE(doc["workers"].is_array());
  EXPECT_TRUE(doc["workers"].empty());
}

TEST(AdminStats, ALowDiskWorkerIsWarnedAboutAndDoesNotAccept) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  int port = free_port_pair();
  std::string scheduler = "tcp://127.0.0.1:" + std::to_string(port);
  std::string workers = "tcp://127.0.0.1:" + std::to_string(kiln::testing::free_port());
  // A threshold no disk meets (1 PiB): the worker is low on disk.
  kiln::testing::Child daemon(
      {stats_scheduler_binary(), "--state-dir", dir.path() + "/scheduler", "--listen", scheduler,
       "--listen-workers", workers, "--http", "127.0.0.1:" + std::to_string(port + 80), "--low-disk-bytes",
       "1125899906842624"},
      dir.path() + "/scheduler.log");
  kiln::testing::Child worker({stats_worker_binary(), "--scheduler", workers, "--name", "tight-disk",
                               "--state-dir", dir.path() + "/worker", "--fake-build"},
                              dir.path() + "/worker.log");
  kiln::testing::ProcessResult r;
  ASSERT_TRUE(kiln::testing::eventually([&] {
    r = admin_stats({"--scheduler", scheduler});
    return r.exit_code == 0 && r.out.find("tight-disk") != std::string::npos;
  })) << r.out
      << r.err << daemon.log() << worker.log();
  EXPECT_THAT(r.out, HasSubstr("  LOW DISK        worker tight-disk has "));
  EXPECT_THAT(r.out, HasSubstr("1 connected (1 active, 0 paused, 0 draining), 0 accepting, 1 known"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("tight-disk +linux-x86_64 +active +low-disk +0/"));
}

}  // namespace
}  // namespace kiln
