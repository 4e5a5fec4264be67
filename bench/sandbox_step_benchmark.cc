// What the sandbox's hardening costs per step: times a `/bin/true` step
// through RuncSandbox in several configurations, interleaved round by round
// (each round runs every configuration once, in a rotating order) so that
// all of them meet the same machine load, and prints each one's mean and
// median and its ratio to the default. Needs root, runc, crun and
// busybox-static.
//
//   sudo build/bench/sandbox_step_benchmark [--runs 40] [--dir /var/tmp] [--only runc]
//
// Configurations: the default (seccomp profile, no user namespace), without
// the seccomp profile, with --userns (default range), each with runc and
// with crun; and the bare runtime from this same process, `RUNTIME run` in
// the foreground on a bundle of `runc spec`'s default config.json and on
// one of the config.json kiln writes (its seccomp profile, masks, mounts),
// output to /dev/null: what the sandbox costs beyond the runtime itself. The
// root filesystem is a busybox tree on DIR's filesystem (ext4 here, which
// can be idmapped).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/subprocess.h"
#include "worker/sandbox/oci_config.h"
#include "worker/sandbox/runc_sandbox.h"

namespace {

namespace fs = std::filesystem;
using kiln::sandbox::OciOptions;
using kiln::sandbox::OciRuntime;
using kiln::sandbox::RuncSandbox;
using Clock = std::chrono::steady_clock;

struct Configuration {
  std::string name;
  OciRuntime runtime;
  OciOptions oci;
  std::unique_ptr<RuncSandbox> sandbox;
  std::vector<double> ms;
  std::string bare_bundle;  // set: a bare `RUNTIME run` of this bundle instead of the sandbox
};

// A bundle for a bare run of /bin/true on ROOTFS: `runc spec`'s default
// config.json, or the one kiln's sandbox writes (without a cgroup path: the
// runtime picks its default, as for the default spec).
bool write_bare_bundle(const fs::path& bundle, const fs::path& rootfs, bool kilns) {
  fs::create_directories(bundle);
  nlohmann::json config;
  if (kilns) {
    std::ofstream(bundle / "hosts") << "127.0.0.1 localhost\n";
    kiln::sandbox::RunSpec spec;
    spec.argv = {"/bin/true"};
    spec.env = {"PATH=/bin"};
    auto made = kiln::sandbox::make_oci_config(
        spec, {.rootfs = rootfs.string(), .hosts_file = (bundle / "hosts").string()}, {});
    if (!made) {
      std::fprintf(stderr, "kiln's config.json: %s\n", made.error().to_string().c_str());
      return false;
    }
    config = std::move(*made);
    config["linux"].erase("cgroupsPath");
  } else {
    auto out = kiln::run_command({"runc", "spec", "--bundle", bundle.string()});
    if (!out || out->wait_status != 0) {
      std::fprintf(stderr, "runc spec failed\n");
      return false;
    }
    config = nlohmann::json::parse(std::ifstream(bundle / "config.json"));
    config["process"]["terminal"] = false;
    config["process"]["args"] = {"/bin/true"};
    config["root"] = {{"path", rootfs.string()}, {"readonly", false}};
  }
  std::ofstream(bundle / "config.json") << config.dump(2) << "\n";
  return true;
}

// One foreground `RUNTIME --root STATE run --bundle BUNDLE ID`, its output to /dev/null.
kiln::Status bare_run(const Configuration& c, const fs::path& dir, std::size_t index) {
  std::string rt(kiln::sandbox::oci_runtime_name(c.runtime));
  std::string id = "bare" + std::to_string(index);
  std::vector<std::string> argv = {rt, "--root", (dir / ("bare-state" + std::to_string(index))).string()};
  kiln::SpawnOptions options;
  if (c.runtime == OciRuntime::kCrun) {
    // As kiln runs crun: cgroupfs, and on a hybrid cgroup host without its
    // empty cgroup2 mount (crun 1.8 takes such a host for a v2 one).
    argv.push_back("--cgroup-manager=cgroupfs");
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);)
      if (line.find(" /sys/fs/cgroup/unified ") != std::string::npos)
        options.hidden_mount = "/sys/fs/cgroup/unified";
  }
  argv.insert(argv.end(), {"run", "--bundle", c.bare_bundle, id});
  auto child = kiln::Subprocess::spawn(argv, options);
  if (!child) return std::unexpected(std::move(child).error());
  int status = child->wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return kiln::make_error(kiln::ErrorKind::kInternal, rt + " run " + kiln::describe_wait_status(status));
  return {};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 40;
  std::string parent = "/var/tmp";
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--dir") == 0) parent = argv[i + 1];
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];  // configurations of one runtime
  }
  std::string pattern = parent + "/kiln-sandbox-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = pattern;
  fs::create_directories(dir / "rootfs/bin");
  fs::create_directories(dir / "rootfs/tmp");
  fs::copy_file("/bin/busybox", dir / "rootfs/bin/busybox");
  for (const char* applet : {"sh", "true"}) fs::create_symlink("busybox", dir / "rootfs/bin" / applet);

  std::vector<Configuration> configs;
  for (OciRuntime runtime : {OciRuntime::kRunc, OciRuntime::kCrun}) {
    std::string rt(kiln::sandbox::oci_runtime_name(runtime));
    if (!only.empty() && only != rt) continue;
    configs.push_back({rt + " default (seccomp)", runtime, {}, nullptr, {}});
    configs.push_back({rt + " without seccomp", runtime, {.seccomp = false}, nullptr, {}});
    configs.push_back(
        {rt + " --userns", runtime, {.user_namespace = kiln::sandbox::kDefaultUserNamespace}, nullptr, {}});
    configs.push_back(
        {"bare " + rt + " run, runc spec", runtime, {}, nullptr, {}, (dir / "bare-default").string()});
    configs.push_back(
        {"bare " + rt + " run, kiln's", runtime, {}, nullptr, {}, (dir / "bare-kiln").string()});
  }
  int status = 0;
  if (!write_bare_bundle(dir / "bare-default", dir / "rootfs", false) ||
      !write_bare_bundle(dir / "bare-kiln", dir / "rootfs", true))
    status = 1;
  for (std::size_t i = 0; i < configs.size() && status == 0; ++i) {
    if (!configs[i].bare_bundle.empty()) continue;
    auto made = RuncSandbox::create({.state_dir = (dir / ("state" + std::to_string(i))).string(),
                                     .runtime = configs[i].runtime,
                                     .oci = configs[i].oci});
    if (!made) {
      std::fprintf(stderr, "%s: %s\n", configs[i].name.c_str(), made.error().to_string().c_str());
      status = 1;
    } else {
      configs[i].sandbox = std::move(*made);
    }
  }
  kiln::sandbox::RunSpec spec;
  spec.argv = {"/bin/true"};
  spec.env = {"PATH=/bin"};
  // One warm-up round, then `runs` timed ones.
  for (int round = 0; round <= runs && status == 0; ++round) {
    for (std::size_t k = 0; k < configs.size() && status == 0; ++k) {
      const std::size_t index = (k + static_cast<std::size_t>(round)) % configs.size();
      Configuration& c = configs[index];
      kiln::CancelToken cancel;
      auto start = Clock::now();
      kiln::Status s = c.sandbox ? c.sandbox->run(spec, (dir / "rootfs").string(), nullptr, cancel)
                                 : bare_run(c, dir, index);
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (!s) {
        std::fprintf(stderr, "%s: %s\n", c.name.c_str(), s.error().to_string().c_str());
        status = 1;
      }
      if (round > 0) c.ms.push_back(ms);
    }
  }
  if (status == 0) {
    // Ratios of medians: to the sandbox's default and to the bare runtime on `runc spec`'s config.
    std::printf("%-30s %8s %9s %11s %12s\n", "configuration", "mean ms", "median ms", "to default",
                "to bare run");
    for (const Configuration& c : configs) {
      const std::size_t first = c.runtime == configs[0].runtime ? 0 : 5;
      std::printf("%-30s %8.1f %9.1f %11.2f %12.2f\n", c.name.c_str(), mean(c.ms), median(c.ms),
                  median(c.ms) / median(configs[first].ms), median(c.ms) / median(configs[first + 3].ms));
    }
  }
  configs.clear();
  fs::remove_all(dir);
  return status;
}
