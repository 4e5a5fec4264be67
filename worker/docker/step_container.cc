#include "worker/docker/step_container.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "common/format.h"
#include "common/subprocess.h"

namespace kiln::docker {
namespace {

using namespace std::chrono_literals;

Status write_secret(const std::string& path, const std::string& value, std::uint32_t uid, std::uint32_t gid) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
  if (fd < 0) return errno_error("cannot create the secret file " + path);
  std::size_t written = 0;
  while (written < value.size()) {
    ssize_t n = ::write(fd, value.data() + written, value.size() - written);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return errno_error("cannot write the secret file " + path, err);
    }
    written += static_cast<std::size_t>(n);
  }
  bool owned = ::fchown(fd, uid, gid) == 0;
  int err = errno;
  ::close(fd);
  if (!owned) return errno_error("cannot give the secret file " + path + " to the step's user", err);
  return {};
}

// Removes the secrets' files however the step ends.
struct SecretFiles {
  std::vector<std::string> paths;
  ~SecretFiles() {
    for (const std::string& p : paths) ::unlink(p.c_str());
  }
};

enum class Stop { kNone, kCancelled, kTimedOut, kSinkFailed };

// Waits up to `timeout` until either token is cancelled; true when `cancel` is.
bool wait_either(const CancelToken& cancel, const CancelToken& other, std::chrono::milliseconds timeout) {
  if (cancel.cancelled() || other.cancelled()) return cancel.cancelled();
  if (cancel.wait_fd() < 0 || other.wait_fd() < 0) return cancel.wait_for(timeout);
  pollfd fds[2] = {{cancel.wait_fd(), POLLIN, 0}, {other.wait_fd(), POLLIN, 0}};
  ::poll(fds, 2, static_cast<int>(timeout.count()));
  return cancel.cancelled();
}

}  // namespace

