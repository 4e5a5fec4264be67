// RuncSandbox against the real runtimes (runc, and crun for the basics), as
// root, with a busybox root filesystem built by the fixture.
#include "worker/sandbox/runc_sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/testing/sandbox_test_util.h"

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::host_processes_with;
using testing::make_busybox_rootfs;
using testing::unique_number;
std::string read_file(const fs::path& p) {
  return testing::read_text_file(p);
}
void write_file(const fs::path& p, std::string_view content) {
  testing::write_text_file(p, content);
}

// Waits up to 10 s for `condition`; true if it came true.
bool eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { set_up(OciRuntime::kRunc); }

  void set_up(OciRuntime runtime, OciOptions oci = {}) {
    runtime_ = runtime;
    oci_ = oci;
    temp_.emplace("kiln-sandbox-test");
    dir_ = temp_->path();
    rootfs_ = dir_ / "rootfs";
    state_ = dir_ / "state";
    make_busybox_rootfs(rootfs_);
    auto sandbox = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
    ASSERT_TRUE(sandbox) << sandbox.error().to_string();
    sandbox_ = std::move(*sandbox);
  }

  void TearDown() override {
    // Whatever a failed test left running goes (it would outlive the test).
    if (sandbox_) {
      for (const auto& id : runtime_containers())
        (void)run_command(sandbox_->runtime_command({"delete", "--force", id}), {.timeout = 30s});
      (void)StepCgroup::remove_group_leftovers(sandbox_->cgroup_group());
    }
    sandbox_.reset();
    temp_.reset();
  }

  static RunSpec sh(const std::string& command) {
    RunSpec spec;
    spec.argv = {"/bin/sh", "-c", command};
    spec.env = {"PATH=/bin"};
    return spec;
  }

  Status run(const RunSpec& spec, std::string* output = nullptr) {
    CancelToken cancel;
    std::string out;
    Status s = sandbox_->run(
        spec, rootfs_.string(), [&](std::string_view c) { out += c; }, cancel);
    if (output) *output = out;
    return s;
  }

  std::string run_ok(const RunSpec& spec) {
    std::string out;
    Status s = run(spec, &out);
    EXPECT_TRUE(s) << s.error().to_string() << "\noutput: " << out;
    return out;
  }

  std::vector<std::string> runtime_containers() {
    auto out = run_command(sandbox_->runtime_command({"list", "-q"}), {.timeout = 30s});
    EXPECT_TRUE(out && out->ok()) << (out ? out->output : out.error().to_string());
    std::vector<std::string> ids;
    std::istringstream in(out ? out->output : "");
    std::string id;
    while (in >> id) ids.push_back(id);
    return ids;
  }

  // Directories of this sandbox's step cgroups still present on the host.
  std::vector<std::string> step_cgroups() {
    std::vector<std::string> left;
    auto mounts = cgroup_mounts();
    EXPECT_TRUE(mounts);
    for (const auto& m : *mounts) {
      fs::path group = fs::path(m.path) / sandbox_->cgroup_group();
      if (!fs::exists(group)) continue;
      for (const auto& e : fs::directory_iterator(group))
        if (e.is_directory()) left.push_back(e.path().string());
    }
    return left;
  }

  // A worker killed with kill -9 in the middle of a long step, played by a
  // child process that owns the sandbox and runs the step: within 3 s of its
  // death no process of the step may be left, and the next owner of the
  // state directory removes what the step left on disk.
  void kill_the_owner_mid_step_then_start_again() {
    const OciRuntime runtime = runtime_;
    const OciOptions oci = oci_;
    const std::string marker = "sleep " + unique_number();
    sandbox_.reset();
    pid_t owner = ::fork();
    ASSERT_GE(owner, 0);
    if (owner == 0) {
      auto sandbox = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
      if (!sandbox) ::_exit(10);
      CancelToken cancel;
      (void)(*sandbox)->run(sh(marker), rootfs_.string(), nullptr, cancel);
      ::_exit(11);  // not reached: the test kills this process first
    }
    bool started = eventually([&] { return host_processes_with(marker).size() == 1; });
    ::kill(owner, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(owner, &status, 0), owner);
    ASSERT_TRUE(started) << "the step never started; the owner exited with " << describe_wait_status(status);
    ASSERT_TRUE(WIFSIGNALED(status)) << describe_wait_status(status);

    auto killed = std::chrono::steady_clock::now();
    while (!host_processes_with(marker).empty() && std::chrono::steady_clock::now() < killed + 3s)
      std::this_thread::sleep_for(5ms);
    RecordProperty("ms_until_the_step_was_gone",
                   static_cast<int>((std::chrono::steady_clock::now() - killed) / 1ms));
    EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{})
        << "the step outlived its owner by 3 s";

    auto again = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
    ASSERT_TRUE(again) << again.error().to_string();
    sandbox_ = std::move(*again);
    EXPECT_EQ(sandbox_->leftovers().containers.size(), 1u) << sandbox_->leftovers().to_string();
    EXPECT_EQ(sandbox_->leftovers().bundles, 1) << sandbox_->leftovers().to_string();
    EXPECT_TRUE(runtime_containers().empty());
    EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
    EXPECT_TRUE(fs::is_empty(state_ / "bundles"));
    EXPECT_EQ(run_ok(sh("echo ok")), "ok\n");
  }

  std::optional<kiln::testing::TempDir> temp_;
  fs::path dir_, rootfs_, state_;
  OciRuntime runtime_ = OciRuntime::kRunc;
  OciOptions oci_;
  std::unique_ptr<RuncSandbox> sandbox_;
};

