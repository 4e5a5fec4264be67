// Times the snapshot store's backend operations on a real store, for
// bench/store-vs-tools, which runs the raw tools on the same tree in the
// same run and prints the ratios.
//
//   build/bench/store_backend_benchmark --store btrfs:/mnt/b/store --tree DIR [--runs 20]
//                                       [--rsync-mode copy|hardlink] [--steps]
//
// Imports DIR as result "base" (its rootfs). Then, by default, `runs` times:
// builds a child of base with an empty step (clone the base + commit the
// result, metadata included) and deletes it. With --steps it prints "ready"
// once the base is imported and then does one operation per line read from
// stdin — "clone" builds the next child, "delete" deletes the last one built
// — answering each with its time in ms; this lets a script interleave the
// store's operations with a tool's, so both run on the same filesystem
// history (see bench/store-vs-tools). At the end (or at end of input) it
// prints one line per operation:
//   clone_commit <mean ms> <median ms>
//   delete <mean ms> <median ms>
// The store directory is left in place (the script removes it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "worker/store/fs_util.h"
#include "worker/store/store.h"

namespace {

using kiln::Status;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void print(const char* name, std::vector<double> times) {
  if (times.empty()) return;
  std::sort(times.begin(), times.end());
  double mean = std::accumulate(times.begin(), times.end(), 0.0) / static_cast<double>(times.size());
  std::printf("%s %.3f %.3f\n", name, mean, times[times.size() / 2]);
}

int fail(const kiln::Error& e) {
  std::fprintf(stderr, "store_backend_benchmark: %s\n", e.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec, tree;
  int runs = 20;
  bool steps = false;
  kiln::store::StoreOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--steps") {
      steps = true;
      continue;
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, "store_backend_benchmark: %s needs a value\n", flag.c_str());
      return 2;
    }
    std::string value = argv[++i];
    if (flag == "--store") {
      spec = value;
    } else if (flag == "--tree") {
      tree = value;
    } else if (flag == "--runs") {
      runs = std::max(1, std::atoi(value.c_str()));
    } else if (flag == "--rsync-mode") {
      auto mode = kiln::store::parse_rsync_mode(value);
      if (!mode) return fail(mode.error());
      options.rsync_mode = *mode;
    } else {
      std::fprintf(stderr, "store_backend_benchmark: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (spec.empty() || tree.empty()) {
    std::fprintf(stderr,
                 "usage: store_backend_benchmark --store SPEC --tree DIR [--runs N] [--rsync-mode M] "
                 "[--steps]\n");
    return 2;
  }
  auto store = kiln::store::open_store(spec, options);
  if (!store) return fail(store.error());
  auto imported = (*store)->build(std::nullopt, "base", [&](const kiln::store::Workspace& ws) -> Status {
    return kiln::store::run_command({"cp", "-a", tree, ws.rootfs});
  });
  if (!imported) return fail(imported.error());
  std::vector<double> clone_commit, remove;
  int built_count = 0;
  std::string last_built;
  auto clone_step = [&]() -> Status {
    std::string id = fmt::format("child{}", built_count++);
    auto t = Clock::now();
    auto built = (*store)->build("base", id, [](const kiln::store::Workspace&) -> Status { return {}; });
    clone_commit.push_back(ms_since(t));
    if (built) last_built = id;
    return built;
  };
  auto delete_step = [&]() -> Status {
    auto t = Clock::now();
    auto deleted = (*store)->delete_result(last_built);
    remove.push_back(ms_since(t));
    return deleted;
  };
  if (steps) {
    std::printf("ready\n");
    std::fflush(stdout);
    for (std::string line; std::getline(std::cin, line);) {
      Status s;
      if (line == "clone") {
        s = clone_step();
        if (s) std::printf("%.3f\n", clone_commit.back());
      } else if (line == "delete") {
        s = delete_step();
        if (s) std::printf("%.3f\n", remove.back());
      } else {
        std::fprintf(stderr, "store_backend_benchmark: unknown step \"%s\" (clone or delete)\n",
                     line.c_str());
        return 2;
      }
      if (!s) return fail(s.error());
      std::fflush(stdout);
    }
  } else {
    for (int i = 0; i < runs; ++i) {
      if (auto s = clone_step(); !s) return fail(s.error());
      if (auto s = delete_step(); !s) return fail(s.error());
    }
  }
  print("clone_commit", clone_commit);
  print("delete", remove);
  if (auto s = (*store)->delete_result("base"); !s) return fail(s.error());
  if (auto s = (*store)->complete_deletes(); !s) return fail(s.error());
  return 0;
}
