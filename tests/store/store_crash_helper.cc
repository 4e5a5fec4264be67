// Helper process for the store crash test: opens the store named on the
// command line, builds `base`, takes a copy of cache `c`, then starts
// building `doomed` from `base`, writes some files, prints "ready" and
// blocks until killed (the test sends SIGKILL).
//
//   kiln_store_crash_helper <store spec> <copy|hardlink> [DOCKER_HOST HOME SCRATCH_IMAGE]
//
// The docker store (spec "docker:PREFIX") also needs the daemon, the store's
// home and the image its builds from nothing start from.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "tests/store/store_trees.h"
#include "worker/store/store.h"

using kiln::Status;

int main(int argc, char** argv) {
  if (argc != 3 && argc != 6) {
    std::fprintf(stderr, "usage: %s STORE copy|hardlink [DOCKER_HOST HOME SCRATCH_IMAGE]\n", argv[0]);
    return 2;
  }
  kiln::store::StoreOptions options;
  options.rsync_mode = *kiln::store::parse_rsync_mode(argv[2]);
  std::unique_ptr<kiln::store::testing::StoreTrees> trees;
  if (argc == 6) {
    options.docker_host = argv[3];
    options.home = argv[4];
    std::string spec = argv[1];
    trees = kiln::store::testing::docker_trees(argv[3], spec.substr(spec.find(':') + 1), argv[5]);
  } else {
    trees = kiln::store::testing::directory_trees();
  }
  auto store = kiln::store::open_store(argv[1], options);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().to_string().c_str());
    return 1;
  }
  auto built = (*store)->build(std::nullopt, "base", [&](const kiln::store::Workspace& ws) -> Status {
    return trees->write(ws, {{"base-file", "base"}});
  });
  if (!built) {
    std::fprintf(stderr, "%s\n", built.error().to_string().c_str());
    return 1;
  }
  auto lease = (*store)->cache({0, 0}, "c");
  if (!lease) {
    std::fprintf(stderr, "%s\n", lease.error().to_string().c_str());
    return 1;
  }
  std::ofstream(lease->path() + "/half-written") << "x";
  (void)(*store)->build("base", "doomed", [&](const kiln::store::Workspace& ws) -> Status {
    if (auto s = trees->write(ws, {{"partial", "partial"}}); !s) {
      std::fprintf(stderr, "%s\n", s.error().to_string().c_str());
      return s;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) pause();
    return {};
  });
  return 1;
}