TEST_F(SandboxTest, OutputIsStreamedWhileTheCommandRuns) {
  // The command waits for a file that the output sink creates when it sees
  // the first line: this only finishes if output arrives as it is produced.
  // Separate processes write the later lines, so that busybox's stdout
  // buffering cannot reorder them; stderr lands in the same stream.
  RunSpec spec = sh(
      "echo first; while [ ! -e /go ]; do sleep 0.05; done; sh -c 'echo to-stderr >&2'; sh -c 'echo second'");
  spec.timeout = 60s;
  CancelToken cancel;
  std::string out;
  Status s = sandbox_->run(
      spec, rootfs_.string(),
      [&](std::string_view chunk) {
        out += chunk;
        if (out.find("first\n") != std::string::npos) write_file(rootfs_ / "go", "");
      },
      cancel);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(out, "first\nto-stderr\nsecond\n");
}

TEST_F(SandboxTest, NonZeroExitIsReportedWithItsStatus) {
  std::string out;
  Status s = run(sh("echo before; exit 3"), &out);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_EQ(s.error().message(), "command exited with status 3");
  EXPECT_EQ(out, "before\n");
}

TEST_F(SandboxTest, SignalDeathIsReportedAsSuch) {
  // The step's first process killed from outside (inside, as its namespace's
  // init, it would ignore signals)...
  const std::string number = unique_number();
  RunSpec direct;
  direct.argv = {"/bin/sleep", number};
  std::thread killer([&] {
    std::vector<std::string> found;
    ASSERT_TRUE(eventually([&] { return !(found = host_processes_with("sleep " + number)).empty(); }));
    ::kill(std::stoi(found[0]), SIGKILL);
  });
  Status s = run(direct);
  killer.join();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "command was killed by signal 9 (SIGKILL)");

  // ...and a shell reporting its child's death the shell way.
  Status shell = run(sh("sh -c 'kill -TERM $$'; exit $?"));
  ASSERT_FALSE(shell);
  EXPECT_EQ(shell.error().message(),
            "command exited with status 143 (128 + 15: a process was killed by SIGTERM)");
}

TEST_F(SandboxTest, MissingProgramIsReportedAsNotStarted) {
  RunSpec spec;
  spec.argv = {"/bin/no-such-program"};
  Status s = run(spec);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_NE(s.error().message().find("could not start the command /bin/no-such-program"), std::string::npos)
      << s.error().message();
}

TEST_F(SandboxTest, CwdEnvAndUserAreApplied) {
  fs::create_directories(rootfs_ / "work");
  RunSpec spec = sh("pwd; echo $GREETING; id -u; id -g; touch mine; stat -c %u:%g mine");
  spec.cwd = "/work";
  spec.env.push_back("GREETING=hello world");
  spec.uid = 1000;
  spec.gid = 100;
  fs::permissions(rootfs_ / "work", fs::perms::all);
  EXPECT_EQ(run_ok(spec), "/work\nhello world\n1000\n100\n1000:100\n");
}

std::string host_network_namespace() {
  return fs::read_symlink("/proc/self/ns/net").string();
}

