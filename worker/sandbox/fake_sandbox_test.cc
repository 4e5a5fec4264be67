// FakeSandbox (what the builder's tests rely on) and stdin_from_bytes.
#include "worker/sandbox/fake_sandbox.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace kiln::sandbox {
namespace {

using namespace std::chrono_literals;

RunSpec command(std::string cmd) {
  RunSpec spec;
  spec.argv = {"/bin/sh", "-c", std::move(cmd)};
  return spec;
}

TEST(StdinFromBytes, YieldsTheBytesOnceThenEnd) {
  StdinProvider p = stdin_from_bytes("abc");
  auto first = p();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, "abc");
  auto second = p();
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, "");
}

TEST(FakeSandbox, RecordsCallsAndAnswersInScriptOrder) {
  FakeSandbox sandbox;
  sandbox.script({.output = "compiling\n",
                  .effect = [](const std::string& rootfs) { EXPECT_EQ(rootfs, "/r1"); },
                  .status = {},
                  .wait_for_cancel = false});
  sandbox.script({.output = "",
                  .effect = nullptr,
                  .status = make_error(ErrorKind::kFailedPrecondition, "command exited with status 2"),
                  .wait_for_cancel = false});
  CancelToken cancel;
  std::string out;
  RunSpec first = command("make");
  first.secrets = {{"/run/secrets/k", "v"}};
  first.stdin_data = stdin_from_bytes("input bytes");
  EXPECT_TRUE(sandbox.run(
      first, "/r1", [&](std::string_view c) { out += c; }, cancel));
  EXPECT_EQ(out, "compiling\n");
  Status failed = sandbox.run(command("make test"), "/r2", nullptr, cancel);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message(), "command exited with status 2");
  // Unscripted: success, no output.
  EXPECT_TRUE(sandbox.run(command("true"), "/r3", nullptr, cancel));

  auto calls = sandbox.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].spec.argv[2], "make");
  EXPECT_EQ(calls[0].rootfs, "/r1");
  EXPECT_EQ(calls[0].stdin_bytes, "input bytes");
  EXPECT_EQ(calls[0].spec.secrets, first.secrets);
  EXPECT_EQ(calls[1].spec.argv[2], "make test");
  EXPECT_EQ(calls[2].rootfs, "/r3");
}

TEST(FakeSandbox, LongRunningStepEndsOnlyWhenCancelled) {
  FakeSandbox sandbox;
  sandbox.script({.output = "started\n", .effect = nullptr, .status = {}, .wait_for_cancel = true});
  CancelToken cancel;
  std::atomic<bool> returned{false};
  Status result;
  std::thread runner([&] {
    result = sandbox.run(command("sleep 100"), "/r", nullptr, cancel);
    returned = true;
  });
  sandbox.wait_for_calls(1);
  EXPECT_FALSE(returned);
  cancel.cancel();
  runner.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind(), ErrorKind::kCancelled);
}

}  // namespace
}  // namespace kiln::sandbox
