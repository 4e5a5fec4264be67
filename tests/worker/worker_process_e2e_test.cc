// kiln-worker as a process with real builds (runc, real stores, a private
// dockerd for the docker store, the busybox base image from
// scripts/make-base-image) against an in-test scheduler (FakeScheduler): what
// a worker's steps get and what happens to them when the worker dies. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "tests/support/child.h"
#include "tests/support/local_dockerd.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "worker/daemon/testing/fake_scheduler.h"
#include "worker/sandbox/testing/sandbox_test_util.h"

namespace kiln::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
using kiln::sandbox::testing::host_processes_with;
using kiln::sandbox::testing::read_text_file;
using kiln::sandbox::testing::unique_number;

// The base image, made once for the whole binary.
std::string g_image_dir;

class BaseImage : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<kiln::testing::TempDir>();
    g_image_dir = dir_->path() + "/busybox";
    auto r =
        kiln::testing::run_process({kiln::testing::source_dir() + "/scripts/make-base-image", g_image_dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { dir_.reset(); }

 private:
  std::unique_ptr<kiln::testing::TempDir> dir_;
};
const auto* const kBaseImage = ::testing::AddGlobalTestEnvironment(new BaseImage);

proto::Assign assign(const std::string& job_id, const std::string& spec) {
  proto::Assign a;
  a.job_id = job_id;
  a.attempt = 1;
  a.job.spec = spec;
  a.job.spec_name = "test.spec";
  return a;
}

// "memory" -> "/kiln/<hash>/<id>" from /proc/PID/cgroup: the step's own
// cgroup (kiln's, where its limits are), parent of the container's "ctr".
std::string step_cgroup(const std::string& pid, const std::string& controller) {
  std::istringstream in(read_text_file("/proc/" + pid + "/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (("," + controllers + ",").find("," + controller + ",") == std::string::npos) continue;
    if (path.ends_with("/ctr")) path.resize(path.size() - 4);
    return path;
  }
  return "";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class WorkerProcessE2eTest : public ::testing::Test {
 protected:
  std::unique_ptr<kiln::testing::Child> start_worker(testing::FakeScheduler& scheduler,
                                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {KILN_WORKER_BINARY,
                                     "--name",
                                     "w1",
                                     "--scheduler",
                                     scheduler.address(),
                                     "--state-dir",
                                     state_,
                                     "--capacity",
                                     "1",
                                     "--image-alias",
                                     "busybox=oci:" + g_image_dir + ":latest"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<kiln::testing::Child>(
        argv, dir_.path() + "/worker-" + std::to_string(++starts_) + ".log");
  }

  // The pid of the one host process whose command line has `marker`, once it runs.
  std::string wait_for_process(const std::string& marker, kiln::testing::Child& worker) {
    std::vector<std::string> found;
    bool running =
        kiln::testing::eventually([&] { return (found = host_processes_with(marker)).size() == 1; }, 120s);
    EXPECT_TRUE(running) << "the step never ran:\n" << worker.log();
    return running ? found[0].substr(0, found[0].find(':')) : "";
  }

  // Mounts a fresh ext4 filesystem of `size` at DIR/name.
  std::string small_filesystem(const std::string& name, const std::string& size) {
    std::string image = dir_.path() + "/" + name + ".img", mount_point = dir_.path() + "/" + name;
    fs::create_directories(mount_point);
    for (const std::vector<std::string>& cmd : {std::vector<std::string>{"truncate", "-s", size, image},
                                                {"mkfs.ext4", "-q", image},
                                                {"mount", "-o", "loop", image, mount_point}}) {
      auto r = run_command(cmd, {.timeout = 60s});
      EXPECT_TRUE(r && r->ok()) << format_command(cmd) << ": " << (r ? r->output : r.error().to_string());
    }
    return mount_point;
  }

  kiln::testing::TempDir dir_{"kiln-worker-e2e"};
  std::string state_ = dir_.path() + "/w1";
  int starts_ = 0;
};

TEST_F(WorkerProcessE2eTest, AKilledWorkersStepDiesWithinSecondsAndItsRestartCleansUp) {
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler);
  scheduler.accept_registration();
  const std::string marker = "sleep " + unique_number();
  scheduler.send(assign("long", "((from busybox) (run (shell \"" + marker + "\")))"));
  ASSERT_FALSE(wait_for_process(marker, *worker).empty());

  worker->kill_now();  // SIGKILL
  auto killed = std::chrono::steady_clock::now();
  while (!host_processes_with(marker).empty() && std::chrono::steady_clock::now() < killed + 2s)
    std::this_thread::sleep_for(5ms);
  RecordProperty("ms_until_the_step_was_gone",
                 static_cast<int>((std::chrono::steady_clock::now() - killed) / 1ms));
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{}) << "the step outlived its worker by 2 s";

  // The next start removes what the killed step left (a scheduler of its
  // own: the first one still holds the dead worker's messages).
  testing::FakeScheduler again_scheduler;
  auto again = start_worker(again_scheduler);
  again_scheduler.accept_registration();
  EXPECT_THAT(again->log(), HasSubstr("removed leftovers of an earlier run: containers kiln-"));
  EXPECT_THAT(again->log(), HasSubstr("1 bundle directories"));
  auto list = run_command({"runc", "--root", state_ + "/sandbox/runtime", "list", "-q"}, {.timeout = 30s});
  ASSERT_TRUE(list && list->ok());
  EXPECT_EQ(list->output, "");
  EXPECT_TRUE(fs::is_empty(state_ + "/sandbox/bundles"));
  EXPECT_EQ(again->stop(), 0) << again->log();
}

// The same on the docker store: the step is a container of a private
// dockerd, and the worker's watchdog kills its processes through the cgroup
// parent the docker sandbox gives it; the restarted worker's store open
// removes the stopped container.
TEST_F(WorkerProcessE2eTest, AKilledDockerWorkersStepContainerStopsAndItsRestartRemovesIt) {
  kiln::testing::LocalDockerd dockerd;
  ASSERT_EQ(dockerd.start_error(), "");
  const std::vector<std::string> on_docker = {"--store", "docker:kiln-wp", "--docker-host", dockerd.host()};
  auto containers = [&](const std::string& state) {
    auto r =
        dockerd.docker({"ps", "-aq", "--filter", "label=kiln.store=kiln-wp", "--filter", "status=" + state});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler, on_docker);
  scheduler.accept_registration();
  scheduler.send(assign("long", "((from busybox) (run (shell \"sleep 600\")))"));
  ASSERT_TRUE(kiln::testing::eventually([&] { return !containers("running").empty(); }, 120s))
      << worker->log();

  worker->kill_now();  // SIGKILL
  EXPECT_TRUE(kiln::testing::eventually([&] { return containers("running").empty(); }, 15s))
      << "the step container still runs 15 s after its worker was killed";

  testing::FakeScheduler again_scheduler;
  auto again = start_worker(again_scheduler, on_docker);
  again_scheduler.accept_registration();
  EXPECT_EQ(containers("exited") + containers("created") + containers("running"), "");
  EXPECT_EQ(again->stop(), 0) << again->log();
}

// The pid of the watchdog (comm "kiln-watchdog") that `worker` forked, or 0.
pid_t watchdog_of(pid_t worker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (trimmed(read_text_file(e.path() / "comm")) != "kiln-watchdog") continue;
    std::istringstream status(read_text_file(e.path() / "status"));
    std::string line;
    while (std::getline(status, line))
      if (line.starts_with("PPid:") && std::stoi(line.substr(5)) == worker) return std::stoi(name);
  }
  return 0;
}

TEST_F(WorkerProcessE2eTest, AStepLeftRunningByAWorkerKilledWithItsWatchdogIsKilledByTheNextStart) {
  // Both killed at once (the watchdog first, as a kill of every process on
  // the host might): nothing kills the step then but the next start.
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler);
  scheduler.accept_registration();
  const std::string marker = "sleep " + unique_number();
  scheduler.send(assign("orphan", "((from busybox) (run (shell \"" + marker + "\")))"));
  ASSERT_FALSE(wait_for_process(marker, *worker).empty());
  const pid_t watchdog = watchdog_of(worker->pid());
  ASSERT_GT(watchdog, 0) << "no kiln-watchdog child of the worker";
  ASSERT_EQ(::kill(watchdog, SIGKILL), 0);
  worker->kill_now();
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(host_processes_with(marker).size(), 1u) << "the step died without its watchdog";

  testing::FakeScheduler again_scheduler;
  auto again = start_worker(again_scheduler);
  again_scheduler.accept_registration();
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_THAT(again->log(), HasSubstr("removed leftovers of an earlier run: containers kiln-"));
  auto list = run_command({"runc", "--root", state_ + "/sandbox/runtime", "list", "-q"}, {.timeout = 30s});
  ASSERT_TRUE(list && list->ok());
  EXPECT_EQ(list->output, "");
  EXPECT_EQ(again->stop(), 0) << again->log();
}