TEST_F(SandboxTest, DefaultNetworkHasOnlyLoopback) {
  std::string out = run_ok(sh("ls /sys/class/net; readlink /proc/self/ns/net"));
  EXPECT_EQ(out.substr(0, out.find('\n')), "lo");
  EXPECT_NE(out.substr(out.find('\n') + 1), host_network_namespace() + "\n");
}

TEST_F(SandboxTest, HostNetworkSeesTheHostsInterfaces) {
  std::set<std::string> host;
  for (const auto& e : fs::directory_iterator("/sys/class/net")) host.insert(e.path().filename());
  RunSpec spec = sh("ls /sys/class/net; readlink /proc/self/ns/net");
  spec.network = {"host"};
  std::istringstream out(run_ok(spec));
  std::set<std::string> seen;
  std::string word, ns;
  while (out >> word) {
    if (word.starts_with("net:["))
      ns = word;
    else
      seen.insert(word);
  }
  EXPECT_EQ(seen, host);
  EXPECT_EQ(ns, host_network_namespace());
}

TEST_F(SandboxTest, HostnameIsBuilderAndResolvesToLoopback) {
  // busybox's ping resolves through /etc/hosts and prints the address even
  // when it may not send (no CAP_NET_RAW).
  std::string out = run_ok(sh("hostname; cat /etc/hosts; ping -c 1 -W 1 builder 2>&1 | head -n 1; true"));
  EXPECT_EQ(out.substr(0, out.find('\n')), "builder");
  EXPECT_NE(out.find("127.0.0.1\tlocalhost builder"), std::string::npos) << out;
  EXPECT_NE(out.find("PING builder (127.0.0.1)"), std::string::npos) << out;
  // The runtime created /etc/hosts as a mount point; it must not stay in the result.
  EXPECT_FALSE(fs::exists(rootfs_ / "etc/hosts"));
}

TEST_F(SandboxTest, CapabilitiesAreReduced) {
  std::string out = run_ok(sh("grep CapEff /proc/self/status"));
  unsigned long long eff = std::stoull(out.substr(out.find(':') + 1), nullptr, 16);
  EXPECT_EQ(eff, default_capability_mask()) << out;
  // A non-root step has none in effect.
  RunSpec user = sh("grep CapEff /proc/self/status");
  user.uid = 1000;
  user.gid = 1000;
  EXPECT_EQ(run_ok(user), "CapEff:\t0000000000000000\n");
  // And they matter: root in the step cannot mount.
  std::string mount_out;
  Status s = run(sh("mount -t tmpfs none /tmp"), &mount_out);
  EXPECT_FALSE(s);
}

TEST_F(SandboxTest, MaskedPathsAreEmptyAndProcSysIsReadOnly) {
  ASSERT_FALSE(read_file("/proc/timer_list").empty()) << "the host should show /proc/timer_list";
  ASSERT_FALSE(fs::is_empty("/sys/firmware"));
  std::string out =
      run_ok(sh("wc -c < /proc/timer_list; ls /sys/firmware | wc -l;"
                "(echo 1 > /proc/sys/vm/drop_caches) 2>/dev/null && echo writable || echo read-only"));
  EXPECT_EQ(out, "0\n0\nread-only\n");
}

TEST_F(SandboxTest, CacheMountIsWritableAndPersistsOnTheHost) {
  fs::path cache = dir_ / "cache";
  fs::create_directories(cache);
  write_file(cache / "old", "from an earlier build\n");
  RunSpec spec = sh("cat /var/cache/c/old; echo new > /var/cache/c/new");
  spec.mounts = {{cache.string(), "/var/cache/c", false}};
  EXPECT_EQ(run_ok(spec), "from an earlier build\n");
  EXPECT_EQ(read_file(cache / "new"), "new\n");
  // Written through the mount, not into the rootfs.
  EXPECT_FALSE(fs::exists(rootfs_ / "var/cache/c/new"));
}

TEST_F(SandboxTest, SecretIsReadableReadOnlyAndLeavesNoTrace) {
  const std::string value = "s3cret-" + unique_number();
  RunSpec spec =
      sh("cat /run/secrets/token; echo; stat -c '%a %u' /run/secrets/token;"
         "(echo x > /run/secrets/token) 2>/dev/null && echo writable || echo read-only");
  spec.secrets = {{"/run/secrets/token", value}};
  spec.uid = 1000;
  spec.gid = 1000;
  EXPECT_EQ(run_ok(spec), value + "\n400 1000\nread-only\n");

  // Nothing of it in the result or the sandbox's state directory.
  EXPECT_FALSE(fs::exists(rootfs_ / "run")) << "the runtime's mount point stubs must be removed";
  for (const fs::path& tree : {rootfs_, state_}) {
    for (auto it = fs::recursive_directory_iterator(tree); it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_regular_file() && !it->is_symlink()) {
        EXPECT_EQ(read_file(it->path()).find(value), std::string::npos) << it->path();
      }
    }
  }
}