Status run_step_container(DockerClient& client, const StepContainer& step, const sandbox::RunSpec& spec,
                          const sandbox::OutputSink& on_output, CancelToken& cancel) {
  if (spec.stdin_fd >= 0 || spec.stdin_data)
    return make_error(ErrorKind::kUnsupported, "the docker backend cannot give a step standard input");
  if (spec.argv.empty()) return make_error(ErrorKind::kInvalidArgument, "the step has no command");
  ContainerSpec c;
  c.image = step.image;
  c.entrypoint = spec.argv;
  c.env = spec.env;
  c.working_dir = spec.cwd;
  c.user = fmt::format("{}:{}", spec.uid, spec.gid);
  c.hostname = spec.hostname;
  c.labels = step.labels;
  if (spec.network.empty()) {
    c.network_mode = "none";
  } else if (spec.host_network()) {
    c.network_mode = "host";
  } else {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("network {:?}: use none or host", fmt::join(spec.network, " ")));
  }
  for (const sandbox::BindMount& m : spec.mounts) {
    std::string_view source = m.source;
    std::string prefix = step.volumes_dir + "/";
    if (!step.volumes_dir.empty() && source.starts_with(prefix) && source.ends_with("/_data")) {
      std::string_view name = source.substr(prefix.size(), source.size() - prefix.size() - 6);
      if (!name.empty() && name.find('/') == std::string_view::npos) {
        c.mounts.push_back({Mount::Type::kVolume, std::string(name), m.destination, m.read_only});
        continue;
      }
    }
    c.mounts.push_back({Mount::Type::kBind, m.source, m.destination, m.read_only});
  }
  SecretFiles secret_files;
  for (std::size_t i = 0; i < spec.secrets.size(); ++i) {
    if (step.secrets_dir.empty())
      return make_error(ErrorKind::kFailedPrecondition,
                        "the step has secrets but the sandbox no secrets directory");
    std::string path = fmt::format("{}/{}-{}", step.secrets_dir, step.name, i);
    ::unlink(path.c_str());  // a crashed earlier attempt's
    KILN_RETURN_IF_ERROR(write_secret(path, spec.secrets[i].value, spec.uid, spec.gid));
    secret_files.paths.push_back(path);
    c.mounts.push_back({Mount::Type::kBind, path, spec.secrets[i].target, true});
  }
  if (spec.limits.memory_bytes) c.memory_bytes = static_cast<std::int64_t>(*spec.limits.memory_bytes);
  if (spec.limits.pids) c.pids_limit = *spec.limits.pids;
  if (spec.limits.cpu_millicores) c.nano_cpus = std::int64_t{*spec.limits.cpu_millicores} * 1'000'000;
  c.ulimits = {{"nofile", 1024, 1024}, {"nproc", 1024, 1024}};
  c.log_driver = "none";
  c.cgroup_parent = step.cgroup_parent;
  KILN_ASSIGN_OR_RETURN(std::string id, client.create_container(c, step.name));

  std::mutex mu;
  std::condition_variable cv;
  bool attached = false;
  bool finished = false;  // the wait returned
  Stop stop = Stop::kNone;
  std::string sink_error;
  CancelToken stop_output;
  Status streamed;
  std::thread output([&] {
    streamed = client.attach_output(
        id,
        [&] {
          std::lock_guard lock(mu);
          attached = true;
          cv.notify_all();
        },
        [&](StreamKind, std::string_view bytes) {
          if (stop_output.cancelled()) return;
          try {
            on_output(bytes);
          } catch (const std::exception& e) {
            std::lock_guard lock(mu);
            if (stop == Stop::kNone) stop = Stop::kSinkFailed;
            sink_error = e.what();
            stop_output.cancel();
          } catch (...) {
            std::lock_guard lock(mu);
            if (stop == Stop::kNone) stop = Stop::kSinkFailed;
            sink_error = "an exception";
            stop_output.cancel();
          }
        },
        nullptr);
    std::lock_guard lock(mu);
    attached = true;  // also when attaching failed: nothing to wait for
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return attached; });
  }
  if (auto started = client.start_container(id); !started) {
    (void)client.kill_container(id);  // not running: answered 409, harmless
    output.join();
    return make_error(ErrorKind::kFailedPrecondition,
                      fmt::format("could not start the command {}: {}", format_command(spec.argv),
                                  started.error().message()));
  }
  // Kills the container when the step is cancelled, times out or its output
  // cannot be taken. `waited` wakes it as soon as the wait returns, so the
  // step does not sit out the rest of a polling interval.
  CancelToken waited_token;
  std::thread watchdog([&] {
    auto deadline =
        spec.timeout ? std::optional(std::chrono::steady_clock::now() + *spec.timeout) : std::nullopt;
    for (;;) {
      bool cancelled = wait_either(cancel, waited_token, 50ms);
      std::lock_guard lock(mu);
      if (finished) return;
      if (cancelled && stop == Stop::kNone) stop = Stop::kCancelled;
      if (deadline && std::chrono::steady_clock::now() >= *deadline && stop == Stop::kNone)
        stop = Stop::kTimedOut;
      if (stop != Stop::kNone) break;
    }
    (void)client.kill_container(id);
  });
  auto waited = client.wait_container(id, nullptr);
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  waited_token.cancel();
  watchdog.join();
  output.join();
  if (!waited)
    return std::unexpected(std::move(waited.error()).with_context("waiting for the step's container"));

  switch (stop) {
    case Stop::kCancelled: return std::unexpected(sandbox::cancelled_step_error());
    case Stop::kTimedOut: return std::unexpected(sandbox::timed_out_step_error(*spec.timeout));
    case Stop::kSinkFailed: return std::unexpected(sandbox::output_failed_step_error(sink_error));
    case Stop::kNone: break;
  }
  if (!streamed)
    return std::unexpected(std::move(streamed.error()).with_context("reading the step's output"));
  std::int64_t status = waited->exit_code;
  if (status == 0) return {};
  std::string what = fmt::format("command exited with status {}", status);
  auto info = client.inspect_container(id);
  if (info && info->oom_killed && spec.limits.memory_bytes)
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("killed: memory limit of {} reached ({})", human_bytes(*spec.limits.memory_bytes), what));
  // dockerd reports a process killed by signal S as 128 + S, as a shell does.
  if (status > 128 && status < 128 + 65)
    what += fmt::format(" (128 + {}: killed by signal {})", status - 128, status - 128);
  return make_error(ErrorKind::kFailedPrecondition, std::move(what));
}

}  // namespace kiln::docker
