// Subprocess and run_command against real programs (sh, cat, sleep, env).
#include "common/subprocess.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "common/fs.h"
#include "tests/support/temp_dir.h"

namespace kiln {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

CommandOutput run_ok(const std::vector<std::string>& argv, const RunOptions& options = {}) {
  auto out = run_command(argv, options);
  EXPECT_TRUE(out) << out.error().to_string();
  return out ? *out : CommandOutput{};
}

// The hex mask of a "SigBlk:"/"SigIgn:" line of /proc/self/status text.
unsigned long long status_mask(const std::string& status, const std::string& field) {
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1), nullptr, 16);
  ADD_FAILURE() << "no " << field << " in " << status;
  return 0;
}

bool in_mask(unsigned long long mask, int sig) {
  return (mask >> (sig - 1)) & 1;
}

// Polls `condition` for up to 10 s.
bool eventually_true(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

TEST(RunCommand, CapturesStdoutAndStderrInTheOrderWritten) {
  CommandOutput out = run_ok({"sh", "-c", "echo out; echo err >&2; echo out2"});
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.output, "out\nerr\nout2\n");
}

TEST(RunCommand, CapturesOneStreamOnly) {
  EXPECT_EQ(run_ok({"sh", "-c", "echo out; echo err >&2"}, {.capture = Capture::kStderr}).output, "err\n");
  EXPECT_EQ(run_ok({"sh", "-c", "echo out; echo err >&2"}, {.capture = Capture::kStdout}).output, "out\n");
  EXPECT_EQ(run_ok({"sh", "-c", "echo out"}, {.capture = Capture::kNone}).output, "");
}

TEST(RunCommand, KeepsTheTailOfLongOutput) {
  CommandOutput out =
      run_ok({"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo END"}, {.keep_bytes = 1000});
  EXPECT_GE(out.output.size(), 1000u);
  EXPECT_LE(out.output.size(), 2000u);
  EXPECT_TRUE(out.output.ends_with("xxxEND\n")) << out.output.substr(out.output.size() - 20);
}

TEST(RunCommand, FeedsStdin) {
  EXPECT_EQ(run_ok({"cat"}, {.stdin_data = "hello stdin"}).output, "hello stdin");
  EXPECT_EQ(run_ok({"wc", "-c"}, {.stdin_data = std::string(1 << 20, 'x')}).output, "1048576\n");
  EXPECT_EQ(run_ok({"cat"}, {.stdin_data = ""}).output, "");
  // A command that stops reading early: no SIGPIPE for us, no error.
  CommandOutput early = run_ok({"head", "-c", "3"}, {.stdin_data = std::string(1 << 20, 'y')});
  EXPECT_TRUE(early.ok());
  EXPECT_EQ(early.output, "yyy");
}

TEST(RunCommand, AFailingCommandIsNotAnError) {
  CommandOutput out = run_ok({"sh", "-c", "echo why >&2; exit 3"});
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(describe_wait_status(out.wait_status), "exited with status 3");
  EXPECT_EQ(out.output, "why\n");
}

TEST(RunCommand, KillsACommandThatRunsTooLong) {
  for (Capture capture : {Capture::kStdoutAndStderr, Capture::kNone}) {
    auto begin = std::chrono::steady_clock::now();
    auto out = run_command({"sleep", "30"}, {.capture = capture, .timeout = 200ms});
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().kind(), ErrorKind::kTimeout);
    EXPECT_EQ(out.error().message(), "sleep 30 did not finish within 200 ms; it was killed");
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
  }
  EXPECT_TRUE(run_ok({"true"}, {.timeout = 10s}).ok());
}

TEST(RunCommand, EnvAndWorkingDirectory) {
  testing::TempDir dir("kiln-subprocess-test");
  CommandOutput out = run_ok({"/bin/sh", "-c", "echo $KILN_X; pwd"},
                             {.spawn = {.env = std::vector<std::string>{"KILN_X=42"}, .cwd = dir.path()}});
  EXPECT_EQ(out.output, "42\n" + dir.path() + "\n");
}