TEST_F(SandboxTest, SecretIsNotInTheOutputUnlessPrinted) {
  const std::string value = "hidden-" + unique_number();
  RunSpec spec = sh("wc -c < /etc/token; ls /etc");
  spec.secrets = {{"/etc/token", value}};
  std::string out = run_ok(spec);
  EXPECT_EQ(out.substr(0, out.find('\n')), std::to_string(value.size()));
  EXPECT_EQ(out.find(value), std::string::npos);
  EXPECT_FALSE(fs::exists(rootfs_ / "etc/token"));
}

TEST_F(SandboxTest, WhatTheStepWroteBesideASecretStays) {
  RunSpec spec = sh("touch /run/secrets/.keep; echo data > /run/kept");
  spec.secrets = {{"/run/secrets/token", "v"}};
  run_ok(spec);
  EXPECT_TRUE(fs::exists(rootfs_ / "run/secrets/.keep"));
  EXPECT_EQ(read_file(rootfs_ / "run/kept"), "data\n");
  EXPECT_FALSE(fs::exists(rootfs_ / "run/secrets/token"));
}

TEST_F(SandboxTest, StdinFromBytesAndFromAnFd) {
  RunSpec spec = sh("cat; echo; wc -c");
  spec.stdin_data = stdin_from_bytes("hello stdin");
  EXPECT_EQ(run_ok(spec), "hello stdin\n0\n");

  // More than a pipe holds, in chunks: exercises partial, non-blocking writes.
  int chunks = 64;
  RunSpec big = sh("wc -c");
  big.stdin_data = [&chunks]() -> Result<std::string> {
    if (chunks-- == 0) return std::string();
    return std::string(16384, 'x');
  };
  EXPECT_EQ(run_ok(big), "1048576\n");

  write_file(dir_ / "input", "from a file\n");
  UniqueFd fd(::open((dir_ / "input").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);
  RunSpec from_fd = sh("cat");
  from_fd.stdin_fd = fd.get();
  EXPECT_EQ(run_ok(from_fd), "from a file\n");
}

TEST_F(SandboxTest, StdinProviderErrorFailsTheRun) {
  RunSpec spec = sh("cat > /dev/null");
  spec.stdin_data = []() -> Result<std::string> { return make_error(ErrorKind::kIo, "tar stream broke"); };
  Status s = run(spec);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kIo);
  EXPECT_NE(s.error().to_string().find("tar stream broke"), std::string::npos);
  EXPECT_TRUE(runtime_containers().empty());
}

TEST_F(SandboxTest, ThrowingOutputSinkStopsTheStepAndLeavesNothing) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  Status s = sandbox_->run(
      sh("echo hello; " + marker), rootfs_.string(),
      [](std::string_view) { throw std::runtime_error("log disk full"); }, cancel);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kInternal);
  EXPECT_NE(s.error().message().find("log disk full"), std::string::npos) << s.error().message();
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
}

TEST_F(SandboxTest, CancelKillsTheContainerAndLeavesNothing) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  std::atomic<bool> started{false};
  std::thread canceller([&] {
    while (!started) std::this_thread::sleep_for(10ms);
    cancel.cancel();
  });
  auto begin = std::chrono::steady_clock::now();
  std::string out;
  Status s = sandbox_->run(
      sh("echo started; " + marker + "; echo not-reached"), rootfs_.string(),
      [&](std::string_view c) {
        out += c;
        if (out.find("started") != std::string::npos) started = true;
      },
      cancel);
  canceller.join();
  auto took = std::chrono::steady_clock::now() - begin;
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled);
  EXPECT_LT(took, 60s) << "cancel must not wait for the command";
  EXPECT_EQ(out, "started\n");
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
}

TEST_F(SandboxTest, CancelledBeforeStartRunsNothing) {
  CancelToken cancel;
  cancel.cancel();
  Status s = sandbox_->run(sh("touch /ran"), rootfs_.string(), nullptr, cancel);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled);
  EXPECT_FALSE(fs::exists(rootfs_ / "ran"));
}

