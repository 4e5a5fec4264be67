#include "scheduler/http/stats_history.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace kiln::http {
namespace {

PoolCounters counters_with(std::initializer_list<double> waits, std::uint64_t started,
                           std::uint64_t finished) {
  PoolCounters c;
  for (double w : waits) c.add_wait(w);
  c.jobs_started = started;
  c.jobs_finished = finished;
  return c;
}

TEST(WaitQuantile, InterpolatesWithinTheBucketOfTheRank) {
  PoolCounters none;
  EXPECT_EQ(wait_quantile(none, none, 0.95), std::nullopt);
  // 100 waits: 90 of 2 s (bucket 1-5 s) and 10 of 100 s (bucket 60-120 s).
  PoolCounters after;
  for (int i = 0; i < 90; ++i) after.add_wait(2);
  for (int i = 0; i < 10; ++i) after.add_wait(100);
  auto p95 = wait_quantile(none, after, 0.95);
  ASSERT_TRUE(p95);
  // Rank 95 is the 5th of the 10 waits in (60, 120]: 60 + 60 * 5/10.
  EXPECT_DOUBLE_EQ(*p95, 90.0);
  auto p50 = wait_quantile(none, after, 0.5);
  ASSERT_TRUE(p50);
  EXPECT_GT(*p50, 1.0);
  EXPECT_LE(*p50, 5.0);
  // Only what happened between the two readings counts.
  PoolCounters later = after;
  for (int i = 0; i < 10; ++i) later.add_wait(0.5);
  EXPECT_LE(*wait_quantile(after, later, 0.95), 1.0);
  // Beyond the last bucket: at least the last bound.
  PoolCounters huge;
  huge.add_wait(1e6);
  EXPECT_EQ(*wait_quantile(none, huge, 0.95), kQueueWaitBucketsSeconds.back());
}

FarmView view_at(std::int64_t now_ms, PoolCounters counters, std::uint64_t hits, std::uint64_t misses) {
  FarmView v;
  v.now_ms = now_ms;
  v.workers.push_back({.name = "w1",
                       .pool = "p",
                       .state = "active",
                       .capacity = 2,
                       .stats = {.disk_free_bytes = 5000,
                                 .disk_total_bytes = 10000,
                                 .cache_hits = hits,
                                 .cache_misses = misses},
                       .connected = true});
  v.pool_counters["p"] = counters;
  return v;
}

TEST(StatsHistory, PointsCarryRatesOverTheIntervalAndAreBounded) {
  StatsHistory history(std::chrono::seconds(60), 3);
  const std::int64_t t0 = 1'800'000'000'000;
  FarmView first = view_at(t0, counters_with({}, 0, 0), 10, 10);
  EXPECT_FALSE(history.record(first, compute_stats(first)));  // the starting readings
  FarmView early = view_at(t0 + 30'000, counters_with({3}, 1, 0), 10, 10);
  EXPECT_FALSE(history.due(early.now_ms));
  FarmView second = view_at(t0 + 120'000, counters_with({3, 3, 3, 3}, 4, 2), 16, 12);
  ASSERT_TRUE(history.due(second.now_ms));
  EXPECT_TRUE(history.record(second, compute_stats(second)));
  auto points = history.points();
  ASSERT_EQ(points.size(), 1u);
  ASSERT_EQ(points[0].pools.size(), 1u);
  const HistoryPool& p = points[0].pools[0];
  EXPECT_EQ(p.name, "p");
  EXPECT_DOUBLE_EQ(p.started_per_minute, 2.0);   // 4 in 2 minutes
  EXPECT_DOUBLE_EQ(p.finished_per_minute, 1.0);  // 2 in 2 minutes
  ASSERT_TRUE(p.wait_p95_seconds);
  EXPECT_GT(*p.wait_p95_seconds, 1.0);
  EXPECT_LE(*p.wait_p95_seconds, 5.0);
  ASSERT_TRUE(p.cache_hit_rate);
  EXPECT_DOUBLE_EQ(*p.cache_hit_rate, 0.75);  // 6 hits, 2 misses in the interval
  EXPECT_EQ(p.workers_connected, 1u);
  EXPECT_EQ(points[0].disk_free_bytes, 5000u);
  // Bounded: the oldest points go.
  for (int i = 2; i <= 6; ++i) {
    FarmView v = view_at(t0 + 120'000 * i, counters_with({3, 3, 3, 3}, 4, 2), 16, 12);
    history.record(v, compute_stats(v));
  }
  EXPECT_EQ(history.points().size(), 3u);
  EXPECT_EQ(history.points().back().time_ms, t0 + 720'000);
  // No job started and no lookup since: no p95, no hit rate.
  EXPECT_EQ(history.points().back().pools[0].wait_p95_seconds, std::nullopt);
  EXPECT_EQ(history.points().back().pools[0].cache_hit_rate, std::nullopt);
  auto doc = nlohmann::json::parse(history.json());
  EXPECT_EQ(doc["interval_seconds"], 60);
  EXPECT_EQ(doc["points"].size(), 3u);
  EXPECT_TRUE(doc["points"][2]["pools"][0]["wait_p95_seconds"].is_null());
}

}  // namespace
}  // namespace kiln::http
