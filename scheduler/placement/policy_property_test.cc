// Properties every policy keeps, on random histories (seeded, deterministic):
// capacity is never exceeded, assignments honour pool, labels and accepting,
// every added job is assigned exactly once (unless removed), and queued()
// counts what is left.
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

class PolicyProperties : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyProperties, CapacityLabelsAndExactlyOnce) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    auto made = make_policy(GetParam(), PolicyOptions{.low_disk_bytes = 100, .seed = seed});
    ASSERT_TRUE(made.has_value());
    std::unique_ptr<Policy> policy = std::move(*made);
    std::mt19937_64 rng(seed);
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

    std::map<std::string, PlacementWorker> workers;
    for (int i = 0; i < 6; ++i) {
      PlacementWorker w{.name = "w" + std::to_string(i),
                        .pool = i < 4 ? "linux" : "mac",
                        .capacity = static_cast<std::uint32_t>(1 + i % 3),
                        .disk_free_bytes = 1000};
      if (i % 2 == 0) w.labels.push_back("fast=yes");
      workers[w.name] = w;
      policy->update_worker(w, 0);
    }
    std::map<std::string, PlacementJob> jobs;          // added, not yet ended or removed
    std::map<std::string, std::string> running;        // job -> worker
    std::map<std::string, std::size_t> running_count;  // worker -> jobs
    std::set<std::string> assigned_ever, removed;
    int next_job = 0;
    double now = 0;

    auto check_assign = [&]() {
      for (const Assignment& a : policy->assign(now)) {
        ASSERT_TRUE(jobs.contains(a.job_id)) << a.job_id;
        ASSERT_TRUE(assigned_ever.insert(a.job_id).second) << a.job_id << " assigned twice";
        const PlacementWorker& w = workers.at(a.worker);
        const PlacementJob& j = jobs.at(a.job_id);
        EXPECT_EQ(w.pool, j.pool);
        EXPECT_TRUE(w.accepting);
        EXPECT_GE(w.disk_free_bytes, 100u);
        for (const std::string& l : j.labels) {
          EXPECT_NE(std::find(w.labels.begin(), w.labels.end(), l), w.labels.end());
        }
        running[a.job_id] = a.worker;
        ASSERT_LE(++running_count[a.worker], w.capacity) << a.worker << " over capacity";
      }
    };

    for (int step = 0; step < 3000; ++step) {
      now += 1;
      switch (pick(8)) {
        case 0:
        case 1:
        case 2: {  // a job with a chain from a small shared universe
          PlacementJob j{.id = "j" + std::to_string(next_job++),
                         .pool = pick(4) == 0 ? "mac" : "linux",
                         .client = "c" + std::to_string(pick(3)),
                         .urgent = pick(5) == 0,
                         .submitted_at = now};
          if (pick(6) == 0) j.labels.push_back("fast=yes");
          std::size_t len = pick(5);
          std::string base = "base" + std::to_string(pick(2));
          for (std::size_t s = 0; s < len; ++s)
            j.steps.push_back(base + "/" + std::to_string(pick(3)) + "/" + std::to_string(s));
          jobs[j.id] = j;
          policy->add_job(j, now);
          break;
        }
        case 3:
        case 4: {  // a running job ends
          if (running.empty()) break;
          auto it = std::next(running.begin(), static_cast<std::ptrdiff_t>(pick(running.size())));
          std::string id = it->first, w = it->second;
          if (pick(3) == 0) {
            policy->job_released(w, id, now);
          } else {
            std::vector<StepReport> reports;
            for (const std::string& s : jobs.at(id).steps)
              reports.push_back({s, pick(2) == 0, 1.0 + static_cast<double>(pick(50))});
            policy->job_finished(w, id, reports, now);
          }
          --running_count[w];
          running.erase(it);
          jobs.erase(id);
          break;
        }
        case 5: {  // a worker pauses, resumes, or runs low on disk
          auto it = std::next(workers.begin(), static_cast<std::ptrdiff_t>(pick(workers.size())));
          PlacementWorker& w = it->second;
          if (pick(2) == 0)
            w.accepting = !w.accepting;
          else
            w.disk_free_bytes = w.disk_free_bytes == 1000 ? 50 : 1000;
          policy->update_worker(w, now);
          break;
        }
        case 6: {  // a queued job is cancelled
          for (auto& [id, j] : jobs) {
            if (!assigned_ever.contains(id) && pick(4) == 0) {
              policy->remove_job(id);
              removed.insert(id);
              jobs.erase(id);
              break;
            }
          }
          break;
        }
        case 7: {  // inventory: a prune
          auto it = std::next(workers.begin(), static_cast<std::ptrdiff_t>(pick(workers.size())));
          policy->inventory(it->first, false, {}, {"base0/1/0", "base1/2/1"});
          break;
        }
      }
      check_assign();
      if (HasFatalFailure()) return;
      std::size_t waiting = 0;
      for (const auto& [id, j] : jobs) waiting += !assigned_ever.contains(id);
      ASSERT_EQ(policy->queued(), waiting) << "step " << step;
    }
    // Drain: every worker accepts and every job ends; all jobs are assigned.
    for (auto& [name, w] : workers) {
      w.accepting = true;
      w.disk_free_bytes = 1000;
      policy->update_worker(w, now);
    }
    for (int round = 0; round < 2000 && !jobs.empty(); ++round) {
      now += 1;
      check_assign();
      if (HasFatalFailure()) return;
      for (auto it = running.begin(); it != running.end();) {
        policy->job_finished(it->second, it->first, {}, now);
        --running_count[it->second];
        jobs.erase(it->first);
        it = running.erase(it);
      }
    }
    // Jobs no worker can take (labels a pool lacks) stay queued; no others.
    for (const auto& [id, j] : jobs) {
      bool takeable = false;
      for (const auto& [name, w] : workers) {
        bool labels = std::all_of(j.labels.begin(), j.labels.end(), [&](const std::string& l) {
          return std::find(w.labels.begin(), w.labels.end(), l) != w.labels.end();
        });
        takeable |= w.pool == j.pool && labels;
      }
      EXPECT_FALSE(takeable) << id << " was never assigned";
    }
    EXPECT_EQ(policy->queued(), jobs.size());
  }
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyProperties,
                         ::testing::Values("kiln", "least-loaded", "random", "ocluster-hint"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(MakePolicy, KnowsEveryNameAndExplainsUnknownOnes) {
  for (const char* name : {"kiln", "least-loaded", "random", "ocluster-hint"}) {
    auto p = make_policy(name);
    ASSERT_TRUE(p.has_value()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
  EXPECT_EQ(std::string(kDefaultPolicy), "kiln");
  auto bad = make_policy("fastest");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("kiln (the default), least-loaded, random, ocluster-hint"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln::placement