TEST_F(SandboxTest, TimeoutKillsTheStepWithAClearMessage) {
  const std::string marker = "sleep " + unique_number();
  RunSpec spec = sh(marker);
  spec.timeout = 1s;
  Status s = run(spec);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kTimeout);
  EXPECT_EQ(s.error().message(), "timed out after 1 s (the step's time limit); the container was killed");
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
}

TEST_F(SandboxTest, MemoryLimitHitIsNamed) {
  RunSpec spec = sh("head -c 200m /dev/zero | tail");
  spec.limits.memory_bytes = 32ull << 20;
  Status s = run(spec);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition);
  // The OOM killer picks its victim: `tail` (the shell then exits 137) or the
  // shell itself (killed by SIGKILL). Either way the limit must be named.
  EXPECT_THAT(s.error().message(),
              ::testing::AnyOf(
                  "killed: memory limit of 32.0 MiB reached (command exited with status 137)",
                  "killed: memory limit of 32.0 MiB reached (command was killed by signal 9 (SIGKILL))"));

  // The same command fits without the limit: the limit is what killed it.
  RunSpec unlimited = sh("head -c 50m /dev/zero | tail | wc -c");
  EXPECT_EQ(run_ok(unlimited), "52428800\n");
}

TEST_F(SandboxTest, PidsLimitHitIsNamed) {
  RunSpec spec = sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done; wait");
  spec.limits.pids = 6;
  std::string out;
  Status s = run(spec, &out);
  ASSERT_FALSE(s) << out;
  EXPECT_NE(s.error().message().find("(pids limit of 6 reached: the step could not start more processes)"),
            std::string::npos)
      << s.error().message() << "\noutput: " << out;
}

TEST_F(SandboxTest, AStepThatRunsOutOfDiskSaysSoInItsFailure) {
  // The root filesystem on a 32 MiB ext4 loop filesystem of its own.
  fs::path image = dir_ / "small.img", small = dir_ / "small";
  fs::create_directories(small);
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"truncate", "-s", "32M", image.string()},
        {"mkfs.ext4", "-q", image.string()},
        {"mount", "-o", "loop", image.string(), small.string()}}) {
    auto r = run_command(cmd, {.timeout = 60s});
    ASSERT_TRUE(r && r->ok()) << format_command(cmd) << ": " << (r ? r->output : r.error().to_string());
  }
  make_busybox_rootfs(small / "rootfs");
  rootfs_ = small / "rootfs";

  std::string out;
  Status full = run(sh("echo filling; head -c 64m /dev/zero > /big"), &out);
  ASSERT_FALSE(full) << out;
  EXPECT_EQ(full.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(
      full.error().message(),
      ::testing::MatchesRegex("command exited with status 1 \\(no space left on device: the filesystem of "
                              "/ has [0-9.]+ [KMG]?i?B free\\)"));

  // Space freed again before the step ended: its output tells.
  Status freed = run(sh("dd if=/dev/zero of=/big2 bs=1M count=64; rc=$?; rm -f /big /big2; exit $rc"), &out);
  ASSERT_FALSE(freed) << out;
  EXPECT_EQ(freed.error().message(),
            "command exited with status 1 (no space left on device, says the step's output)");

  // Any other failure is only a failure.
  Status other = run(sh("exit 1"));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().message(), "command exited with status 1");
}

TEST_F(SandboxTest, CpuLimitIsSetOnTheStepsCgroup) {
  // The quota lives on kiln's per-step cgroup; read it while the step runs.
  std::string quota;
  RunSpec spec = sh("echo running; sleep 0.5");
  spec.limits.cpu_millicores = 250;
  CancelToken cancel;
  auto mounts = cgroup_mounts();
  ASSERT_TRUE(mounts);
  fs::path cpu_root;
  for (const auto& m : *mounts)
    if (std::find(m.controllers.begin(), m.controllers.end(), "cpu") != m.controllers.end())
      cpu_root = m.path;
  ASSERT_FALSE(cpu_root.empty())
      << "the test expects cgroup v1 with a cpu hierarchy, as on the build machines";
  Status s = sandbox_->run(
      spec, rootfs_.string(),
      [&](std::string_view) {
        for (const auto& e : fs::directory_iterator(cpu_root / sandbox_->cgroup_group()))
          if (e.is_directory()) quota = read_file(e.path() / "cpu.cfs_quota_us");
      },
      cancel);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(quota, "25000\n");
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
}