TEST_F(WorkerProcessE2eTest, EveryStepGetsTheDefaultMemoryAndProcessLimits) {
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler);
  scheduler.accept_registration();
  const std::string marker = "sleep " + unique_number();
  scheduler.send(assign("limited", "((from busybox) (run (shell \"" + marker + "\")))"));
  std::string pid = wait_for_process(marker, *worker);
  ASSERT_FALSE(pid.empty());
  std::string memory = step_cgroup(pid, "memory"), pids = step_cgroup(pid, "pids");
  ASSERT_THAT(memory, ::testing::StartsWith("/kiln/"));
  const std::uint64_t half_ram =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) / 2;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(trimmed(read_text_file("/sys/fs/cgroup/memory" + memory + "/memory.limit_in_bytes")),
            std::to_string(half_ram / page * page));  // the kernel rounds down to pages
  EXPECT_EQ(trimmed(read_text_file("/sys/fs/cgroup/pids" + pids + "/pids.max")), "4096");
  EXPECT_THAT(worker->log(), HasSubstr("(default: half of this host's RAM), processes 4096 (default)"));
  EXPECT_EQ(worker->stop(), 0) << worker->log();
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
}

TEST_F(WorkerProcessE2eTest, AForkBombAndAMemoryHogFailWithTheLimitNamed) {
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler, {"--pids", "64", "--memory", "64M"});
  scheduler.accept_registration();
  scheduler.send(assign("bomb", "((from busybox) (run (shell \"bomb() { bomb & bomb; }; bomb\")))"));
  auto bomb = scheduler.events_until_done(nullptr, 120s).back();
  EXPECT_EQ(bomb.outcome, "failed");
  EXPECT_THAT(bomb.error, HasSubstr("(pids limit of 64 reached: the step could not start more processes)"));

  scheduler.send(assign("hog", "((from busybox) (run (shell \"head -c 200m /dev/zero | tail\")))"));
  auto hog = scheduler.events_until_done(nullptr, 120s).back();
  EXPECT_EQ(hog.outcome, "failed");
  EXPECT_THAT(hog.error, HasSubstr("killed: memory limit of 64.0 MiB reached"));
  EXPECT_EQ(worker->stop(), 0) << worker->log();
}

