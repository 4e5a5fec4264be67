// kiln-sim's synthetic traces and its accounting on farms small enough to
// check by hand.
#include <sstream>

#include <gtest/gtest.h>

#include "bench/sim/simulator.h"
#include "bench/sim/synthetic_trace.h"

namespace kiln::sim {
namespace {

Result<Trace> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_trace(in, "t.jsonl");
}

// The format's own tests (parsing, errors, every field round-tripped) are
// common/trace/placement_trace_test.cc; this one round-trips a synthetic day.
TEST(Trace, WriteThenParseIsTheSameTrace) {
  Trace t = synthetic_trace({.repos = 3, .jobs = 30, .workers = 2});
  std::ostringstream out;
  write_trace(t, out);
  auto back = parse(out.str());
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->jobs.size(), t.jobs.size());
  for (std::size_t i = 0; i < t.jobs.size(); ++i) {
    EXPECT_EQ(back->jobs[i].id, t.jobs[i].id);
    EXPECT_EQ(back->jobs[i].submit, t.jobs[i].submit);
    ASSERT_EQ(back->jobs[i].steps.size(), t.jobs[i].steps.size());
    EXPECT_EQ(back->jobs[i].steps.back().id, t.jobs[i].steps.back().id);
  }
}

TEST(Trace, SyntheticPipelinesShareTheirCommitChain) {
  Trace t = synthetic_trace({.repos = 5, .jobs = 30, .jobs_per_push = 3, .workers = 2});
  ASSERT_EQ(t.jobs.size(), 30u);
  // A push's three jobs: same submit time, same chain but the last step.
  const TraceJob& a = t.jobs[0];
  const TraceJob& b = t.jobs[1];
  EXPECT_EQ(a.submit, b.submit);
  ASSERT_EQ(a.steps.size(), 8u);
  for (std::size_t i = 0; i + 1 < a.steps.size(); ++i) EXPECT_EQ(a.steps[i].id, b.steps[i].id);
  EXPECT_NE(a.steps.back().id, b.steps.back().id);
}

// One worker, one slot: the second job reuses the first one's chain.
TEST(Simulate, CountsColdAndCachedStepsAndWaits) {
  Trace t;
  t.workers.push_back({.name = "w1", .capacity = 1});
  t.jobs.push_back({.id = "a", .submit = 0, .steps = {{"base", 10}, {"deps", 100}, {"a", 5}}});
  t.jobs.push_back({.id = "b", .submit = 1, .steps = {{"base", 10}, {"deps", 100}, {"b", 7}}});
  for (const char* policy : {"kiln", "least-loaded"}) {
    auto r = simulate(t, policy, {}, {.cached_step_seconds = 0.5});
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->steps, 6u) << policy;
    EXPECT_EQ(r->cold_steps, 4u) << policy;                 // base, deps, a, b
    EXPECT_DOUBLE_EQ(r->build_seconds, 115 + 8) << policy;  // b: 0.5 + 0.5 + 7
    EXPECT_DOUBLE_EQ(r->wait_p99, 114) << policy;           // b waits from 1 to 115
    EXPECT_DOUBLE_EQ(r->makespan, 123) << policy;
    EXPECT_DOUBLE_EQ(r->util_max, 1.0) << policy;
  }
  SimResult bound = oracle_bound(t, {.cached_step_seconds = 0.5});
  EXPECT_EQ(bound.cold_steps, 4u);
}

// Two workers: kiln sends the second job to the worker that built the
// chain's slow step, least-loaded to the idle one (which rebuilds it).
TEST(Simulate, KilnFollowsTheCache) {
  Trace t;
  t.workers.push_back({.name = "w1", .capacity = 1});
  t.workers.push_back({.name = "w2", .capacity = 1});
  t.jobs.push_back({.id = "x", .submit = 0, .steps = {{"other", 1}}});  // to w1, first in line
  t.jobs.push_back({.id = "a", .submit = 0, .steps = {{"base", 10}, {"deps", 100}, {"a", 5}}});  // w2
  t.jobs.push_back({.id = "b", .submit = 200, .steps = {{"base", 10}, {"deps", 100}, {"b", 7}}});
  auto kiln = simulate(t, "kiln", {}, {});
  auto ll = simulate(t, "least-loaded", {}, {});
  ASSERT_TRUE(kiln.has_value() && ll.has_value());
  EXPECT_EQ(kiln->cold_steps, 5u);  // other, base, deps, a, b
  EXPECT_EQ(ll->cold_steps, 7u);    // and base, deps again on w1
}

TEST(Simulate, UnknownPolicyIsAnError) {
  Trace t;
  t.workers.push_back({.name = "w1"});
  auto r = simulate(t, "psychic", {}, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::sim
