// What the sandbox's hardening costs per step: times a `/bin/true` step
// through RuncSandbox in several configurations, interleaved round by round
// (each round runs every configuration once, in a rotating order) so that
// all of them meet the same machine load, and prints each one's mean and
// median and its ratio to the default. Needs root, runc, crun and
// busybox-static.
//
//   sudo build/bench/sandbox_step_benchmark [--runs 40] [--dir /var/tmp]
//
// Configurations: the default (seccomp profile, no user namespace), without
// the seccomp profile, with --userns (default range), each with runc and
// with crun. The root filesystem is a busybox tree on DIR's filesystem
// (ext4 here, which can be idmapped).
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

#include "common/subprocess.h"
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
};

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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--dir") == 0) parent = argv[i + 1];
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
    configs.push_back({rt + " default (seccomp)", runtime, {}, nullptr, {}});
    configs.push_back({rt + " without seccomp", runtime, {.seccomp = false}, nullptr, {}});
    configs.push_back(
        {rt + " --userns", runtime, {.user_namespace = kiln::sandbox::kDefaultUserNamespace}, nullptr, {}});
  }
  int status = 0;
  for (std::size_t i = 0; i < configs.size() && status == 0; ++i) {
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
      Configuration& c = configs[(k + static_cast<std::size_t>(round)) % configs.size()];
      kiln::CancelToken cancel;
      auto start = Clock::now();
      kiln::Status s = c.sandbox->run(spec, (dir / "rootfs").string(), nullptr, cancel);
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (!s) {
        std::fprintf(stderr, "%s: %s\n", c.name.c_str(), s.error().to_string().c_str());
        status = 1;
      }
      if (round > 0) c.ms.push_back(ms);
    }
  }
  if (status == 0) {
    std::printf("%-26s %9s %9s %14s\n", "configuration", "mean ms", "median ms", "median ratio");
    for (const Configuration& c : configs) {
      const Configuration& base = c.runtime == OciRuntime::kRunc ? configs[0] : configs[3];
      std::printf("%-26s %9.1f %9.1f %14.2f\n", c.name.c_str(), mean(c.ms), median(c.ms),
                  median(c.ms) / median(base.ms));
    }
  }
  configs.clear();
  fs::remove_all(dir);
  return status;
}