TEST_F(SandboxTest, StepsRunConcurrently) {
  std::vector<std::thread> threads;
  std::vector<std::string> outputs(3);
  std::vector<Status> results(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      CancelToken cancel;
      results[i] = sandbox_->run(
          sh("echo step " + std::to_string(i)), rootfs_.string(),
          [&, i](std::string_view c) { outputs[i] += c; }, cancel);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(results[i]) << results[i].error().to_string();
    EXPECT_EQ(outputs[i], "step " + std::to_string(i) + "\n");
  }
}

TEST_F(SandboxTest, AStepThatFailsAfterItsCgroupExistsLeavesNoCgroup) {
  // The step's cgroup is made before its output pipe: with a single fd left
  // to this process, everything up to the cgroup works and the pipe fails.
  CancelToken cancel;  // its eventfd is taken before the fds run out
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  int highest = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(e.path().filename()));
  std::vector<UniqueFd> fillers;  // every fd from the lowest free one up to `highest` + 1
  while (fillers.empty() || fillers.back().get() <= highest) {
    fillers.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fillers.back());
  }
  int last = fillers.back().get();
  fillers.pop_back();  // the one free fd: `last`, and the limit forbids any above it
  rlimit one_left = old_limit;
  one_left.rlim_cur = static_cast<rlim_t>(last) + 1;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &one_left), 0);
  Status s = sandbox_->run(sh("echo never"), rootfs_.string(), nullptr, cancel);
  ::setrlimit(RLIMIT_NOFILE, &old_limit);
  fillers.clear();

  ASSERT_FALSE(s);
  EXPECT_NE(s.error().to_string().find("pipe"), std::string::npos) << s.error().to_string();
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_TRUE(fs::is_empty(state_ / "bundles"));
}

TEST_F(SandboxTest, SecondOwnerOfAStateDirectoryIsRefused) {
  auto second = RuncSandbox::create({.state_dir = state_.string()});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kBusy);
  // The refused one must not have touched the owner's secrets tmpfs.
  RunSpec spec = sh("cat /s");
  spec.secrets = {{"/s", "still here"}};
  EXPECT_EQ(run_ok(spec), "still here");
}

TEST_F(SandboxTest, LeftoversOfACrashedWorkerAreRemovedAtStart) {
  // A worker that dies mid-step, played by a child process: it owns the
  // state directory, has a `kiln-` container running `sleep` (detached, with
  // its cgroup), a bundle and a secret, and exits without cleaning up.
  const std::string marker = "sleep " + unique_number();
  const std::string id = "kiln-leftover" + unique_number();
  fs::path bundle = state_ / "bundles" / id;
  std::string group = sandbox_->cgroup_group();
  std::vector<std::string> start_command;
  sandbox_.reset();
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    auto crashed = RuncSandbox::create({.state_dir = state_.string()});
    if (!crashed) ::_exit(10);
    fs::create_directories(bundle);
    write_file(bundle / "hosts", hosts_file_content("builder"));
    OciPaths paths{.rootfs = fs::canonical(rootfs_).string(),
                   .hosts_file = (bundle / "hosts").string(),
                   .secret_files = {},
                   .cgroups_path = "/" + group + "/" + id + "/ctr"};
    auto config = make_oci_config(sh(marker), paths, {});
    if (!config) ::_exit(11);
    write_file(bundle / "config.json", config->dump());
    fs::create_directories(state_ / "secrets" / id);
    write_file(state_ / "secrets" / id / "0", "stale secret");
    auto started =
        Subprocess::spawn((*crashed)->runtime_command({"run", "--detach", "--bundle", bundle.string(), id}),
                          {.group = ProcessGroup::kNew});
    if (!started || started->wait() != 0) ::_exit(12);
    // Its watchdog dies first (as when both are killed at once), so the
    // container is left running for the next owner to find.
    ::kill((*crashed)->watchdog_pid(), SIGKILL);
    ::_exit(0);  // no destructors: the tmpfs stays mounted, the container runs
  }
  int status = 0;
  ASSERT_EQ(::waitpid(worker, &status, 0), worker);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // `run --detach` returns once the container started, maybe before its exec.
  ASSERT_TRUE(eventually([&] { return host_processes_with(marker).size() == 1; }));

  auto again = RuncSandbox::create({.state_dir = state_.string()});
  ASSERT_TRUE(again) << again.error().to_string();
  sandbox_ = std::move(*again);
  const LeftoverReport& report = sandbox_->leftovers();
  EXPECT_EQ(report.containers, std::vector<std::string>{id});
  EXPECT_EQ(report.bundles, 1);
  EXPECT_EQ(report.secret_dirs, 1);
  EXPECT_NE(report.to_string().find(id), std::string::npos) << report.to_string();
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(bundle));
  // And the sandbox works afterwards.
  EXPECT_EQ(run_ok(sh("echo ok")), "ok\n");
}

