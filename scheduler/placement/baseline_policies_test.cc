// The simulator's baselines: "ocluster-hint" keeps OCluster's semantics
// (hints, per-worker queues bounded by the cold cost, hints that never
// expire), "random" is seeded and so deterministic.
#include <gtest/gtest.h>

#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

std::string assign(Policy& p, double now) {
  std::string out;
  for (const Assignment& a : p.assign(now)) out += (out.empty() ? "" : " ") + a.job_id + "->" + a.worker;
  return out;
}

PlacementJob job(const std::string& id, const std::string& repo, const std::string& commit) {
  // The hint is the chain's first non-base step: the repository's.
  return {.id = id,
          .pool = "linux",
          .client = "ci",
          .steps = {"base", repo + "-deps", commit},
          .estimate_seconds = 100};
}

TEST(OclusterHint, PrefersAWorkerThatRanTheHintWhileItsQueueIsShort) {
  auto p = make_ocluster_hint_policy();
  for (const char* w : {"w1", "w2"}) p->update_worker({.name = w, .pool = "linux", .capacity = 1}, 0);
  p->add_job(job("a1", "repo-a", "c1"), 0);
  EXPECT_EQ(assign(*p, 0), "a1->w1");
  // w1 is busy; a2 shares a1's hint: it queues on w1 (its queue is empty,
  // under a2's 100 s cold cost) rather than run cold on idle w2.
  p->add_job(job("a2", "repo-a", "c2"), 1);
  EXPECT_EQ(assign(*p, 1), "");
  EXPECT_EQ(p->dump(1),
            "ocluster-hint\n"
            "pool linux: queue [] hints 1\n"
            "  w1 1/1 workload 25 queue [a2]\n"
            "  w2 0/1 workload 0 queue []\n"
            "clients: linux/ci(1)+124s\n");
  // More of the same: w1's queued work (25 s each at the cached cost) stays
  // at most the 100 s cold cost for a3..a6; a7 goes to w2.
  for (int i = 3; i <= 7; ++i) p->add_job(job("a" + std::to_string(i), "repo-a", "c" + std::to_string(i)), 2);
  EXPECT_EQ(assign(*p, 2), "a7->w2");
}

TEST(OclusterHint, HintsNeverExpire) {
  auto p = make_ocluster_hint_policy();
  for (const char* w : {"w1", "w2"}) p->update_worker({.name = w, .pool = "linux", .capacity = 1}, 0);
  p->add_job(job("x1", "repo-x", "c1"), 0);
  p->add_job(job("a1", "repo-a", "c1"), 0);
  EXPECT_EQ(assign(*p, 0), "x1->w1 a1->w2");
  p->job_finished("w1", "x1", {}, 1);
  p->job_finished("w2", "a1", {}, 2);
  // w2 pruned everything; ocluster-hint knows no inventory and still sends
  // repo-a's next job there, though w1 has been free longer.
  p->inventory("w2", true, {}, {});
  p->add_job(job("a2", "repo-a", "c2"), 3);
  EXPECT_EQ(assign(*p, 3), "a2->w2");
}

TEST(OclusterHint, UrgentJobsGoFirst) {
  auto p = make_ocluster_hint_policy();
  p->update_worker({.name = "w1", .pool = "linux", .capacity = 1}, 0);
  p->add_job(job("hold", "r", "0"), 0);
  EXPECT_EQ(assign(*p, 0), "hold->w1");
  p->add_job(job("batch", "x", "1"), 1);
  PlacementJob u = job("urgent", "y", "2");
  u.urgent = true;
  p->add_job(u, 5000);
  p->job_finished("w1", "hold", {}, 5001);
  EXPECT_EQ(assign(*p, 5001), "urgent->w1");
}

TEST(RandomPolicy, SameSeedSameChoices) {
  auto run = [](std::uint64_t seed) {
    auto p = make_random_policy({.seed = seed});
    for (int w = 0; w < 10; ++w) p->update_worker({.name = "w" + std::to_string(w), .pool = "linux"}, 0);
    for (int j = 0; j < 10; ++j) p->add_job({.id = "j" + std::to_string(j), .pool = "linux"}, 0);
    return assign(*p, 0);
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

}  // namespace
}  // namespace kiln::placement
