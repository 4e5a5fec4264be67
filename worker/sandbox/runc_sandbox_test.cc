// RuncSandbox against runc, as root: what a step gets (output, status, user,
// network, capabilities, mounts, secrets, stdin) and its limits. The
// fixture: testing/runc_sandbox_fixture.h; a step's end when its owner dies
// and the leftovers: runc_sandbox_leftovers_test.cc; crun and --userns: their
// own files.
#include "worker/sandbox/runc_sandbox.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/testing/runc_sandbox_fixture.h"

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::eventually;
using testing::host_processes_with;
using testing::make_busybox_rootfs;
using testing::read_file;
using testing::SandboxTest;
using testing::unique_number;
using testing::write_file;

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

// A step that ended, by itself or killed, leaves nothing for the runtime:
// no container it lists, no state, no cgroup (for a step that ended by
// itself, kiln removes them rather than running `runc delete`).
TEST_F(SandboxTest, AnEndedStepLeavesNoContainerStateOrCgroup) {
  run_ok(sh("echo ok"));
  ASSERT_FALSE(run(sh("exit 3")));
  RunSpec slow = sh("sleep 60");
  slow.timeout = 500ms;  // killed: the runtime deletes this one
  ASSERT_FALSE(run(slow));
  EXPECT_THAT(runtime_containers(), ::testing::IsEmpty());
  EXPECT_THAT(runtime_state_entries(), ::testing::IsEmpty());
  EXPECT_THAT(step_cgroups(), ::testing::IsEmpty());
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

}  // namespace
}  // namespace kiln::sandbox