TEST_F(SandboxTest, StepsDieWithTheProcessThatOwnsTheSandbox) {
  kill_the_owner_mid_step_then_start_again();
}

TEST_F(SandboxTest, DestroyingTheSandboxRemovesItsCgroupGroup) {
  run_ok(sh("true"));
  auto mounts = cgroup_mounts();
  ASSERT_TRUE(mounts);
  std::string group = sandbox_->cgroup_group();
  sandbox_.reset();
  for (const auto& m : *mounts) EXPECT_FALSE(fs::exists(fs::path(m.path) / group)) << m.path;
}

TEST_F(SandboxTest, UnknownRuntimeNameIsRejected) {
  auto r = parse_oci_runtime("kata");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("use \"runc\""), std::string::npos);
  EXPECT_EQ(*parse_oci_runtime("crun"), OciRuntime::kCrun);
}

class CrunSandboxTest : public SandboxTest {
 protected:
  void SetUp() override { set_up(OciRuntime::kCrun); }
};

TEST_F(CrunSandboxTest, BasicRunWorksWithCrun) {
  fs::create_directories(rootfs_ / "work");
  RunSpec spec =
      sh("echo hello from $(hostname); pwd; id -u; ls /sys/class/net; grep CapEff /proc/self/status");
  spec.cwd = "/work";
  spec.uid = 0;
  std::string out = run_ok(spec);
  EXPECT_EQ(out.substr(0, out.find("CapEff")), "hello from builder\n/work\n0\nlo\n");
  Status s = run(sh("exit 7"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "command exited with status 7");
  EXPECT_TRUE(runtime_containers().empty());
}

TEST_F(CrunSandboxTest, StepsDieWithTheProcessThatOwnsTheSandboxWithCrunToo) {
  kill_the_owner_mid_step_then_start_again();
}

TEST_F(CrunSandboxTest, CancelAndLimitsWorkWithCrun) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(500ms);
    cancel.cancel();
  });
  Status s = sandbox_->run(sh(marker), rootfs_.string(), nullptr, cancel);
  canceller.join();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled);
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});

  RunSpec spec = sh("head -c 200m /dev/zero | tail");
  spec.limits.memory_bytes = 32ull << 20;
  Status m = run(spec);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message(), "killed: memory limit of 32.0 MiB reached (command exited with status 137)");
}

// --userns: steps in a user namespace, their root an unprivileged host uid.
class UsernsSandboxTest : public SandboxTest {
 protected:
  void SetUp() override { set_up(OciRuntime::kRunc, {.user_namespace = kDefaultUserNamespace}); }
};

// The host's view of a process: "Uid:\treal\teffective\t...".
std::string host_uid_line(const std::string& process_line) {
  std::string pid = process_line.substr(0, process_line.find(':'));
  std::istringstream status(read_file("/proc/" + pid + "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("Uid:")) return line;
  return "";
}

TEST_F(UsernsSandboxTest, TheStepsRootIsAnUnprivilegedHostUid) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  std::string out, uid_on_host;
  Status s = sandbox_->run(
      sh("cat /proc/self/uid_map; id -u; echo ready; exec " + marker), rootfs_.string(),
      [&](std::string_view chunk) {
        out += chunk;
        if (out.find("ready\n") == std::string::npos || !uid_on_host.empty()) return;
        std::vector<std::string> found;
        eventually([&] { return !(found = host_processes_with(marker)).empty(); });
        uid_on_host = found.empty() ? "not found" : host_uid_line(found[0]);
        cancel.cancel();
      },
      cancel);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled) << s.error().to_string();
  std::istringstream lines(out);
  std::string inside, outside, count, id;
  lines >> inside >> outside >> count >> id;
  EXPECT_EQ(inside + " " + outside + " " + count, "0 1000000000 65536") << out;
  EXPECT_EQ(id, "0");                                                              // root inside...
  EXPECT_EQ(uid_on_host, "Uid:\t1000000000\t1000000000\t1000000000\t1000000000");  // ...nobody outside
}

