// Placement decisions per second and the inventory index's memory
// (docs/placement.md, "Figures").
//
//   build-*/bench/placement_benchmark                      # everything
//   build-*/bench/placement_benchmark --benchmark_filter=Decisions
//
// Decisions: 1,000 workers (2 slots each, every slot busy), 100,000 queued
// jobs with 8-step chains from 200 repositories, each worker's inventory
// holding the chains of the jobs it ran. One iteration: a running job ends
// (job_finished with its step reports), a new job is submitted, and assign()
// places what it can; items/s counts assignments (decisions).
// Memory: 1,000 workers each holding 100,000 step ids drawn from a shared
// universe; reports the index's counted bytes and the process's RSS growth.
#include <benchmark/benchmark.h>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "scheduler/placement/inventory.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

// A step id (64 hex characters) for repository `repo`, dependency variant
// `variant`, at depth `depth`; depth >= 5 steps are per commit.
std::string step_id(int repo, int variant, int depth, int commit) {
  std::uint64_t key = (static_cast<std::uint64_t>(repo) << 40) ^ (static_cast<std::uint64_t>(variant) << 24) ^
                      (static_cast<std::uint64_t>(depth) << 56) ^
                      static_cast<std::uint64_t>(depth >= 5 ? commit + 1 : 0) * 0x9E3779B97F4A7C15ull;
  char buf[65];
  std::uint64_t x = key;
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::snprintf(buf + i * 16, 17, "%016llx", static_cast<unsigned long long>(z));
  }
  return std::string(buf, 64);
}

std::vector<std::string> chain(int repo, int variant, int commit) {
  std::vector<std::string> steps;
  steps.push_back(step_id(repo % 4, 0, 0, 0));  // a few shared bases
  for (int d = 1; d < 8; ++d) steps.push_back(step_id(repo, variant, d, commit));
  return steps;
}

void Decisions(benchmark::State& state, const char* policy_name) {
  constexpr int kWorkers = 1000, kCapacity = 2, kQueued = 100000, kRepos = 200;
  auto made = make_policy(policy_name);
  if (!made) {
    state.SkipWithError(made.error().to_string().c_str());
    return;
  }
  std::unique_ptr<Policy> policy = std::move(*made);
  std::mt19937_64 rng(7);
  double now = 0;
  for (int w = 0; w < kWorkers; ++w) {
    std::string name = "w" + std::to_string(w);
    policy->update_worker({.name = name, .pool = "linux", .capacity = kCapacity}, now);
    // Warm for a handful of repositories.
    std::vector<std::string> held;
    for (int k = 0; k < 5; ++k) {
      int repo = static_cast<int>(rng() % kRepos);
      auto c = chain(repo, 0, 0);
      held.insert(held.end(), c.begin(), c.begin() + 5);
    }
    policy->inventory(name, true, held, {});
  }
  int next = 0;
  std::vector<std::vector<std::string>> chains;
  auto submit = [&] {
    int repo = static_cast<int>(rng() % kRepos);
    PlacementJob job{.id = "j" + std::to_string(next++),
                     .pool = "linux",
                     .client = "c" + std::to_string(rng() % 8),
                     .urgent = rng() % 4 == 0,
                     .steps = chain(repo, static_cast<int>(rng() % 3), next),
                     .submitted_at = now};
    policy->add_job(job, now);
    chains.push_back(std::move(job.steps));
  };
  for (int i = 0; i < kQueued + kWorkers * kCapacity; ++i) submit();
  std::deque<Assignment> running;
  for (const Assignment& a : policy->assign(now)) running.push_back(a);

  std::size_t decisions = 0;
  for (auto _ : state) {
    now += 1;
    if (!running.empty()) {
      Assignment done = running.front();
      running.pop_front();
      std::vector<StepReport> reports;
      for (const std::string& s : chains[std::stoul(done.job_id.substr(1))])
        reports.push_back({s, false, 30});
      policy->job_finished(done.worker, done.job_id, reports, now);
    }
    submit();
    for (const Assignment& a : policy->assign(now)) {
      running.push_back(a);
      ++decisions;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(decisions));
  state.counters["queued"] = static_cast<double>(policy->queued());
}

BENCHMARK_CAPTURE(Decisions, kiln, "kiln")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Decisions, least_loaded, "least-loaded")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Decisions, ocluster_hint, "ocluster-hint")->Unit(benchmark::kMicrosecond);

double rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

Digest universe_id(std::uint64_t n) {
  Digest d{};
  std::uint64_t x = n;
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (int b = 0; b < 8; ++b) d[i * 8 + b] = static_cast<std::uint8_t>(z >> (8 * b));
  }
  return d;
}

// 1,000 workers x 100,000 ids: 20,000 ids every worker holds (base images,
// common dependency layers) and 80,000 drawn from a tail of `universe`
// ids, so each tail id is held by about 80,000 x 1,000 / tail workers.
void InventoryMemory(benchmark::State& state) {
  constexpr int kWorkers = 1000, kPerWorker = 100000, kCore = 20000;
  const std::uint64_t universe = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    double rss_before = rss_bytes();
    auto index = std::make_unique<InventoryIndex>();
    std::mt19937_64 rng(1);
    std::vector<Digest> ids(kPerWorker);
    for (int w = 0; w < kWorkers; ++w) {
      WorkerSlot slot = index->add_worker("w" + std::to_string(w));
      for (int i = 0; i < kCore; ++i) ids[i] = universe_id(i);
      // A random window of the tail: distinct ids, cheap to draw.
      std::uint64_t tail = universe - kCore;
      std::uint64_t start = rng() % tail;
      for (int i = kCore; i < kPerWorker; ++i) ids[i] = universe_id(kCore + (start + (i - kCore)) % tail);
      index->add(slot, ids);
    }
    state.counters["counted_MiB"] = static_cast<double>(index->memory_bytes()) / (1 << 20);
    state.counters["rss_growth_MiB"] = (rss_bytes() - rss_before) / (1 << 20);
    state.counters["distinct_ids"] = static_cast<double>(index->distinct_ids());
    state.counters["memberships_M"] = static_cast<double>(kWorkers) * kPerWorker / 1e6;
    // What the scheduler does per inventory message at this scale: apply a
    // one-id change and compare the worker's set digest (the drift check).
    constexpr int kMessages = 10000;
    auto start = std::chrono::steady_clock::now();
    Digest sink{};
    for (int m = 0; m < kMessages; ++m) {
      WorkerSlot slot = static_cast<WorkerSlot>(rng() % kWorkers);
      IdRef ref = index->add_one(slot, universe_id(universe + static_cast<std::uint64_t>(m)));
      sink[0] ^= index->set_digest(slot)[0];
      index->remove_one(slot, ref);
    }
    std::chrono::duration<double, std::micro> spent = std::chrono::steady_clock::now() - start;
    state.counters["us_per_inventory_message"] = spent.count() / kMessages;
    benchmark::DoNotOptimize(sink);
    benchmark::DoNotOptimize(index.get());
  }
}

BENCHMARK(InventoryMemory)->Arg(400000)->Arg(1000000)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace kiln::placement

BENCHMARK_MAIN();
