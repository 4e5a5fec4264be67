// kiln-sim: replays a CI trace against the placement policies and prints a
// comparison table (docs/placement.md, "Simulator").
//
//   kiln-sim                          # the small synthetic day, every policy
//   kiln-sim --synthetic large --check
//   kiln-sim --trace farm.jsonl --policies kiln,least-loaded
//   kiln-sim --write-trace day.jsonl
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "bench/sim/simulator.h"
#include "bench/sim/trace.h"

namespace {

using kiln::sim::SimResult;

std::string seconds(double s) {
  if (s >= 3600) return fmt::format("{:.2f}h", s / 3600);
  if (s >= 60) return fmt::format("{:.1f}m", s / 60);
  return fmt::format("{:.0f}s", s);
}

std::string row(const SimResult& r) {
  std::string shares;
  for (const auto& [client, share] : r.client_share) {
    shares += fmt::format("{}{} {:.0f}%", shares.empty() ? "" : ", ", client, share * 100);
  }
  if (r.bound) {
    return fmt::format("| {} | {:.3f} ({}) | {} | 0 | 0 | 0 | - | {} | - | - |", r.policy, r.cold_fraction(),
                       r.cold_steps, seconds(r.build_seconds), seconds(r.makespan));
  }
  return fmt::format("| {} | {:.3f} ({}) | {} | {} | {} | {} | {} | {} | {:.2f} ({:.2f}/{:.2f}) | {} |",
                     r.policy, r.cold_fraction(), r.cold_steps, seconds(r.build_seconds), seconds(r.wait_p50),
                     seconds(r.wait_p95), seconds(r.wait_p99), seconds(r.turnaround_p95), seconds(r.makespan),
                     r.util_max_over_mean(), r.util_max, r.util_mean, shares);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln-sim: trace-driven comparison of kiln's placement policies on a virtual farm"};
  std::string trace_path, synthetic = "small", write_path,
                          policies = "random,least-loaded,ocluster-hint,kiln";
  kiln::sim::SyntheticOptions syn;
  int jobs = 0, workers = 0, repos = 0;
  std::uint32_t capacity = 0;
  std::size_t cache_limit = 0;
  bool cache_limit_set = false, check = false;
  double hours = 0, cached_step = 0.5;
  std::uint64_t seed = 0;
  app.add_option("--trace", trace_path,
                 "A JSON-lines trace to replay (docs/placement.md); else a synthetic one");
  app.add_option("--synthetic", synthetic,
                 "Synthetic preset: small (50 repositories, 1,500 jobs, 8 workers; the ctest) or large (100, "
                 "3,000, 16)")
      ->check(CLI::IsMember({"small", "large"}));
  app.add_option("--jobs", jobs, "Synthetic: jobs");
  app.add_option("--workers", workers, "Synthetic: workers");
  app.add_option("--capacity", capacity, "Synthetic: slots per worker");
  app.add_option("--repos", repos, "Synthetic: repositories");
  app.add_option("--jobs-per-push", syn.jobs_per_push, "Synthetic: jobs in each push's pipeline (1-3)")
      ->check(CLI::Range(1, 3));
  app.add_option("--branches", syn.branches, "Synthetic: branches per repository (own lock files)");
  app.add_option("--hours", hours, "Synthetic: hours of submissions");
  app.add_option("--seed", seed, "Synthetic: random seed");
  app.add_option("--cache-limit", cache_limit, "Synthetic: step ids each worker caches (0: unlimited)")
      ->each([&](const std::string&) { cache_limit_set = true; });
  app.add_option("--cached-step-seconds", cached_step, "Seconds a cached step still costs");
  app.add_option("--policies", policies, "Comma-separated policies to run");
  kiln::placement::PolicyOptions policy_options;
  app.add_option("--wait-weight", policy_options.wait_weight, "PolicyOptions::wait_weight for every policy");
  app.add_option("--min-gain", policy_options.min_gain_seconds, "PolicyOptions::min_gain_seconds");
  app.add_option("--near-tie", policy_options.near_tie_fraction, "PolicyOptions::near_tie_fraction");
  app.add_option("--write-trace", write_path, "Also write the trace used, as JSON lines");
  app.add_flag("--check", check,
               "Exit 1 unless kiln's goals hold: >= 1.5x fewer cold steps than ocluster-hint, p95 wait <= "
               "least-loaded's + 10%, max/mean utilisation <= 1.25");
  CLI11_PARSE(app, argc, argv);

  kiln::sim::Trace trace;
  if (!trace_path.empty()) {
    auto read = kiln::sim::read_trace(trace_path);
    if (!read) {
      std::cerr << "kiln-sim: " << read.error().to_string() << "\n";
      return 2;
    }
    trace = std::move(*read);
  } else {
    if (synthetic == "large") {
      syn.repos = 100;
      syn.jobs = 3000;
      syn.workers = 16;
    }
    if (jobs) syn.jobs = jobs;
    if (workers) syn.workers = workers;
    if (capacity) syn.capacity = capacity;
    if (repos) syn.repos = repos;
    if (hours > 0) syn.hours = hours;
    if (seed) syn.seed = seed;
    if (cache_limit_set) syn.cache_limit = cache_limit;
    trace = kiln::sim::synthetic_trace(syn);
  }
  if (!write_path.empty()) {
    std::ofstream out(write_path);
    kiln::sim::write_trace(trace, out);
    if (!out) {
      std::cerr << "kiln-sim: cannot write " << write_path << "\n";
      return 2;
    }
  }

  std::size_t slots = 0;
  for (const auto& w : trace.workers) slots += w.capacity;
  fmt::print("{} jobs, {} workers ({} slots)\n\n", trace.jobs.size(), trace.workers.size(), slots);
  fmt::print(
      "| policy | cold steps (count) | build time | wait p50 | wait p95 | wait p99 | submit-to-end p95 | "
      "makespan | util max/mean (max/mean) | client share |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  kiln::sim::SimOptions options{.cached_step_seconds = cached_step};
  std::map<std::string, SimResult> results;
  std::stringstream names(policies);
  for (std::string name; std::getline(names, name, ',');) {
    auto r = kiln::sim::simulate(trace, name, policy_options, options);
    if (!r) {
      std::cerr << "kiln-sim: " << r.error().to_string() << "\n";
      return 2;
    }
    fmt::print("{}\n", row(*r));
    if (r->unplaced) fmt::print("|   ({} jobs never placed) |\n", r->unplaced);
    results[name] = std::move(*r);
  }
  fmt::print("{}\n\n", row(kiln::sim::oracle_bound(trace, options)));
  fmt::print("cold steps by cause (first build anywhere / another worker held or was building it / "
             "evicted everywhere since):\n");
  for (const auto& [name, r] : results) {
    fmt::print("  {}: {} / {} / {}\n", name, r.cold_first, r.cold_held_elsewhere, r.cold_after_eviction);
  }
  for (const auto& [name, r] : results) {
    fmt::print("{}: {} decisions, {:.3f} s in the policy ({:.0f} decisions/s incl. bookkeeping)\n", name,
               r.decisions, r.policy_cpu_seconds,
               r.policy_cpu_seconds > 0 ? r.decisions / r.policy_cpu_seconds : 0);
  }

  if (results.contains("kiln") && results.contains("ocluster-hint") && results.contains("least-loaded")) {
    const SimResult& k = results["kiln"];
    const SimResult& o = results["ocluster-hint"];
    const SimResult& l = results["least-loaded"];
    double cold_ratio = k.cold_steps ? static_cast<double>(o.cold_steps) / k.cold_steps : 0;
    bool cold_ok = cold_ratio >= 1.5;
    bool wait_ok = k.wait_p95 <= l.wait_p95 * 1.10;
    bool util_ok = k.util_max_over_mean() <= 1.25;
    fmt::print("\ngoal: cold steps ocluster-hint/kiln = {:.2f} (>= 1.5): {}\n", cold_ratio,
               cold_ok ? "met" : "MISSED");
    fmt::print("goal: p95 wait kiln {} vs least-loaded {} (<= +10%): {}\n", seconds(k.wait_p95),
               seconds(l.wait_p95), wait_ok ? "met" : "MISSED");
    fmt::print("goal: kiln max/mean utilisation {:.2f} (<= 1.25): {}\n", k.util_max_over_mean(),
               util_ok ? "met" : "MISSED");
    if (check && !(cold_ok && wait_ok && util_ok)) return 1;
  } else if (check) {
    std::cerr << "kiln-sim: --check needs kiln, ocluster-hint and least-loaded in --policies\n";
    return 2;
  }
  return 0;
}