TEST_F(WorkerProcessE2eTest, AStepThatFillsTheStoresDiskFailsSayingSo) {
  std::string small = small_filesystem("small", "64M");
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler, {"--store", "overlayfs:" + small + "/store"});
  scheduler.accept_registration();
  scheduler.send(
      assign("fill", "((from busybox) (run (shell \"dd if=/dev/zero of=/big bs=1M count=100\")))"));
  std::string log;
  auto done = scheduler.events_until_done(&log, 120s).back();
  EXPECT_EQ(done.outcome, "failed");
  EXPECT_THAT(done.error, HasSubstr("no space left on device"));
  EXPECT_EQ(worker->stop(), 0) << worker->log();
}

// How often `text` occurs in `log`.
int occurrences(const std::string& log, const std::string& text) {
  int n = 0;
  for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + text.size())) ++n;
  return n;
}

TEST_F(WorkerProcessE2eTest, AWorkerShortOfDiskKeepsFreshResultsAndLogsWhatItPrunedAndWhy) {
  // Issue 13: right after a job succeeded, a worker short of disk pruned the
  // result it had just reported. With the default --prune-min-age the passes
  // at start and after the job remove nothing and say why.
  const std::vector<std::string> always_low = {"--prune-below-bytes", "1000T"};
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler, always_low);
  scheduler.accept_registration();
  scheduler.send(assign("fresh", "((from busybox) (run (shell \"echo fresh\")))"));
  auto done = scheduler.events_until_done(nullptr, 120s).back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error << "\n" << worker->log();
  const std::string kept_fresh =
      "nothing more may be pruned (kept: results used in the last 10m 00s (--prune-min-age))";
  EXPECT_TRUE(kiln::testing::eventually([&] { return occurrences(worker->log(), kept_fresh) >= 2; }, 60s))
      << "no prune pass after the job:\n"
      << worker->log();
  EXPECT_THAT(worker->log(), Not(HasSubstr("pruned 2 result(s)")));
  EXPECT_EQ(worker->stop(), 0) << worker->log();

  // Both results (the base and the step) were still there: a restart with
  // no minimum age prunes them at once and says what and why.
  testing::FakeScheduler again_scheduler;
  auto again = start_worker(again_scheduler, {"--prune-below-bytes", "1000T", "--prune-min-age", "0"});
  again_scheduler.accept_registration();
  EXPECT_TRUE(kiln::testing::eventually(
      [&] { return again->log().find("pruned 2 result(s)") != std::string::npos; }, 60s))
      << again->log();
  EXPECT_THAT(again->log(),
              ::testing::ContainsRegex(
                  "pruned 2 result\\(s\\), [0-9.]+ (B|[KMG]iB), last used [0-9T:Z-]+ to [0-9T:Z-]+, "
                  "because the store's filesystem had [0-9.]+ [KMGT]iB free, below "
                  "--prune-below-bytes 1000.0 TiB; kept: results used in the last 0 s "
                  "\\(--prune-min-age\\); now "));
  EXPECT_EQ(again->stop(), 0) << again->log();
}

TEST_F(WorkerProcessE2eTest, WithUsernsStepsRunAsAnUnprivilegedHostUid) {
  testing::FakeScheduler scheduler;
  auto worker = start_worker(scheduler, {"--userns", "--store", "rsync:" + dir_.path() + "/store"});
  scheduler.accept_registration();
  scheduler.send(assign("userns", "((from busybox) (run (shell \"cat /proc/self/uid_map; id -u\")))"));
  std::string log;
  auto done = scheduler.events_until_done(&log, 120s).back();
  ASSERT_EQ(done.outcome, "succeeded") << done.error << "\n" << worker->log();
  EXPECT_THAT(log, ::testing::ContainsRegex("0 +1000000000 +65536\n0\n"));
  EXPECT_THAT(worker->log(), HasSubstr("in a user namespace (--userns)"));
  EXPECT_EQ(worker->stop(), 0) << worker->log();
}

}  // namespace
}  // namespace kiln::worker
