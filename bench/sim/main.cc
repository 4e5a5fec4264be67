// kiln-sim: replays a CI trace against the placement policies and prints a
// comparison table (docs/placement.md, "Simulator").
//
//   kiln-sim                          # the small synthetic day, every policy
//   kiln-sim --synthetic large --check
//   kiln-sim --trace farm.jsonl --policies kiln,least-loaded
//   kiln-sim --write-trace day.jsonl
//   kiln-sim --seeds 1-10             # the goals on ten synthetic days
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "bench/sim/simulator.h"
#include "bench/sim/synthetic_trace.h"

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

// kiln's goals against the baselines on one trace (docs/placement.md).
struct Goals {
  double cold_ratio = 0;  // ocluster-hint's cold steps / kiln's
  double cold_bound = 0;  // ocluster-hint's cold steps / the oracle's: the most any policy could reach
  bool cold_ok = false, wait_ok = false, util_ok = false;
  bool met() const { return cold_ok && wait_ok && util_ok; }
};

Goals goals_of(const SimResult& k, const SimResult& o, const SimResult& l, const SimResult& bound) {
  Goals g;
  g.cold_ratio = k.cold_steps ? static_cast<double>(o.cold_steps) / static_cast<double>(k.cold_steps) : 0;
  g.cold_bound =
      bound.cold_steps ? static_cast<double>(o.cold_steps) / static_cast<double>(bound.cold_steps) : 0;
  g.cold_ok = g.cold_ratio >= 1.5;
  g.wait_ok = k.wait_p95 <= l.wait_p95 * 1.10;
  g.util_ok = k.util_max_over_mean() <= 1.25;
  return g;
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
  std::string seeds;
  app.add_option("--seeds", seeds,
                 "Synthetic: A-B: one synthetic day per seed A..B (with the other synthetic flags), kiln's "
                 "goals on each as a table; exit 1 with --check unless all are met")
      ->excludes("--trace")
      ->excludes("--seed");
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
  kiln::sim::SimOptions options{.cached_step_seconds = cached_step};

  if (!seeds.empty()) {
    unsigned long first = 0, last = 0;
    if (std::sscanf(seeds.c_str(), "%lu-%lu", &first, &last) != 2 || first == 0 || last < first) {
      std::cerr << "kiln-sim: --seeds wants A-B with 1 <= A <= B, as in 1-10; got " << seeds << "\n";
      return 2;
    }
    fmt::print(
        "| seed | cold steps ocluster-hint/kiln (bound) | kiln cold (first / held elsewhere / evicted) | "
        "wait p95 kiln / least-loaded | submit-to-end p95 kiln / least-loaded | kiln util max/mean | goals "
        "|\n");
    fmt::print("|---|---|---|---|---|---|---|\n");
    unsigned long met = 0;
    for (unsigned long s = first; s <= last; ++s) {
      syn.seed = s;
      kiln::sim::Trace day = kiln::sim::synthetic_trace(syn);
      std::map<std::string, SimResult> r;
      for (const char* name : {"kiln", "ocluster-hint", "least-loaded"}) {
        auto one = kiln::sim::simulate(day, name, policy_options, options);
        if (!one) {
          std::cerr << "kiln-sim: " << one.error().to_string() << "\n";
          return 2;
        }
        r[name] = std::move(*one);
      }
      const SimResult& k = r["kiln"];
      const SimResult& l = r["least-loaded"];
      Goals g = goals_of(k, r["ocluster-hint"], l, kiln::sim::oracle_bound(day, options));
      met += g.met();
      fmt::print("| {} | {:.2f} ({:.2f}) | {} ({} / {} / {}) | {} / {} | {} / {} | {:.2f} | {} |\n", s,
                 g.cold_ratio, g.cold_bound, k.cold_steps, k.cold_first, k.cold_held_elsewhere,
                 k.cold_after_eviction, seconds(k.wait_p95), seconds(l.wait_p95), seconds(k.turnaround_p95),
                 seconds(l.turnaround_p95), k.util_max_over_mean(),
                 g.met() ? "met"
                         : fmt::format("missed:{}{}{}", g.cold_ok ? "" : " cold", g.wait_ok ? "" : " wait",
                                       g.util_ok ? "" : " util"));
    }
    fmt::print("\nkiln's goals met on {} of {} seeds\n", met, last - first + 1);
    return check && met != last - first + 1 ? 1 : 0;
  }

  kiln::sim::Trace trace;
  if (!trace_path.empty()) {
    auto read = kiln::sim::read_trace(trace_path);
    if (!read) {
      std::cerr << "kiln-sim: " << read.error().to_string() << "\n";
      return 2;
    }
    trace = std::move(*read);
  } else {
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
  fmt::print(
      "cold steps by cause (first build anywhere / another worker held or was building it / "
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
    const SimResult& l = results["least-loaded"];
    Goals g = goals_of(k, results["ocluster-hint"], l, kiln::sim::oracle_bound(trace, options));
    fmt::print(
        "\ngoal: cold steps ocluster-hint/kiln = {:.2f} (>= 1.5): {} (no policy can exceed {:.2f}, the "
        "oracle bound's)\n",
        g.cold_ratio, g.cold_ok ? "met" : "MISSED", g.cold_bound);
    fmt::print("goal: p95 wait kiln {} vs least-loaded {} (<= +10%): {}\n", seconds(k.wait_p95),
               seconds(l.wait_p95), g.wait_ok ? "met" : "MISSED");
    fmt::print("goal: kiln max/mean utilisation {:.2f} (<= 1.25): {}\n", k.util_max_over_mean(),
               g.util_ok ? "met" : "MISSED");
    if (check && !g.met()) return 1;
  } else if (check) {
    std::cerr << "kiln-sim: --check needs kiln, ocluster-hint and least-loaded in --policies\n";
    return 2;
  }
  return 0;
}
