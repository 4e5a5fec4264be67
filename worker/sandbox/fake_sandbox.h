// A Sandbox for unit tests of code that runs steps (the builder): it runs
// nothing, records every call, and answers from a script.
//
//   FakeSandbox sandbox;
//   sandbox.script({.output = "compiling\n",
//                   .effect = [](const std::string& rootfs) { write(rootfs + "/out", "x"); }});
//   sandbox.script({.status = make_error(ErrorKind::kFailedPrecondition, "command exited with status 2")});
//   sandbox.script({.wait_for_cancel = true});     // a step that runs until cancelled
//   ... builder.build(...) ...
//   EXPECT_EQ(sandbox.calls()[0].spec.argv, (std::vector<std::string>{"/bin/sh", "-c", "make"}));
//
// Each run() takes the next scripted answer in order; with none left it
// succeeds with no output. A run's effect (on the rootfs) happens before its
// output is sent and its status returned, as a real command would. Thread
// safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "worker/sandbox/sandbox.h"

namespace kiln::sandbox {

class FakeSandbox final : public Sandbox {
 public:
  struct Answer {
    std::string output;                                     // sent to on_output (one chunk)
    std::function<void(const std::string& rootfs)> effect;  // e.g. write the files a command would
    Status status = {};                                     // returned by run()
    // Block until the run's CancelToken is cancelled, then return kCancelled
    // (after output and effect): a long-running step.
    bool wait_for_cancel = false;
  };

  struct Call {
    RunSpec spec;  // stdin_data is not copied: its bytes are in `stdin_bytes`
    std::string rootfs;
    std::string stdin_bytes;  // everything the stdin provider yielded
  };

  void script(Answer answer);

  Status run(const RunSpec& spec, const std::string& rootfs, const OutputSink& on_output,
             CancelToken& cancel) override;

  std::vector<Call> calls() const;
  std::size_t call_count() const;
  // Blocks until `n` runs have started (for tests that cancel a running step).
  void wait_for_calls(std::size_t n) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::deque<Answer> answers_;
  std::vector<Call> calls_;
};

}  // namespace kiln::sandbox
