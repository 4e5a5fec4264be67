// The worker's sandbox: runs one build step's command inside a container
// whose root filesystem is a directory the store prepared (DESIGN.md, "The
// local builder"; the contract follows OBuilder's SANDBOX signature).
//
//   RunSpec spec;
//   spec.argv = {"/bin/sh", "-c", "make install"};
//   spec.cwd = "/src";
//   spec.env = {"PATH=/usr/bin:/bin"};
//   spec.limits.memory_bytes = 512ull << 20;
//   CancelToken cancel;                       // another thread may call cancel.cancel()
//   Status s = sandbox.run(spec, tmp_dir + "/rootfs",
//                          [&](std::string_view chunk) { log.append(chunk); }, cancel);
//   if (!s && s.error().kind() == ErrorKind::kCancelled) ...
//
// Implementations: RuncSandbox (runc_sandbox.h, runc or crun) and
// FakeSandbox (fake_sandbox.h, for the builder's tests).
//
// Errors from run():
//   kCancelled          the token was cancelled; the container is gone.
//   kTimeout            RunSpec::timeout passed: "timed out after 5 s".
//   kFailedPrecondition the command failed: "command exited with status N",
//                       "command was killed by signal 9 (SIGKILL)",
//                       "killed: memory limit of 64.0 MiB reached (...)",
//                       "... (pids limit of 10 reached: ...)",
//                       "... (no space left on device: the filesystem of / has
//                       0 B free)", or the runtime could not start it:
//                       "could not start the command X: why".
//                       (Messages: docs/sandbox.md.)
//   anything else       the sandbox itself could not run the step (runtime
//                       missing, bad rootfs, ...); the message says what to fix.
// Thread safety: Sandbox::run may be called from several threads at once
// (each call is its own container). CancelToken (common/cancel_token.h) is
// fully thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/store/workspace.h"

namespace kiln::sandbox {

// A host directory made visible inside the container (a named cache's copy).
struct BindMount {
  std::string source;       // absolute host path
  std::string destination;  // absolute path inside the container
  bool read_only = false;

  friend bool operator==(const BindMount&, const BindMount&) = default;
};

// A secret's value, mounted read-only as a file at `target`. The value lives
// only in memory (a tmpfs) for the duration of the run: it never reaches the
// rootfs, the log or any error message.
struct SecretMount {
  std::string target;  // absolute path inside the container
  std::string value;   // the bytes of the file

  friend bool operator==(const SecretMount&, const SecretMount&) = default;
};

// Optional cgroup limits; unset means unlimited.
struct Limits {
  std::optional<std::uint64_t> memory_bytes;    // RAM (and swap) for the whole container
  std::optional<std::uint32_t> pids;            // processes and threads at once
  std::optional<std::uint32_t> cpu_millicores;  // 1000 = one full core

  friend bool operator==(const Limits&, const Limits&) = default;
};

// Supplies the step's standard input piece by piece: returns the next chunk,
// an empty string at end of input, or an error (which fails the run). Called
// on run()'s thread whenever the pipe has room; while it blocks, output is
// not forwarded, so it should answer promptly. If the step closes its stdin
// early, the provider is not called again (not an error).
using StdinProvider = std::function<Result<std::string>()>;

// A StdinProvider that yields `bytes` once.
StdinProvider stdin_from_bytes(std::string bytes);

// Everything a step's process needs, independent of the runtime.
struct RunSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in the container's PATH by the runtime
  std::string cwd = "/";          // absolute, inside the container
  std::vector<std::string> env;   // "KEY=VALUE"
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string hostname = "builder";
  // Empty: a private network namespace with only loopback. {"host"}: the
  // host's network (and its /etc/resolv.conf). Anything else is rejected.
  std::vector<std::string> network;
  std::vector<BindMount> mounts;
  std::vector<SecretMount> secrets;
  Limits limits;
  // Wall-clock limit for the whole run; the container is killed when it passes.
  std::optional<std::chrono::milliseconds> timeout;
  // Standard input: an open fd the caller owns (it stays open), or a
  // provider; neither means /dev/null. Setting both is an error.
  int stdin_fd = -1;
  StdinProvider stdin_data;

  bool host_network() const { return network.size() == 1 && network[0] == "host"; }
};

// Receives the step's stdout and stderr, merged, in the order produced, as
// chunks of any size. Called on the thread that called run(). If it throws,
// the step is killed and run() returns kInternal (so does a throwing
// StdinProvider): exceptions never unwind past a running container.
using OutputSink = std::function<void(std::string_view)>;

// The errors of a step a sandbox stopped, in the same words on every backend:
// cancelled (kCancelled), past RunSpec::timeout `limit` (kTimeout), or its
// output sink failed with `why` (kInternal).
Error cancelled_step_error();
Error timed_out_step_error(std::chrono::milliseconds limit);
Error output_failed_step_error(std::string_view why);

class Sandbox {
 public:
  virtual ~Sandbox() = default;

  // Runs spec.argv in a fresh container whose root filesystem is the
  // directory `rootfs` (which the step may modify: that is its result) and
  // waits for it. Output goes to `on_output` as it is produced. Returns when
  // the container and every process in it are gone. See the file comment
  // for the errors.
  virtual Status run(const RunSpec& spec, const std::string& rootfs, const OutputSink& on_output,
                     CancelToken& cancel) = 0;
  // Runs the step on a store's workspace (worker/store/workspace.h): what
  // the builder calls. The default runs in `ws.rootfs` (the snapshot
  // stores'); the docker sandbox runs in the container `ws.container` made
  // from `ws.base_image`, and leaves it stopped for the store to commit.
  virtual Status run_in(const RunSpec& spec, const store::Workspace& ws, const OutputSink& on_output,
                        CancelToken& cancel) {
    return run(spec, ws.rootfs, on_output, cancel);
  }
};

}  // namespace kiln::sandbox
