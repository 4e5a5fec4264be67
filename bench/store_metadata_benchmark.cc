// The snapshot store's metadata operations (worker/store/metadata.h) at
// scale: a RocksDB database holding 100,000 results (chains of 10 sharing
// roots), then recording a result, marking one used, and finding the least
// recently used leaf. The goal (issue 3): each under 50 µs.
//
//   build/bench/store_metadata_benchmark [--results N] [google benchmark flags]
//
// The database lives in a temporary directory, removed on exit.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include <fmt/format.h>

#include "worker/store/metadata.h"

namespace {

using kiln::store::Metadata;
using kiln::store::ResultRecord;

int g_results = 100'000;
std::unique_ptr<Metadata> g_db;
std::int64_t g_clock = 1;  // a logical clock: microseconds that only go up

std::string id_of(int i) {
  return fmt::format("{:064x}", i);
}

void populate(int results) {
  for (int i = 0; i < results; ++i) {
    ResultRecord r;
    if (i % 10 != 0) r.parent = id_of(i - 1);  // chains of 10
    r.created_us = r.last_used_us = g_clock++;
    r.size_bytes = 4096;
    r.build_ms = 100;
    if (auto s = g_db->add_result(id_of(i), r); !s) {
      std::fprintf(stderr, "populate: %s\n", s.error().to_string().c_str());
      std::exit(1);
    }
  }
}

void BM_RecordResult(benchmark::State& state) {
  static int next = 0;
  std::mt19937 rng(1);
  for (auto _ : state) {
    ResultRecord r;
    r.parent = id_of(static_cast<int>(rng() % static_cast<unsigned>(g_results)));
    r.created_us = r.last_used_us = g_clock++;
    auto s = g_db->add_result(fmt::format("new{:061x}", next++), r);
    if (!s) state.SkipWithError(s.error().to_string().c_str());
  }
}
BENCHMARK(BM_RecordResult)->Unit(benchmark::kMicrosecond);

void BM_MarkUsed(benchmark::State& state) {
  std::mt19937 rng(2);
  for (auto _ : state) {
    auto s = g_db->mark_used(id_of(static_cast<int>(rng() % static_cast<unsigned>(g_results))), g_clock++);
    if (!s) state.SkipWithError(s.error().to_string().c_str());
  }
}
BENCHMARK(BM_MarkUsed)->Unit(benchmark::kMicrosecond);

void BM_FindLruLeaf(benchmark::State& state) {
  for (auto _ : state) {
    auto leaves = g_db->lru_leaves(g_clock, 1);
    if (!leaves || leaves->size() != 1) state.SkipWithError("no LRU leaf found");
    benchmark::DoNotOptimize(leaves);
  }
}
BENCHMARK(BM_FindLruLeaf)->Unit(benchmark::kMicrosecond);

// Pruning as the builder does it: find the oldest leaf, delete it.
void BM_PruneOldestLeaf(benchmark::State& state) {
  for (auto _ : state) {
    auto leaves = g_db->lru_leaves(g_clock, 1);
    if (!leaves || leaves->empty()) {
      state.SkipWithError("no LRU leaf found");
      break;
    }
    if (auto s = g_db->remove_result(leaves->front()); !s) state.SkipWithError(s.error().to_string().c_str());
  }
}
BENCHMARK(BM_PruneOldestLeaf)->Unit(benchmark::kMicrosecond)->Iterations(10'000);

// What `kiln build` pays to open a small store's metadata (50 results, in
// /var/tmp: on disk, where syncs cost what they cost a real store) and look
// up the five steps of a cached build: writable, as before the store opened
// read-only until its first change (RocksDB writes and syncs a new
// manifest, CURRENT and an OPTIONS file), and read-only as a cached build
// opens it now (nothing written). Run it beside a disk writer to see the
// difference grow (docs/performance.md).
// A new small database for each benchmark, so that both start alike.
std::filesystem::path small_store(const char* name) {
  auto dir =
      std::filesystem::path("/var/tmp") / fmt::format("kiln-store-metadata-bench-{}-{}", name, getpid());
  std::filesystem::remove_all(dir);
  auto db = Metadata::open(dir.string());
  for (int i = 0; db && i < 50; ++i) {
    ResultRecord r;
    if (i % 5 != 0) r.parent = id_of(i - 1);
    r.created_us = r.last_used_us = i + 1;
    (void)(*db)->add_result(id_of(i), r);
  }
  return dir;
}

template <bool kReadOnly>
void BM_OpenAndLookUpFiveSteps(benchmark::State& state) {
  const std::filesystem::path path = small_store(kReadOnly ? "read-only" : "writable");
  const std::string dir = path.string();
  for (auto _ : state) {
    auto db = kReadOnly ? Metadata::open_read_only(dir) : Metadata::open(dir);
    if (!db) {
      state.SkipWithError(db.error().to_string().c_str());
      break;
    }
    for (int i = 0; i < 5; ++i) benchmark::DoNotOptimize((*db)->get_result(id_of(i)));
  }
  std::filesystem::remove_all(path);
}
BENCHMARK(BM_OpenAndLookUpFiveSteps<false>)
    ->Name("BM_OpenWritableAndLookUpFiveSteps")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OpenAndLookUpFiveSteps<true>)
    ->Name("BM_OpenReadOnlyAndLookUpFiveSteps")
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--results") == 0) {
      g_results = std::atoi(argv[i + 1]);
      for (int j = i; j + 2 <= argc; ++j) argv[j] = argv[j + 2];
      argc -= 2;
      break;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  auto dir = std::filesystem::temp_directory_path() / fmt::format("kiln-store-metadata-bench-{}", getpid());
  auto db = Metadata::open(dir.string());
  if (!db) {
    std::fprintf(stderr, "%s\n", db.error().to_string().c_str());
    return 1;
  }
  g_db = std::move(*db);
  auto started = std::chrono::steady_clock::now();
  populate(g_results);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "populated %d results in %.2f s (%.1f us each)\n", g_results, seconds,
               seconds * 1e6 / g_results);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
