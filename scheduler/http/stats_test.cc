#include "scheduler/http/stats.h"

#include <gtest/gtest.h>

#include "scheduler/http/testing/sample_farm.h"

namespace kiln::http {
namespace {

const PoolSummary& find_pool(const FarmStats& stats, const std::string& name) {
  for (const PoolSummary& p : stats.pools) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no pool " << name;
  static PoolSummary none;
  return none;
}

const WorkerSummary& find_worker(const FarmStats& stats, const std::string& name) {
  for (const WorkerSummary& w : stats.workers) {
    if (w.info->name == name) return w;
  }
  ADD_FAILURE() << "no worker " << name;
  static WorkerSummary none;
  return none;
}

const ClientSummary& find_client(const FarmStats& stats, const std::string& name) {
  for (const ClientSummary& c : stats.clients) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no client " << name;
  static ClientSummary none;
  return none;
}

proto::WorkerInfo active_worker(std::string name, std::string pool, std::uint32_t capacity) {
  proto::WorkerInfo w;
  w.name = std::move(name);
  w.pool = std::move(pool);
  w.state = "active";
  w.capacity = capacity;
  w.connected = true;
  return w;
}

proto::JobInfo job(std::string id, std::string state, std::string pool, std::string client = "ci") {
  proto::JobInfo j;
  j.id = std::move(id);
  j.state = std::move(state);
  j.pool = std::move(pool);
  j.client = std::move(client);
  return j;
}

TEST(WorkersWanted, CeilingOfBacklogOverTargetTimesCapacity) {
  EXPECT_EQ(workers_wanted(1000, 300, 1, true), 4u);  // 3.33 -> 4
  EXPECT_EQ(workers_wanted(1200, 300, 2, true), 2u);  // exactly 2
  EXPECT_EQ(workers_wanted(1201, 300, 2, true), 3u);
}

TEST(WorkersWanted, AtLeastOneWhileThereIsWorkAndZeroWithout) {
  EXPECT_EQ(workers_wanted(10, 300, 4, true), 1u);
  EXPECT_EQ(workers_wanted(0, 300, 4, true), 1u);
  EXPECT_EQ(workers_wanted(0, 300, 4, false), 0u);
}

TEST(WorkersWanted, ZeroTargetOrCapacityDoesNotDivideByZero) {
  EXPECT_EQ(workers_wanted(10, 0, 0, true), 10u);  // target and capacity floored at 1
}

TEST(HitRate, RatioAndUnknownBeforeAnyLookup) {
  EXPECT_FALSE(hit_rate(0, 0).has_value());
  EXPECT_DOUBLE_EQ(*hit_rate(3, 1), 0.75);
  EXPECT_DOUBLE_EQ(*hit_rate(0, 5), 0.0);
}

TEST(ComputeStats, SampleFarmPoolFigures) {
  auto view = testing::sample_farm();
  FarmStats stats = compute_stats(*view);
  ASSERT_EQ(stats.pools.size(), 2u);
  EXPECT_EQ(stats.pools[0].name, "linux-arm64");  // sorted by name

  const PoolSummary& x86 = find_pool(stats, "linux-x86_64");
  EXPECT_EQ(x86.queued_urgent, 1u);
  EXPECT_EQ(x86.queued_normal, 1u);
  EXPECT_EQ(x86.running_jobs, 1u);
  // 900 (j105) + 120 (j106: the pool's mean, from j101) + 500 (j103: 600 expected, 100 elapsed).
  EXPECT_DOUBLE_EQ(x86.backlog_seconds, 1520);
  EXPECT_EQ(x86.workers_known, 3u);
  EXPECT_EQ(x86.workers_connected, 2u);
  EXPECT_EQ(x86.workers_active, 1u);
  EXPECT_EQ(x86.workers_paused, 1u);
  EXPECT_EQ(x86.workers_accepting, 1u);
  EXPECT_EQ(x86.capacity_slots, 2u);
  ASSERT_TRUE(x86.expected_wait_seconds.has_value());
  EXPECT_DOUBLE_EQ(*x86.expected_wait_seconds, 760);
  EXPECT_EQ(x86.workers_wanted, 3u);  // ceil(1520 / (300 * 2))
  ASSERT_TRUE(x86.cache_hit_rate.has_value());
  EXPECT_DOUBLE_EQ(*x86.cache_hit_rate, 120.0 / 160.0);
  ASSERT_EQ(x86.low_disk_warnings.size(), 1u);
  EXPECT_NE(x86.low_disk_warnings[0].find("builder-b has 2.0 GiB free, below the 5.0 GiB"), std::string::npos)
      << x86.low_disk_warnings[0];

  const PoolSummary& arm = find_pool(stats, "linux-arm64");
  EXPECT_DOUBLE_EQ(arm.target_wait_seconds, 120);
  EXPECT_DOUBLE_EQ(arm.backlog_seconds, 450);
  EXPECT_EQ(arm.workers_wanted, 4u);  // ceil(450 / 120)
  EXPECT_DOUBLE_EQ(*arm.cache_hit_rate, 0.0);
  EXPECT_TRUE(arm.low_disk_warnings.empty());
}

TEST(ComputeStats, SampleFarmWorkerHealth) {
  auto view = testing::sample_farm();
  FarmStats stats = compute_stats(*view);
  const WorkerSummary& a = find_worker(stats, "builder-a");
  EXPECT_EQ(a.health, "ok");
  EXPECT_TRUE(a.accepting);
  EXPECT_DOUBLE_EQ(*a.cache_hit_rate, 0.9);
  EXPECT_DOUBLE_EQ(*a.disk_free_ratio, 0.4);
  EXPECT_DOUBLE_EQ(a.heartbeat_age_seconds, 0.4);
  const WorkerSummary& b = find_worker(stats, "builder-b");
  EXPECT_EQ(b.health, "low-disk");
  EXPECT_TRUE(b.low_disk);
  EXPECT_FALSE(b.accepting);
  const WorkerSummary& old = find_worker(stats, "old-box");
  EXPECT_EQ(old.health, "disconnected");
  EXPECT_FALSE(old.low_disk);  // a disconnected worker's disk figure is stale
  EXPECT_FALSE(old.cache_hit_rate.has_value());
}

TEST(ComputeStats, StaleAndUnhealthyWorkers) {
  FarmView view;
  view.now_ms = 100'000;
  view.heartbeat_ms = 1000;
  view.workers = {active_worker("quiet", "p", 1), active_worker("sick", "p", 1)};
  view.workers[0].last_heartbeat_ms = 96'000;  // 4 s > 3 heartbeats
  view.workers[1].last_heartbeat_ms = 99'500;
  view.workers[1].stats.healthy = false;
  FarmStats stats = compute_stats(view);
  EXPECT_EQ(find_worker(stats, "quiet").health, "stale");
  EXPECT_TRUE(find_worker(stats, "quiet").accepting);  // until the lease runs out
  EXPECT_EQ(find_worker(stats, "sick").health, "unhealthy");
  EXPECT_FALSE(find_worker(stats, "sick").accepting);
}

TEST(ComputeStats, AWorkerThatReportsNoDiskIsNotLowOnDisk) {
  FarmView view;
  view.low_disk_threshold_bytes = 1 << 30;
  view.workers = {active_worker("fake", "p", 2)};  // disk_total_bytes 0: not reported
  FarmStats stats = compute_stats(view);
  EXPECT_FALSE(find_worker(stats, "fake").low_disk);
  EXPECT_TRUE(find_worker(stats, "fake").accepting);
  EXPECT_FALSE(find_worker(stats, "fake").disk_free_ratio.has_value());
  EXPECT_TRUE(find_pool(stats, "p").low_disk_warnings.empty());
}

TEST(ComputeStats, ClientSharesOfRunningJobs) {
  auto view = testing::sample_farm();
  FarmStats stats = compute_stats(*view);
  const ClientSummary& ci = find_client(stats, "ci-main");
  EXPECT_EQ(ci.submitted, 3u);  // j101, j103, j106 (no database counts given)
  EXPECT_EQ(ci.running, 1u);
  EXPECT_EQ(ci.waiting, 1u);
  EXPECT_DOUBLE_EQ(ci.share, 0.5);
  EXPECT_DOUBLE_EQ(find_client(stats, "release").share, 0.5);
  EXPECT_DOUBLE_EQ(find_client(stats, "alice").share, 0.0);
  EXPECT_EQ(find_client(stats, "alice").waiting, 1u);
}

TEST(ComputeStats, SharesCountAssignedJobsAndDatabaseSubmittedCountsWin) {
  FarmView view;
  view.jobs = {job("1", "assigned", "p", "a"), job("2", "running", "p", "a"), job("3", "running", "p", "b"),
               job("4", "queued", "p", "b")};
  view.jobs_submitted_by_client = {{"a", 40}, {"b", 7}, {"gone", 3}};
  FarmStats stats = compute_stats(view);
  EXPECT_NEAR(find_client(stats, "a").share, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(find_client(stats, "b").share, 1.0 / 3.0, 1e-12);
  EXPECT_EQ(find_client(stats, "a").submitted, 40u);
  EXPECT_EQ(find_client(stats, "gone").submitted, 3u);
  EXPECT_EQ(find_client(stats, "gone").running, 0u);
}

TEST(ComputeStats, NoAcceptingWorkerMeansUnknownWaitButWorkersWanted) {
  FarmView view;
  view.default_job_seconds = 600;
  view.jobs = {job("1", "queued", "empty-pool")};
  FarmStats stats = compute_stats(view);
  const PoolSummary& p = find_pool(stats, "empty-pool");
  EXPECT_DOUBLE_EQ(p.backlog_seconds, 600);  // default_job_seconds
  EXPECT_FALSE(p.expected_wait_seconds.has_value());
  EXPECT_EQ(p.workers_wanted, 2u);  // ceil(600 / 300) with default target 300 s and capacity 1
  EXPECT_DOUBLE_EQ(p.target_wait_seconds, 300);
}

TEST(ComputeStats, IdlePoolWantsNoWorkerAndWaitsZero) {
  FarmView view;
  view.workers = {active_worker("w", "idle", 4)};
  FarmStats stats = compute_stats(view);
  const PoolSummary& p = find_pool(stats, "idle");
  EXPECT_EQ(p.workers_wanted, 0u);
  EXPECT_DOUBLE_EQ(*p.expected_wait_seconds, 0);
  EXPECT_EQ(p.capacity_slots, 4u);
}

TEST(ComputeStats, RunningJobPastItsEstimateAddsNoBacklog) {
  FarmView view;
  view.now_ms = 1'000'000;
  view.workers = {active_worker("w", "p", 1)};
  auto late = job("1", "running", "p");
  late.started_at_ms = 1'000'000 - 500'000;
  view.jobs = {late};
  view.expected_seconds = {{"1", 100}};
  FarmStats stats = compute_stats(view);
  EXPECT_DOUBLE_EQ(find_pool(stats, "p").backlog_seconds, 0);
  EXPECT_EQ(find_pool(stats, "p").workers_wanted, 1u);  // it still runs
}

TEST(ComputeStats, PoolMeanOfSucceededRunsIgnoresRecordsWithoutADuration) {
  FarmView view;
  view.default_job_seconds = 60;
  auto measured = job("1", "succeeded", "p");
  measured.started_at_ms = 10'000;
  measured.finished_at_ms = 50'000;  // 40 s
  auto unmeasured = job("2", "succeeded", "p");
  unmeasured.started_at_ms = 70'000;
  unmeasured.finished_at_ms = 70'000;
  auto failed = job("3", "failed", "p");
  failed.started_at_ms = 10'000;
  failed.finished_at_ms = 11'000;
  view.jobs = {measured, unmeasured, failed, job("4", "queued", "p")};
  EXPECT_DOUBLE_EQ(find_pool(compute_stats(view), "p").backlog_seconds, 40);
}

TEST(ComputeStats, JobsByStatePrefersDatabaseCounts) {
  FarmView view;
  view.jobs = {job("1", "queued", "p"), job("2", "failed", "p"), job("3", "failed", "p")};
  view.jobs_total_by_state = {{"failed", 50}};
  FarmStats stats = compute_stats(view);
  EXPECT_EQ(stats.jobs_by_state.at("failed"), 50u);
  EXPECT_EQ(stats.jobs_by_state.at("queued"), 1u);  // counted from the view
  EXPECT_EQ(stats.jobs_by_state.at("cancelled"), 0u);
  EXPECT_EQ(stats.jobs_by_state.size(), 6u);
}

}  // namespace
}  // namespace kiln::http
