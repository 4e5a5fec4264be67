// The private dockerd fixture (local_dockerd.h): it answers, and it leaves
// nothing behind — neither when it is destroyed nor when the test process
// that started it is killed with a container running.
#include "tests/support/local_dockerd.h"

#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/child.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;

// Pids of processes whose command line names `dir`/.
std::vector<pid_t> processes_naming(const std::string& dir) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::stringstream s;
    s << in.rdbuf();
    if (s.str().find(dir + "/") != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

bool mounted_beneath(const std::string& dir) {
  std::ifstream info("/proc/self/mountinfo");
  for (std::string line; std::getline(info, line);)
    if (line.find(" " + dir + "/") != std::string::npos) return true;
  return false;
}

bool process_alive(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

// Everything the fixture made is gone: the directory, the processes, the
// mounts, the cgroups, and the container's process.
void expect_nothing_left(const std::string& dir, const std::string& cgroup_parent, pid_t container_pid) {
  bool clean = eventually(
      [&] {
        return !std::filesystem::exists(dir) && processes_naming(dir).empty() && !mounted_beneath(dir) &&
               !std::filesystem::exists("/sys/fs/cgroup/pids" + cgroup_parent) &&
               !std::filesystem::exists("/sys/fs/cgroup/memory" + cgroup_parent) &&
               (container_pid <= 0 || !process_alive(container_pid));
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(clean) << "left behind: directory " << std::filesystem::exists(dir) << ", processes "
                     << processes_naming(dir).size() << ", mounts " << mounted_beneath(dir) << ", cgroup "
                     << std::filesystem::exists("/sys/fs/cgroup/pids" + cgroup_parent)
                     << ", container process " << (container_pid > 0 && process_alive(container_pid));
}

std::string load_busybox(LocalDockerd& dockerd, const std::string& tmp) {
  auto made = run_process({source_dir() + "/scripts/make-base-image", tmp + "/busybox"});
  if (made.exit_code != 0) return made.err;
  return dockerd.load_image("oci:" + tmp + "/busybox:latest", "kiln-test/busybox:latest");
}

pid_t container_pid(const LocalDockerd& dockerd, const std::string& name) {
  auto r = dockerd.docker({"inspect", "-f", "{{.State.Pid}}", name});
  return r.exit_code == 0 ? std::stoi(r.out) : -1;
}

TEST(LocalDockerdTest, AnswersAndRemovesEverythingWhenDestroyed) {
  TempDir tmp;
  std::string dir, cgroup;
  pid_t sleeper = -1;
  {
    LocalDockerd dockerd;
    ASSERT_EQ(dockerd.start_error(), "");
    dir = dockerd.dir();
    cgroup = dockerd.cgroup_parent();
    EXPECT_GT(dockerd.dockerd_pid(), 0);
    auto version = dockerd.docker({"version", "--format", "{{.Server.APIVersion}}"});
    EXPECT_EQ(version.out, "1.41\n") << version.err;
    ASSERT_EQ(load_busybox(dockerd, tmp.path()), "");
    auto ran = dockerd.docker(
        {"run", "-d", "--name", "sleeper", "--network", "none", "kiln-test/busybox:latest", "sleep", "1000"});
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
    sleeper = container_pid(dockerd, "sleeper");
    EXPECT_GT(sleeper, 0);
    EXPECT_TRUE(std::filesystem::exists("/sys/fs/cgroup/pids" + cgroup));
  }
  expect_nothing_left(dir, cgroup, sleeper);
}

TEST(LocalDockerdTest, CleansUpAfterTheTestProcessIsKilled) {
  TempDir tmp;
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t test_process = ::fork();
  ASSERT_GE(test_process, 0);
  if (test_process == 0) {
    // Plays a test that is killed mid-run: it never destroys its fixture.
    ::close(report[0]);
    LocalDockerd* dockerd = new LocalDockerd();
    std::string message;
    if (!dockerd->start_error().empty()) {
      message = "error " + dockerd->start_error();
    } else if (std::string e = load_busybox(*dockerd, tmp.path()); !e.empty()) {
      message = "error " + e;
    } else {
      auto ran = dockerd->docker({"run", "-d", "--name", "sleeper", "--network", "none",
                                  "kiln-test/busybox:latest", "sleep", "1000"});
      message = ran.exit_code != 0 ? "error " + ran.err
                                   : dockerd->dir() + " " + dockerd->cgroup_parent() + " " +
                                         std::to_string(container_pid(*dockerd, "sleeper"));
    }
    message += "\n";
    (void)!::write(report[1], message.data(), message.size());
    ::pause();
    _exit(0);
  }
  ::close(report[1]);
  std::string message;
  char buffer[4096];
  for (ssize_t n; (n = ::read(report[0], buffer, sizeof buffer)) > 0;) {
    message.append(buffer, static_cast<std::size_t>(n));
    if (message.ends_with("\n")) break;
  }
  ::close(report[0]);
  ASSERT_FALSE(message.starts_with("error")) << message;
  std::istringstream fields(message);
  std::string dir, cgroup;
  pid_t sleeper = -1;
  fields >> dir >> cgroup >> sleeper;
  ASSERT_GT(sleeper, 0) << message;
  EXPECT_TRUE(process_alive(sleeper));
  EXPECT_FALSE(processes_naming(dir).empty());

  ::kill(test_process, SIGKILL);
  int status = 0;
  ::waitpid(test_process, &status, 0);
  expect_nothing_left(dir, cgroup, sleeper);
}

TEST(LocalDockerdTest, ABadFlagIsReportedWithDockerdsLog) {
  std::unique_ptr<LocalDockerd> dockerd;
  ::testing::TestPartResultArray failures;
  {
    // The fixture fails the test it runs in; here that failure is the point.
    ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    dockerd = std::make_unique<LocalDockerd>(
        LocalDockerdOptions{.ready_timeout = std::chrono::seconds(30), .extra_args = {"--no-such-flag"}});
  }
  ASSERT_EQ(failures.size(), 1);
  EXPECT_THAT(failures.GetTestPartResult(0).message(), HasSubstr("dockerd exited with status"));
  EXPECT_THAT(dockerd->start_error(), HasSubstr("dockerd exited with status"));
  EXPECT_THAT(dockerd->start_error(), HasSubstr("no-such-flag"));
  std::string dir = dockerd->dir();
  dockerd.reset();
  expect_nothing_left(dir, "/none", -1);
}

}  // namespace
}  // namespace kiln::testing
