// The farm commands as a user runs them: `kiln submit|logs|status|cancel|jobs`,
// `kiln admin ...` and `kiln up --detach` / `kiln down`, against a real
// kiln-scheduler and kiln-worker --fake-build started here on free ports.
//
// The daemons are found as `kiln up` finds them in the build tree (beside the
// `kiln` binary's directory: ../scheduler/kiln-scheduler and
// ../worker/daemon/kiln-worker) unless KILN_SCHEDULER_BINARY /
// KILN_WORKER_BINARY are defined by CMake.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child.h"
#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using kiln::testing::ProcessResult;
using kiln::testing::run_process;
using kiln::testing::source_dir;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// The daemons, as CMake built them (tests/CMakeLists.txt passes their paths).
std::string scheduler_binary() {
  return KILN_SCHEDULER_BINARY;
}
std::string worker_binary() {
  return KILN_WORKER_BINARY;
}

using kiln::testing::free_port;

// A free port P with P+1 free as well (`kiln up --port P` uses both).
int free_port_pair() {
  return kiln::testing::free_port_and(1);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_line(const std::string& text) {
  std::string trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  std::size_t nl = trimmed.rfind('\n');
  return nl == std::string::npos ? trimmed : trimmed.substr(nl + 1);
}

// Polls `condition` every 100 ms for up to `seconds`.
bool eventually(const std::function<bool()>& condition, int seconds = 30) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

// A daemon running for the length of a test; stopped with SIGTERM (SIGKILL
// after 10 s) when destroyed. Its output goes to `log`.
class Daemon {
 public:
  Daemon(std::vector<std::string> argv, const fs::path& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Daemon() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  std::string log() const { return read_file(log_); }

  // Sends `sig` (0: none) and waits up to 30 s for the exit status; -1 if it did not end.
  int signal_and_wait(int sig) {
    ::kill(pid_, sig);
    for (int i = 0; i < 600; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  fs::path log_;
};

class FarmCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("farm_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "ctx/scripts");
    std::ofstream(dir_ / "ctx/greeting.txt") << "hello\n";
    std::ofstream(dir_ / "ctx/scripts/hello.sh") << "echo hi\n";
    spec_ = (dir_ / "hello.spec").string();
    std::ofstream(spec_)
        << "((from busybox)\n (copy (src greeting.txt) (dst /))\n (run (shell \"cat /greeting.txt\")))\n";
    ASSERT_TRUE(fs::exists(scheduler_binary())) << scheduler_binary() << " is not built";
    ASSERT_TRUE(fs::exists(worker_binary())) << worker_binary() << " is not built";
  }
  void TearDown() override {
    // Set by the tests of `kiln up` (its farm runs with CurveZMQ).
    ::unsetenv("KILN_KEY");
    ::unsetenv("KILN_SCHEDULER_KEY");
    if (HasFailure()) {
      if (scheduler_) std::cerr << "--- scheduler log\n" << scheduler_->log();
      for (auto& w : workers_) std::cerr << "--- worker log\n" << w->log();
    }
    workers_.clear();
    scheduler_.reset();
    fs::remove_all(dir_);
  }

  void start_scheduler() {
    client_port_ = free_port();
    worker_port_ = free_port();
    address_ = "tcp://127.0.0.1:" + std::to_string(client_port_);
    launch_scheduler();
  }

  // Stops the scheduler and starts it again on the same ports and state.
  void restart_scheduler() {
    ASSERT_EQ(scheduler_->signal_and_wait(SIGTERM), 0) << scheduler_->log();
    launch_scheduler();
  }

  void launch_scheduler() {
    scheduler_ = std::make_unique<Daemon>(
        std::vector<std::string>{scheduler_binary(), "--state-dir", (dir_ / "scheduler").string(), "--listen",
                                 address_, "--listen-workers",
                                 "tcp://127.0.0.1:" + std::to_string(worker_port_), "--http", "off"},
        dir_ / "scheduler.log");
    ASSERT_TRUE(eventually([&] {
      return kiln({"admin", "workers"}).exit_code == 0;
    })) << "the scheduler did not answer at "
        << address_;
  }

  void start_worker(const std::string& name, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {worker_binary(),
                                     "--name",
                                     name,
                                     "--state-dir",
                                     (dir_ / name).string(),
                                     "--scheduler",
                                     "tcp://127.0.0.1:" + std::to_string(worker_port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // Fake builds (instant unless `extra` says --fake-build=SECONDS).
    if (std::none_of(extra.begin(), extra.end(),
                     [](const std::string& a) { return a.starts_with("--fake-build"); }))
      argv.push_back("--fake-build");
    workers_.push_back(std::make_unique<Daemon>(argv, dir_ / (name + ".log")));
    ASSERT_TRUE(eventually([&] {
      Json w = worker(name);
      return !w.is_null() && w.value("connected", false);
    })) << name
        << " did not register";
  }

  // Runs `kiln ARGS... --scheduler ADDRESS` (farm commands take the flag).
  ProcessResult kiln(std::vector<std::string> args, bool with_scheduler = true) {
    args.insert(args.begin(), KILN_BINARY);
    if (with_scheduler) args.insert(args.end(), {"--scheduler", address_});
    return run_process(args);
  }

  Json status(const std::string& id) {
    auto r = kiln({"status", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? Json::parse(r.out) : Json();
  }

  Json worker(const std::string& name) {
    auto r = kiln({"admin", "workers", "--json"});
    if (r.exit_code != 0) return Json();
    for (const Json& w : Json::parse(r.out))
      if (w.value("name", "") == name) return w;
    return Json();
  }

  std::string submit(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"submit", "-f", spec_, (dir_ / "ctx").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = kiln(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return last_line(r.out);
  }

  bool ends(const std::string& id, const std::string& state = "succeeded") {
    return eventually([&] { return status(id).value("state", "") == state; });
  }

  fs::path dir_;
  std::string spec_;
  int client_port_ = 0;
  int worker_port_ = 0;
  std::string address_;
  std::unique_ptr<Daemon> scheduler_;
  std::vector<std::unique_ptr<Daemon>> workers_;
};

TEST_F(FarmCli, SubmitPrintsTheJobIdLastAndTheJobRuns) {
  start_scheduler();
  start_worker("w1", {"--label", "team=ci"});
  auto r = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--label", "team=ci"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = last_line(r.out);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(id.find(' '), std::string::npos) << "the last line should be only the id: " << r.out;
  EXPECT_THAT(r.err, HasSubstr("sha256:"));  // the context note names its digest
  ASSERT_TRUE(ends(id));
  Json job = status(id);
  EXPECT_EQ(job["id"], id);
  EXPECT_EQ(job["worker"], "w1");
  EXPECT_EQ(job["context"]["kind"], "tar");
  EXPECT_EQ(job["labels"], Json::array({"team=ci"}));
}

TEST_F(FarmCli, StatusJsonHasTheDocumentedKeys) {
  start_scheduler();
  start_worker("w1");
  std::string id = submit({"--urgent", "--pool", "linux-x86_64"});
  ASSERT_TRUE(ends(id));
  Json job = status(id);
  for (const char* key : {"id", "state", "worker", "result", "steps", "attempts", "submitted_at_ms",
                          "started_at_ms", "finished_at_ms", "error", "pool", "client", "urgent"})
    EXPECT_TRUE(job.contains(key)) << key << " missing in " << job.dump();
  EXPECT_EQ(job["urgent"], true);
  EXPECT_EQ(job["pool"], "linux-x86_64");
  EXPECT_FALSE(job["result"].get<std::string>().empty());
  ASSERT_FALSE(job["steps"].empty());
  for (const char* key : {"id", "description", "cached", "seconds"})
    EXPECT_TRUE(job["steps"][0].contains(key)) << key;
  EXPECT_GT(job["finished_at_ms"].get<std::int64_t>(), 0);

  auto human = kiln({"status", id});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.out, HasSubstr("state:     succeeded"));
  EXPECT_THAT(human.out, HasSubstr("worker:    w1"));
}

TEST_F(FarmCli, ClientNameComesFromTheFlagOrEnvironment) {
  start_scheduler();
  auto r = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--client", "ci-runner-7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status(last_line(r.out))["client"], "ci-runner-7");
}

TEST_F(FarmCli, FollowStreamsTheLogThenReportsSuccess) {
  start_scheduler();
  start_worker("w1");
  auto r = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--follow"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = last_line(r.out);
  EXPECT_THAT(r.err, HasSubstr("job " + id + " succeeded"));
  // What --follow printed before the id is the whole log.
  auto logs = kiln({"logs", id});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  ASSERT_FALSE(logs.out.empty());
  EXPECT_EQ(r.out.substr(0, logs.out.size()), logs.out);
}

TEST_F(FarmCli, InterruptingAFollowLeavesTheJobAlone) {
  start_scheduler();  // no workers: the job stays queued while followed
  Daemon follow(
      {KILN_BINARY, "submit", "-f", spec_, (dir_ / "ctx").string(), "--follow", "--scheduler", address_},
      dir_ / "follow.log");
  ASSERT_TRUE(eventually([&] { return follow.log().find("following its log") != std::string::npos; }))
      << follow.log();
  EXPECT_EQ(follow.signal_and_wait(SIGINT), 130);
  EXPECT_THAT(follow.log(), HasSubstr("stopped following job"));
  auto jobs = kiln({"jobs", "--json", "--state", "queued"});
  ASSERT_EQ(jobs.exit_code, 0) << jobs.err;
  EXPECT_EQ(Json::parse(jobs.out)["jobs"].size(), 1u);
}

TEST_F(FarmCli, FollowSurvivesASchedulerRestart) {
  start_scheduler();
  start_worker("w1", {"--fake-build=4"});  // each job takes 4 s
  Daemon follow(
      {KILN_BINARY, "submit", "-f", spec_, (dir_ / "ctx").string(), "--follow", "--scheduler", address_},
      dir_ / "follow.log");
  ASSERT_TRUE(eventually([&] { return follow.log().find("following its log") != std::string::npos; }))
      << follow.log();
  restart_scheduler();
  // The follower notices (its pending request is lost), reconnects and sees the job end.
  ASSERT_TRUE(eventually([&] { return follow.log().find("succeeded") != std::string::npos; }, 60))
      << follow.log();
  EXPECT_THAT(follow.log(), HasSubstr("lost the scheduler"));
  EXPECT_THAT(follow.log(), HasSubstr("the scheduler answers again"));
  EXPECT_EQ(follow.signal_and_wait(0), 0);  // signal 0: only wait for its exit status
}

TEST_F(FarmCli, LogsFromAnOffset) {
  start_scheduler();
  start_worker("w1");
  std::string id = submit();
  ASSERT_TRUE(ends(id));
  auto all = kiln({"logs", id});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  ASSERT_GT(all.out.size(), 3u);
  auto tail = kiln({"logs", id, "--offset", "3"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_EQ(tail.out, all.out.substr(3));
  auto follow = kiln({"logs", id, "--follow"});
  EXPECT_EQ(follow.exit_code, 0) << follow.err;
  EXPECT_EQ(follow.out, all.out);
}

TEST_F(FarmCli, SameContextIsSentOnceAndNamedTheSame) {
  start_scheduler();
  std::string first = submit();
  std::string second = submit();
  ASSERT_NE(first, second);
  EXPECT_EQ(status(first)["context"]["digest"], status(second)["context"]["digest"]);
}

TEST_F(FarmCli, LargeContextIsUploadedInChunks) {
  start_scheduler();
  // 3.5 MiB of bytes that do not repeat in step with the 1 MiB chunks.
  std::string big;
  big.reserve(3670016);
  for (std::uint32_t i = 0; big.size() < 3670016; ++i) big += std::to_string(i * 2654435761u) + "\n";
  std::ofstream(dir_ / "ctx/big.bin", std::ios::binary) << big;
  std::string id = submit();
  Json context = status(id)["context"];
  EXPECT_EQ(context["kind"], "tar");
  EXPECT_GT(context["size"].get<std::uint64_t>(), 3u << 20);
  // Resubmitting is answered from the scheduler's copy (same digest).
  EXPECT_EQ(status(submit())["context"]["digest"], context["digest"]);
}

TEST_F(FarmCli, JobsListsAndFilters) {
  start_scheduler();
  std::string queued = submit();
  auto table = kiln({"jobs"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("ID"));
  EXPECT_THAT(table.out, HasSubstr(queued));
  auto json = kiln({"jobs", "--json", "--state", "queued"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json list = Json::parse(json.out);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], queued);
  auto none = kiln({"jobs", "--json", "--state", "succeeded"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(Json::parse(none.out)["jobs"].empty());
  EXPECT_EQ(kiln({"jobs", "--state", "sleeping"}).exit_code, 2);
}

TEST_F(FarmCli, CancelAQueuedJob) {
  start_scheduler();  // no workers: the job stays queued
  std::string id = submit();
  EXPECT_EQ(status(id)["state"], "queued");
  auto r = kiln({"cancel", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id + " cancelled"));
  EXPECT_EQ(status(id)["state"], "cancelled");
  auto again = kiln({"cancel", id});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr(id));
  // Following a cancelled job ends at once, with exit 1 and its own message.
  auto follow = kiln({"logs", id, "--follow"});
  EXPECT_EQ(follow.exit_code, 1);
  EXPECT_THAT(follow.err, HasSubstr("was cancelled"));
}

TEST_F(FarmCli, AdminWorkersJson) {
  start_scheduler();
  start_worker("w1");
  Json w = worker("w1");
  for (const char* key : {"name", "pool", "state", "capacity", "running", "labels", "disk_free_bytes",
                          "last_heartbeat_ms", "connected"})
    EXPECT_TRUE(w.contains(key)) << key << " missing in " << w.dump();
  EXPECT_EQ(w["state"], "active");
  EXPECT_TRUE(w["running"].is_array());
  auto table = kiln({"admin", "workers"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_THAT(table.out, HasSubstr("w1"));
}

TEST_F(FarmCli, PauseUnpauseAndDrain) {
  start_scheduler();
  start_worker("w1");
  auto pause = kiln({"admin", "pause", "w1"});
  ASSERT_EQ(pause.exit_code, 0) << pause.err;
  EXPECT_EQ(worker("w1")["state"], "paused");
  ASSERT_EQ(kiln({"admin", "unpause", "w1"}).exit_code, 0);
  EXPECT_EQ(worker("w1")["state"], "active");
  auto drain = kiln({"admin", "drain", "w1", "--wait"});
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_THAT(drain.out, HasSubstr("w1 drained"));
  EXPECT_EQ(worker("w1")["state"], "draining");
  auto unknown = kiln({"admin", "pause", "nobody"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("nobody"));
}

TEST_F(FarmCli, UnreachableSchedulerAndBadFlags) {
  address_ = "tcp://127.0.0.1:" + std::to_string(free_port());
  auto r = kiln({"jobs"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no answer from the scheduler at " + address_));
  EXPECT_EQ(kiln({"submit", (dir_ / "ctx").string()}).exit_code, 2);  // no -f
  auto commit = kiln({"submit", "-f", spec_, "--commit", "abc"});
  EXPECT_EQ(commit.exit_code, 2);
  EXPECT_THAT(commit.err, HasSubstr("--git"));
  auto label = kiln({"submit", "-f", spec_, "--label", "novalue"});
  EXPECT_EQ(label.exit_code, 2);
  EXPECT_THAT(label.err, HasSubstr("KEY=VALUE"));
}

TEST_F(FarmCli, SecretsTimeoutLabelsAndEstimateAreRecordedButNotTheSecretValue) {
  start_scheduler();
  std::string secret_file = (dir_ / "token.txt").string();
  std::ofstream(secret_file) << "s3cr3t-value";
  std::string id = submit({"--secret", "token:" + secret_file, "--timeout", "120", "--label", "arch=x86_64"});
  auto r = kiln({"status", id, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json job = Json::parse(r.out);
  EXPECT_EQ(job["secret_ids"], Json::array({"token"}));
  EXPECT_EQ(job["timeout_seconds"], 120);
  EXPECT_EQ(job["labels"], Json::array({"arch=x86_64"}));
  EXPECT_EQ(r.out.find("s3cr3t-value"), std::string::npos);
  EXPECT_EQ(kiln({"status", id}).out.find("s3cr3t-value"), std::string::npos);
  std::string estimated = submit({"--estimate", "900"});
  auto e = kiln({"status", estimated, "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(Json::parse(e.out)["estimate_seconds"], 900);
  EXPECT_EQ(job["estimate_seconds"], 0);
  EXPECT_THAT(kiln({"status", estimated}).out, HasSubstr("estimate:  900 s"));
  auto negative = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--estimate", "-5"});
  EXPECT_EQ(negative.exit_code, 2);
  EXPECT_THAT(negative.err, HasSubstr("--estimate"));
  auto missing = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--secret", "token:/no/such/file"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("/no/such/file"));
}

TEST_F(FarmCli, GitContextIsSentByReference) {
  start_scheduler();
  fs::path repo = dir_ / "repo";
  fs::create_directories(repo);
  std::ofstream(repo / "greeting.txt") << "hello\n";
  ASSERT_EQ(run_process({"/usr/bin/git", "init", "-q"}, "", repo.string()).exit_code, 0);
  ASSERT_EQ(run_process({"/usr/bin/git", "add", "."}, "", repo.string()).exit_code, 0);
  ASSERT_EQ(run_process({"/usr/bin/git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
                         "-q", "-m", "one"},
                        "", repo.string())
                .exit_code,
            0);
  std::string commit = last_line(run_process({"/usr/bin/git", "rev-parse", "HEAD"}, "", repo.string()).out);
  ASSERT_EQ(commit.size(), 40u);
  auto r = kiln({"submit", "-f", spec_, "--git", "file://" + repo.string(), "--commit", commit});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json job = status(last_line(r.out));
  EXPECT_EQ(job["context"]["kind"], "git");
  EXPECT_EQ(job["context"]["git_commit"], commit);
  EXPECT_EQ(job["context"]["git_repo"], "file://" + repo.string());
  // Either a directory or git, not both.
  auto both = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--git", "file://" + repo.string(),
                    "--commit", commit});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_THAT(both.err, HasSubstr("exclusive"));
}

TEST_F(FarmCli, BadSpecOrContextFailsBeforeAnythingIsSent) {
  // No scheduler at all: these must fail on their own.
  address_ = "tcp://127.0.0.1:" + std::to_string(free_port());
  std::string bad = (dir_ / "bad.spec").string();
  std::ofstream(bad) << "((from busybox)\n (rnu (shell \"true\")))\n";
  auto r = kiln({"submit", "-f", bad, (dir_ / "ctx").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("bad.spec:2:"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("no answer from the scheduler")));
  auto missing = kiln({"submit", "-f", spec_, (dir_ / "no-such-dir").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no-such-dir"));
  // Too large to submit: said at once, with the limit, without reading it whole.
  std::string huge = (dir_ / "huge.spec").string();
  {
    std::ofstream out(huge);
    out << "((from busybox)\n (comment \"" << std::string(50u << 20, 'x') << "\"))\n";
  }
  auto big = kiln({"submit", "-f", huge, (dir_ / "ctx").string()});
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_THAT(big.err, HasSubstr("spec " + huge + " is over 4.0 MiB, the most a submit takes for it"));
  EXPECT_THAT(big.err, ::testing::Not(HasSubstr("no answer from the scheduler")));
  std::string secret = (dir_ / "secret.bin").string();
  std::ofstream(secret) << std::string(2u << 20, 's');
  auto big_secret = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--secret", "token:" + secret});
  EXPECT_EQ(big_secret.exit_code, 2);
  EXPECT_THAT(big_secret.err,
              HasSubstr("secret file " + secret + " is over 1.0 MiB, the most kiln takes for a secret"));
}

TEST_F(FarmCli, UpInTheForegroundStopsCleanlyOnSigint) {
  int port = free_port_pair();
  std::string farm = (dir_ / "farm").string();
  address_ = "tcp://127.0.0.1:" + std::to_string(port);
  Daemon up({KILN_BINARY, "up", "--fake-build", "--workers", "1", "--port", std::to_string(port), "--http",
             "off", "--dir", farm},
            dir_ / "up.log");
  // The banner comes once the scheduler lists the worker as connected.
  ASSERT_TRUE(eventually([&] { return up.log().find("farm up") != std::string::npos; })) << up.log();
  // The farm runs with CurveZMQ; the banner says which keys reach it.
  EXPECT_THAT(up.log(), HasSubstr("export KILN_KEY=" + farm + "/keys/admin.key KILN_SCHEDULER_KEY=" + farm +
                                  "/keys/scheduler.pub"));
  ::setenv("KILN_KEY", (farm + "/keys/admin.key").c_str(), 1);
  ::setenv("KILN_SCHEDULER_KEY", (farm + "/keys/scheduler.pub").c_str(), 1);
  Json w = worker("worker-1");
  EXPECT_TRUE(!w.is_null() && w.value("connected", false)) << w.dump();
  EXPECT_FALSE(fs::exists(farm + "/farm.json"));  // only detached farms leave one
  EXPECT_EQ(up.signal_and_wait(SIGINT), 0) << up.log();
  EXPECT_THAT(up.log(), HasSubstr("farm stopped"));
  EXPECT_EQ(kiln({"admin", "workers"}).exit_code, 1);  // the scheduler is gone too
}

TEST_F(FarmCli, UpSaysWhichDaemonDiedAndStopsTheRest) {
  int port = free_port_pair();
  std::string farm = (dir_ / "farm").string();
  address_ = "tcp://127.0.0.1:" + std::to_string(port);
  auto up = kiln({"up", "--fake-build", "--workers", "1", "--port", std::to_string(port), "--http", "off",
                  "--dir", farm, "--worker-bin", "/bin/false"},
                 false);
  EXPECT_EQ(up.exit_code, 1);
  EXPECT_THAT(up.err, HasSubstr("worker-1"));
  EXPECT_THAT(up.err, HasSubstr("exited with status 1"));
  EXPECT_EQ(kiln({"admin", "workers"}).exit_code, 1);  // its scheduler was stopped
}

TEST_F(FarmCli, UpDetachedRunsAFarmUntilDown) {
  int port = free_port_pair();
  std::string farm = (dir_ / "farm").string();
  address_ = "tcp://127.0.0.1:" + std::to_string(port);
  auto up = kiln({"up", "--fake-build", "--workers", "2", "--detach", "--port", std::to_string(port),
                  "--http", "off", "--dir", farm},
                 /*with_scheduler=*/false);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_THAT(up.out, HasSubstr("farm up"));
  EXPECT_THAT(up.out, HasSubstr("kiln down --dir " + farm));
  EXPECT_THAT(up.out, HasSubstr("export KILN_KEY=" + farm + "/keys/admin.key"));
  ::setenv("KILN_KEY", (farm + "/keys/admin.key").c_str(), 1);
  ::setenv("KILN_SCHEDULER_KEY", (farm + "/keys/scheduler.pub").c_str(), 1);
  // Without the key the farm refuses, and says why.
  ::unsetenv("KILN_KEY");
  ::unsetenv("KILN_SCHEDULER_KEY");
  auto anonymous = kiln({"admin", "workers"});
  ::setenv("KILN_KEY", (farm + "/keys/admin.key").c_str(), 1);
  ::setenv("KILN_SCHEDULER_KEY", (farm + "/keys/scheduler.pub").c_str(), 1);
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("requires CurveZMQ authentication"));
  EXPECT_TRUE(fs::exists(farm + "/farm.json"));
  EXPECT_TRUE(fs::exists(farm + "/scheduler.log"));
  EXPECT_FALSE(worker("worker-1").is_null());
  EXPECT_FALSE(worker("worker-2").is_null());

  auto again = kiln({"up", "--fake-build", "--detach", "--port", std::to_string(port), "--dir", farm}, false);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already up"));

  auto job = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--follow"});
  EXPECT_EQ(job.exit_code, 0) << job.err;

  auto down = kiln({"down", "--dir", farm}, false);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  EXPECT_THAT(down.out, HasSubstr("stopped"));
  EXPECT_FALSE(fs::exists(farm + "/farm.json"));
  EXPECT_EQ(kiln({"admin", "workers"}).exit_code, 1);  // nothing answers any more
  EXPECT_EQ(kiln({"down", "--dir", farm}, false).exit_code, 1);
}

TEST_F(FarmCli, UpRestartsADaemonThatDiesAndTheRestKeepRunning) {
  int port = free_port_pair();
  std::string farm = (dir_ / "farm").string();
  address_ = "tcp://127.0.0.1:" + std::to_string(port);
  auto up = kiln({"up", "--fake-build", "--workers", "2", "--detach", "--port", std::to_string(port),
                  "--http", "off", "--dir", farm},
                 /*with_scheduler=*/false);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  ::setenv("KILN_KEY", (farm + "/keys/admin.key").c_str(), 1);
  ::setenv("KILN_SCHEDULER_KEY", (farm + "/keys/scheduler.pub").c_str(), 1);
  auto state = [&] {
    std::ifstream in(farm + "/farm.json");
    return Json::parse(in, nullptr, false);
  };
  auto pid_of = [&](const std::string& name) {
    Json s = state();
    if (s.is_discarded()) return -1;
    for (const auto& d : s["daemons"])
      if (d["name"] == name) return d["pid"].get<int>();
    return -1;
  };
  const int supervisor = state()["supervisor"].get<int>();
  ASSERT_GT(supervisor, 0);
  const int scheduler = pid_of("scheduler");
  const int first = pid_of("worker-1");
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // A new worker-1 takes its place; the scheduler and worker-2 were left alone.
  ASSERT_TRUE(eventually([&] { return pid_of("worker-1") > 0 && pid_of("worker-1") != first; }, 30));
  EXPECT_TRUE(eventually(
      [&] {
        Json w = worker("worker-1");
        return !w.is_null() && w.value("connected", false);
      },
      30));
  EXPECT_EQ(pid_of("scheduler"), scheduler);
  EXPECT_EQ(::kill(scheduler, 0), 0);
  std::ifstream log(farm + "/supervisor.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("kiln: worker-1 (pid " + std::to_string(first) + ") was killed by signal 9"));
  EXPECT_THAT(text, HasSubstr("worker-1 restarted"));
  auto job = kiln({"submit", "-f", spec_, (dir_ / "ctx").string(), "--follow"});
  EXPECT_EQ(job.exit_code, 0) << job.err;

  std::vector<int> pids = {supervisor, scheduler, pid_of("worker-1"), pid_of("worker-2")};
  auto down = kiln({"down", "--dir", farm}, false);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  for (int pid : pids) {
    EXPECT_TRUE(eventually([&] { return ::kill(pid, 0) != 0; }, 15))
        << "pid " << pid << " outlived kiln down";
  }
}

}  // namespace
}  // namespace kiln
