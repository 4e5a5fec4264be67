// Helper process for the store crash test: opens the store named on the
// command line, builds `base`, takes a copy of cache `c`, then starts
// building `doomed` from `base`, writes some files, prints "ready" and
// blocks until killed (the test sends SIGKILL).
//
//   kiln_store_crash_helper <store spec> <copy|hardlink>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "worker/store/store.h"

using kiln::Status;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STORE copy|hardlink\n", argv[0]);
    return 2;
  }
  kiln::store::StoreOptions options;
  options.rsync_mode = *kiln::store::parse_rsync_mode(argv[2]);
  auto store = kiln::store::open_store(argv[1], options);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().to_string().c_str());
    return 1;
  }
  auto built = (*store)->build(std::nullopt, "base", [](const std::string& dir) -> Status {
    std::filesystem::create_directories(dir + "/rootfs");
    std::ofstream(dir + "/rootfs/base-file") << "base";
    return {};
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
  (void)(*store)->build("base", "doomed", [](const std::string& dir) -> Status {
    std::ofstream(dir + "/rootfs/partial") << "partial";
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) pause();
    return {};
  });
  return 1;
}