TEST_F(UsernsSandboxTest, FilesKeepTheirOwnOwnersOnDiskThroughIdmappedMounts) {
  fs::path cache = dir_ / "cache";
  fs::create_directories(cache);
  write_file(rootfs_ / "owned-by-1000", "");
  RunSpec spec =
      sh("stat -c '%u %n' /bin/busybox /cache; touch /made; mkdir /cache/d && echo hi > /cache/d/f; "
         "chown 1000:1000 /owned-by-1000; cat /run/secret; id -u");
  spec.mounts = {{cache.string(), "/cache"}};
  spec.secrets = {{"/run/secret", "sesame\n"}};
  spec.uid = 0;
  EXPECT_EQ(run_ok(spec), "0 /bin/busybox\n0 /cache\nsesame\n0\n");
  auto owner = [](const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
  };
  EXPECT_EQ(owner(rootfs_ / "made"), "0:0");
  EXPECT_EQ(owner(cache / "d/f"), "0:0");
  EXPECT_EQ(owner(rootfs_ / "owned-by-1000"), "1000:1000");

  // A non-root step user, and its secret, map the same way.
  RunSpec user = sh("id -u; cat /run/secret; touch /tmp/mine");
  user.uid = 1000;
  user.gid = 1000;
  user.secrets = {{"/run/secret", "for 1000\n"}};
  EXPECT_EQ(run_ok(user), "1000\nfor 1000\n");
  EXPECT_EQ(owner(rootfs_ / "tmp/mine"), "1000:1000");
  // Nothing of the steps' views is left mounted.
  auto mounts = read_file("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(rootfs_.string() + " "), std::string::npos);
  EXPECT_TRUE(fs::is_empty(fs::path("/run/kiln") / sandbox_->cgroup_group().substr(5)));
}

TEST_F(UsernsSandboxTest, NetworkLimitsAndTheSeccompProfileStillApply) {
  EXPECT_EQ(run_ok(sh("ls /sys/class/net")), "lo\n");
  RunSpec host = sh("ls /sys/class/net | grep -c .");
  host.network = {"host"};
  EXPECT_NE(run_ok(host), "1\n");
  RunSpec hog = sh("head -c 200m /dev/zero | tail");
  hog.limits.memory_bytes = 32ull << 20;
  Status s = run(hog);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(), ::testing::StartsWith("killed: memory limit of 32.0 MiB reached"));
  Status nested = run(sh("unshare -U true"));
  EXPECT_FALSE(nested);
}

TEST_F(UsernsSandboxTest, StepsDieWithTheProcessThatOwnsTheSandboxInAUserNamespaceToo) {
  kill_the_owner_mid_step_then_start_again();
  EXPECT_EQ(sandbox_->leftovers().mounts, 1);  // the killed step's idmapped root filesystem
}

TEST_F(UsernsSandboxTest, AnOverlayfsRootIsRefusedSayingWhichStoresWork) {
  for (const char* d : {"lower", "upper", "work", "merged"}) fs::create_directories(dir_ / d);
  std::string options = "lowerdir=" + rootfs_.string() + ",upperdir=" + (dir_ / "upper").string() +
                        ",workdir=" + (dir_ / "work").string();
  auto mounted = run_command({"mount", "-t", "overlay", "overlay", "-o", options, (dir_ / "merged").string()},
                             {.timeout = 30s});
  ASSERT_TRUE(mounted && mounted->ok()) << (mounted ? mounted->output : mounted.error().to_string());
  rootfs_ = dir_ / "merged";
  Status s = run(sh("true"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kUnsupported);
  EXPECT_THAT(s.error().message(), ::testing::HasSubstr("cannot idmap overlayfs"));
  EXPECT_THAT(s.error().message(), ::testing::HasSubstr("use a btrfs:, xfs: or rsync: store"));
  (void)run_command({"umount", (dir_ / "merged").string()}, {.timeout = 30s});
}

TEST_F(UsernsSandboxTest, CrunRunsUserNamespacedStepsToo) {
  sandbox_.reset();
  set_up(OciRuntime::kCrun, {.user_namespace = kDefaultUserNamespace});
  EXPECT_EQ(run_ok(sh("cat /proc/self/uid_map | tr -s ' '; touch /by-crun")), " 0 1000000000 65536\n");
  struct stat st {};
  ASSERT_EQ(::stat((rootfs_ / "by-crun").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

}  // namespace
}  // namespace kiln::sandbox