TEST(Spawn, MissingOrUnrunnableProgramsAreErrors) {
  auto missing = Subprocess::spawn({"kiln-no-such-program"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().message(), HasSubstr("\"kiln-no-such-program\" in PATH: is it installed?"));
  EXPECT_FALSE(Subprocess::spawn({"sh", "-c", "true"}, {.search_path = false}));
  EXPECT_FALSE(Subprocess::spawn({"/etc/hostname"}));
  // The fork path reports exec failures the same way.
  EXPECT_FALSE(Subprocess::spawn({"/etc/hostname"}, {.parent_death_signal = SIGKILL}));
  EXPECT_FALSE(Subprocess::spawn({"/etc/hostname"}, {.subreaper = true}));
  auto bad_cwd = Subprocess::spawn({"true"}, {.cwd = "/nonexistent/kiln", .parent_death_signal = SIGTERM});
  ASSERT_FALSE(bad_cwd);
  EXPECT_THAT(bad_cwd.error().message(), HasSubstr("/nonexistent/kiln"));
  EXPECT_FALSE(Subprocess::spawn({}));
}

TEST(Spawn, ProcessGroupsAndSessions) {
  auto same = Subprocess::spawn({"sleep", "30"});
  auto group = Subprocess::spawn({"sleep", "30"}, {.group = ProcessGroup::kNew});
  auto session = Subprocess::spawn({"sleep", "30"}, {.group = ProcessGroup::kNewSession});
  auto forked =
      Subprocess::spawn({"sleep", "30"}, {.group = ProcessGroup::kNew, .parent_death_signal = SIGKILL});
  ASSERT_TRUE(same && group && session && forked);
  EXPECT_EQ(::getpgid(same->pid()), ::getpgrp());
  EXPECT_EQ(::getpgid(group->pid()), group->pid());
  EXPECT_EQ(::getsid(session->pid()), session->pid());
  EXPECT_EQ(::getpgid(forked->pid()), forked->pid());
  for (Subprocess* p : {&*same, &*group, &*session, &*forked}) p->signal(SIGKILL);
  for (Subprocess* p : {&*same, &*group, &*session, &*forked}) {
    int st = p->wait();
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  }
}

TEST(Spawn, SignalGroupReachesTheWholeGroup) {
  auto child = Subprocess::spawn({"sh", "-c", "sleep 30 & sleep 30; wait"}, {.group = ProcessGroup::kNew});
  ASSERT_TRUE(child);
  std::this_thread::sleep_for(100ms);
  child->signal_group(SIGKILL);
  int st = child->wait();
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  // Its background sleep went with it: nothing is left in the group.
  EXPECT_TRUE(eventually_true([&] { return ::kill(-child->pid(), 0) != 0; }));
}

TEST(Spawn, ResetSignalsClearsTheMaskAndIgnoredSignals) {
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);
  auto old_int = ::signal(SIGINT, SIG_IGN);
  for (bool fork_path : {false, true}) {
    SpawnOptions reset{.parent_death_signal = fork_path ? SIGKILL : 0};
    SpawnOptions inherit{.reset_signals = false, .parent_death_signal = fork_path ? SIGKILL : 0};
    std::string with_reset = run_ok({"cat", "/proc/self/status"}, {.spawn = reset}).output;
    std::string inherited = run_ok({"cat", "/proc/self/status"}, {.spawn = inherit}).output;
    EXPECT_FALSE(in_mask(status_mask(with_reset, "SigBlk"), SIGUSR1)) << fork_path;
    EXPECT_FALSE(in_mask(status_mask(with_reset, "SigIgn"), SIGINT)) << fork_path;
    EXPECT_TRUE(in_mask(status_mask(inherited, "SigBlk"), SIGUSR1)) << fork_path;
    EXPECT_TRUE(in_mask(status_mask(inherited, "SigIgn"), SIGINT)) << fork_path;
  }
  ::signal(SIGINT, old_int);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

TEST(Spawn, StreamsMayComeFromTheParentsOwnStandardFds) {
  // The child's stdout is our fd 2 and its stderr our fd 1: filling one
  // must not clobber the other's source.
  testing::TempDir dir("kiln-subprocess-test");
  int saved1 = ::dup(1), saved2 = ::dup(2);
  UniqueFd f1(::open((dir.path() + "/1").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  UniqueFd f2(::open((dir.path() + "/2").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ::fflush(stdout);
  ::dup2(f1.get(), 1);
  ::dup2(f2.get(), 2);
  for (int pdeathsig : {0, SIGKILL}) {
    auto child = Subprocess::spawn({"sh", "-c", "echo out; echo err >&2"},
                                   {.stdout_fd = 2, .stderr_fd = 1, .parent_death_signal = pdeathsig});
    if (child) child->wait();
  }
  ::dup2(saved1, 1);
  ::dup2(saved2, 2);
  ::close(saved1);
  ::close(saved2);
  EXPECT_EQ(*read_file(dir.path() + "/2"), "out\nout\n");
  EXPECT_EQ(*read_file(dir.path() + "/1"), "err\nerr\n");
}

TEST(Spawn, WorksWhenThisProcessHasItsStandardFdsClosed) {
  // Pipes and /dev/null then get fds 0-2, which the child fills with its
  // own streams: nothing may be lost on the way.
  pid_t tester = ::fork();
  ASSERT_GE(tester, 0);
  if (tester == 0) {
    ::close(0);
    ::close(1);
    ::close(2);
    int failures = 0;
    for (int pdeathsig : {0, SIGKILL}) {
      auto out = run_command({"sh", "-c", "echo ok; cat; echo err >&2"},
                             {.spawn = {.parent_death_signal = pdeathsig}, .stdin_data = "in\n"});
      if (!out || out->output != "ok\nin\nerr\n") ++failures;
      auto quiet = run_command({"sh", "-c", "read x || echo eof"},
                               {.spawn = {.parent_death_signal = pdeathsig}});  // stdin: /dev/null
      if (!quiet || quiet->output != "eof\n") ++failures;
      if (Subprocess::spawn({"/etc/hostname"}, {.parent_death_signal = pdeathsig})) ++failures;
    }
    ::_exit(failures);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(tester, &st, 0), tester);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(Subprocess, WaitForTryWaitAndExitFd) {
  auto child = Subprocess::spawn({"sleep", "0.3"});
  ASSERT_TRUE(child);
  int st = 0;
  EXPECT_FALSE(child->try_wait(&st));
  EXPECT_EQ(child->wait_for(10ms), std::nullopt);
  ASSERT_GE(child->exit_fd(), 0);
  pollfd p{child->exit_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10'000), 1);
  auto status = child->wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_TRUE(child->reaped());
  EXPECT_TRUE(child->try_wait(&st));
  EXPECT_EQ(st, *status);
}

TEST(Subprocess, DestructorReapsAndReleaseLetsGo) {
  pid_t reaped_pid;
  {
    auto child = Subprocess::spawn({"sleep", "0.1"});
    ASSERT_TRUE(child);
    reaped_pid = child->pid();
  }
  errno = 0;
  EXPECT_EQ(::waitpid(reaped_pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);

  pid_t released;
  {
    auto child = Subprocess::spawn({"sleep", "30"});
    ASSERT_TRUE(child);
    released = child->release();
    EXPECT_EQ(child->pid(), -1);
  }
  EXPECT_EQ(::kill(released, 0), 0) << "a released child keeps running";
  ::kill(released, SIGKILL);
  EXPECT_EQ(::waitpid(released, nullptr, 0), released);
}

TEST(Subprocess, MoveAssignmentKeepsOneOwner) {
  auto a = Subprocess::spawn({"true"});
  auto b = Subprocess::spawn({"sleep", "0.1"});
  ASSERT_TRUE(a && b);
  pid_t b_pid = b->pid();
  *a = std::move(*b);  // waits for a's child, then owns b's
  EXPECT_EQ(a->pid(), b_pid);
  EXPECT_EQ(b->pid(), -1);
  EXPECT_TRUE(WIFEXITED(a->wait()));
}

TEST(Subprocess, ParentDeathSignalReachesTheChildWhenTheSpawnerDies) {
  auto pipe = make_pipe();
  ASSERT_TRUE(pipe);
  pid_t spawner = ::fork();
  ASSERT_GE(spawner, 0);
  if (spawner == 0) {
    auto child = Subprocess::spawn({"sleep", "30"}, {.parent_death_signal = SIGKILL});
    pid_t pid = child ? child->release() : -1;
    (void)!::write(pipe->write.get(), &pid, sizeof pid);
    ::_exit(0);  // the sleep's parent dies; so must the sleep
  }
  pipe->write.reset();
  pid_t sleeper = -1;
  ASSERT_EQ(::read(pipe->read.get(), &sleeper, sizeof sleeper), static_cast<ssize_t>(sizeof sleeper));
  ASSERT_GT(sleeper, 0);
  ASSERT_EQ(::waitpid(spawner, nullptr, 0), spawner);
  // Killed, then reaped by init (or a subreaper above us).
  EXPECT_TRUE(eventually_true([&] {
    auto text = read_file("/proc/" + std::to_string(sleeper) + "/stat");
    return !text || text->find(") Z") != std::string::npos;
  }));
}

TEST(Subprocess, SubreaperReportsTheProgramAndItsOrphans) {
  auto pipe = make_pipe();
  ASSERT_TRUE(pipe);
  auto child = Subprocess::spawn({"sh", "-c", "(sleep 0.2; exit 4) & echo started; exit 3"},
                                 {.stdout_fd = pipe->write.get(),
                                  .group = ProcessGroup::kNew,
                                  .parent_death_signal = SIGKILL,
                                  .subreaper = true});
  ASSERT_TRUE(child) << child.error().to_string();
  pipe->write.reset();
  int st = child->wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  ReaperReport report = child->reaper_report();
  EXPECT_TRUE(WIFEXITED(report.program_status) && WEXITSTATUS(report.program_status) == 3);
  ASSERT_EQ(report.orphans.size(), 1u);
  EXPECT_TRUE(WIFEXITED(report.orphans[0].second) && WEXITSTATUS(report.orphans[0].second) == 4);
  char buf[64];
  ssize_t n = ::read(pipe->read.get(), buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), "started\n");
}

// hidden_mount: the program runs where that mount is detached, the rest of
// the system (this process included) still sees it; a path that is no mount
// point fails the start, saying what could not be hidden.
TEST(Subprocess, AHiddenMountIsGoneForTheProgramOnly) {
  testing::TempDir dir;
  const std::string point = dir.path() + "/m";
  ASSERT_TRUE(ensure_dir(point));
  ASSERT_EQ(::mount("tmpfs", point.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  ASSERT_TRUE(write_file(point + "/marker", "x"));
  auto run = [&](const std::string& hidden) {
    return run_command({"sh", "-c", "test -e " + point + "/marker && echo seen || echo hidden"},
                       {.spawn = {.hidden_mount = hidden}});
  };
  auto hidden = run(point);
  auto plain = run("");
  auto subreaped = Subprocess::spawn({"sh", "-c", "test ! -e " + point + "/marker"},
                                     {.subreaper = true, .hidden_mount = point});
  auto not_a_mount = run(dir.path() + "/no-such-mount");
  EXPECT_TRUE(std::filesystem::exists(point + "/marker"));
  ::umount2(point.c_str(), MNT_DETACH);
  ASSERT_TRUE(hidden) << hidden.error().to_string();
  EXPECT_EQ(hidden->output, "hidden\n");
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(plain->output, "seen\n");
  ASSERT_TRUE(subreaped) << subreaped.error().to_string();
  subreaped->wait();
  EXPECT_TRUE(WIFEXITED(subreaped->reaper_report().program_status) &&
              WEXITSTATUS(subreaped->reaper_report().program_status) == 0);
  ASSERT_FALSE(not_a_mount);
  EXPECT_THAT(not_a_mount.error().to_string(), HasSubstr("hiding " + dir.path() + "/no-such-mount"));
}

TEST(Describe, WaitStatusesSignalsAndCommands) {
  EXPECT_EQ(describe_wait_status(3 << 8), "exited with status 3");
  EXPECT_EQ(describe_wait_status(SIGKILL), "was killed by signal 9 (SIGKILL)");
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(format_command({"runc", "--root", "/a b", "it's"}), "runc --root \"/a b\" \"it's\"");
}

}  // namespace
}  // namespace kiln
