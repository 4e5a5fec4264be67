#include "bench/sim/synthetic_trace.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include <fmt/format.h>

#include "common/sha256.h"

namespace kiln::sim {

namespace {

struct Repo {
  int base = 0;
  double weight = 1;
  double apt_seconds = 0, deps_seconds = 0, setup_seconds = 0, build_seconds = 0, test_seconds = 0;
  std::vector<int> deps_version;  // by branch
  int commits = 0;
};

}  // namespace

Trace synthetic_trace(const SyntheticOptions& o) {
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
  };

  Trace trace;
  for (int w = 0; w < o.workers; ++w) {
    trace.workers.push_back(
        {.name = fmt::format("w{:02}", w), .capacity = o.capacity, .cache_limit = o.cache_limit});
  }

  std::vector<Repo> repos(o.repos);
  double total_weight = 0;
  for (int r = 0; r < o.repos; ++r) {
    Repo& repo = repos[r];
    repo.base = r % o.base_images;
    // A few busy repositories and a long tail.
    repo.weight = 1.0 / std::pow(r + 1.0, 0.8);
    total_weight += repo.weight;
    repo.apt_seconds = uniform(60, 180);
    repo.deps_seconds = uniform(120, 480);
    repo.setup_seconds = uniform(20, 60);
    repo.build_seconds = uniform(60, 240);
    repo.test_seconds = uniform(30, 150);
    repo.deps_version.assign(std::max(1, o.branches), 0);
  }
  auto pick_repo = [&]() {
    double x = uniform(0, total_weight);
    for (int r = 0; r < o.repos; ++r) {
      x -= repos[r].weight;
      if (x <= 0) return r;
    }
    return o.repos - 1;
  };

  const double span = o.hours * 3600;
  // Bursts: pushes cluster (a team's morning, a release); 35% of the
  // interactive jobs fall in one of a few 10-minute windows.
  std::vector<double> bursts;
  for (int b = 0; b < std::max(1, static_cast<int>(o.hours)); ++b) bursts.push_back(uniform(0, span - 600));
  const double nightly_at = span * 0.7;

  struct Pending {
    double t;
    int repo;
    std::string client;
    bool urgent;
  };
  std::vector<Pending> pending;
  int pushes = (o.jobs + o.jobs_per_push - 1) / std::max(1, o.jobs_per_push);
  int nightly = std::min(o.repos, pushes / 10);
  for (int r = 0; r < nightly; ++r) pending.push_back({nightly_at + r * 0.5, r, "nightly", false});
  for (int i = 0; i < pushes - nightly; ++i) {
    double t = uniform(0, 1) < 0.35 ? bursts[rng() % bursts.size()] + uniform(0, 600) : uniform(0, span);
    bool pr = uniform(0, 1) < 0.65;
    pending.push_back({t, pick_repo(), pr ? "pr" : "main", pr});
  }
  std::stable_sort(pending.begin(), pending.end(),
                   [](const Pending& a, const Pending& b) { return a.t < b.t; });

  int n = 0;
  for (const Pending& p : pending) {
    Repo& repo = repos[p.repo];
    // Most pushes are to the main branch; the others (release branches)
    // have their own lock files.
    int branch = 0;
    for (int b = 1; b < static_cast<int>(repo.deps_version.size()); ++b) {
      if (uniform(0, 1) < 0.3) branch = b;
    }
    // Lock files change now and then: the dependency chain from there on is new.
    if (uniform(0, 1) < 0.03) ++repo.deps_version[branch];
    std::string deps = fmt::format("b{}v{}", branch, repo.deps_version[branch]);
    int commit = repo.commits++;
    // The commit's shared chain: base, dependency steps, source, build.
    std::vector<TraceStep> shared;
    std::string parent;
    auto step = [&](std::vector<TraceStep>& into, const std::string& from, const std::string& what,
                    double seconds) {
      std::string id = sha256_hex(from + "|" + what);
      into.push_back({.id = id, .seconds = std::round(seconds * 10) / 10});
      return id;
    };
    parent = step(shared, parent, fmt::format("from base-{}", repo.base), 20);
    parent = step(shared, parent, fmt::format("repo-{} apt-get install", p.repo), repo.apt_seconds);
    parent = step(shared, parent, fmt::format("repo-{} copy lockfile {}", p.repo, deps), 2);
    parent = step(shared, parent, fmt::format("repo-{} install deps {}", p.repo, deps), repo.deps_seconds);
    parent = step(shared, parent, fmt::format("repo-{} setup", p.repo), repo.setup_seconds);
    parent = step(shared, parent, fmt::format("repo-{} copy source {}", p.repo, commit), 3);
    parent = step(shared, parent, fmt::format("repo-{} build {}", p.repo, commit),
                  repo.build_seconds * uniform(0.8, 1.2));
    // A push starts a pipeline: jobs that share that chain and differ in
    // their last step, submitted together.
    static constexpr const char* kFinal[] = {"unit tests", "integration tests", "lint"};
    for (int k = 0; k < o.jobs_per_push && n < o.jobs; ++k) {
      TraceJob job{.id = fmt::format("j{:05}", n++), .submit = p.t, .client = p.client, .urgent = p.urgent};
      job.steps = shared;
      double seconds = k == 0   ? repo.test_seconds * uniform(0.8, 1.2)
                       : k == 1 ? repo.test_seconds * 1.5 * uniform(0.8, 1.2)
                                : uniform(20, 40);
      step(job.steps, parent, fmt::format("repo-{} {} {}", p.repo, kFinal[k % 3], commit), seconds);
      trace.jobs.push_back(std::move(job));
    }
  }
  return trace;
}

}  // namespace kiln::sim
