#include "worker/sandbox/fake_sandbox.h"

#include <chrono>

namespace kiln::sandbox {

void FakeSandbox::script(Answer answer) {
  std::lock_guard lock(mu_);
  answers_.push_back(std::move(answer));
}

Status FakeSandbox::run(const RunSpec& spec, const std::string& rootfs, const OutputSink& on_output,
                        CancelToken& cancel) {
  Call call{spec, rootfs, {}};
  call.spec.stdin_data = nullptr;
  // Read stdin like a command would, so callers' providers are exercised.
  if (spec.stdin_data) {
    for (;;) {
      auto chunk = spec.stdin_data();
      if (!chunk)
        return std::unexpected(std::move(chunk).error().with_context("reading the step's standard input"));
      if (chunk->empty()) break;
      call.stdin_bytes += *chunk;
    }
  }
  Answer answer;
  {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(call));
    if (!answers_.empty()) {
      answer = std::move(answers_.front());
      answers_.pop_front();
    }
  }
  changed_.notify_all();

  if (answer.effect) answer.effect(rootfs);
  if (!answer.output.empty() && on_output) on_output(answer.output);
  if (answer.wait_for_cancel) {
    while (!cancel.wait_for(std::chrono::seconds(3600))) {
    }
    return make_error(ErrorKind::kCancelled, "cancelled: the step's container was killed");
  }
  if (cancel.cancelled())
    return make_error(ErrorKind::kCancelled, "cancelled: the step's container was killed");
  return answer.status;
}

std::vector<FakeSandbox::Call> FakeSandbox::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

std::size_t FakeSandbox::call_count() const {
  std::lock_guard lock(mu_);
  return calls_.size();
}

void FakeSandbox::wait_for_calls(std::size_t n) const {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return calls_.size() >= n; });
}

}  // namespace kiln::sandbox
