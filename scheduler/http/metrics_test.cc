#include "scheduler/http/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "scheduler/http/testing/sample_farm.h"

namespace kiln::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string sample_metrics() {
  auto view = testing::sample_farm();
  return render_metrics(*view, compute_stats(*view));
}

TEST(Metrics, EveryFamilyHasHelpAndTypeOnce) {
  std::string text = sample_metrics();
  std::vector<std::string> names = metric_family_names();
  ASSERT_GT(names.size(), 20u);
  std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size()) << "a family is written twice";
  for (const std::string& name : names) {
    EXPECT_THAT(text, HasSubstr("# HELP " + name + " ")) << name;
    EXPECT_THAT(text, HasSubstr("# TYPE " + name + " ")) << name;
    EXPECT_EQ(name.rfind("kiln_", 0), 0u) << name;
  }
}

TEST(Metrics, CountersEndInTotalAndGaugesDoNot) {
  std::string text = sample_metrics();
  EXPECT_THAT(text, HasSubstr("# TYPE kiln_worker_cache_hits_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE kiln_worker_cache_misses_total counter\n"));
  for (const std::string& name : metric_family_names()) {
    bool counter = text.find("# TYPE " + name + " counter\n") != std::string::npos;
    EXPECT_EQ(counter, name.ends_with("_total")) << name;
  }
}

TEST(Metrics, SampleFarmValues) {
  std::string text = sample_metrics();
  EXPECT_THAT(text, HasSubstr("kiln_pool_workers_wanted{pool=\"linux-x86_64\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_workers_wanted{pool=\"linux-arm64\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_backlog_seconds{pool=\"linux-x86_64\"} 1520\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_expected_wait_seconds{pool=\"linux-x86_64\"} 760\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_queued_jobs{pool=\"linux-x86_64\",urgency=\"urgent\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_cache_hit_ratio{pool=\"linux-x86_64\"} 0.75\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_low_disk_workers{pool=\"linux-x86_64\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("kiln_worker_disk_free_bytes{pool=\"linux-x86_64\",worker=\"builder-b\"} 2147483648\n"));
  EXPECT_THAT(text,
              HasSubstr("kiln_worker_cache_hit_ratio{pool=\"linux-x86_64\",worker=\"builder-a\"} 0.9\n"));
  EXPECT_THAT(text, HasSubstr("kiln_worker_low_disk{pool=\"linux-x86_64\",worker=\"builder-b\"} 1\n"));
  EXPECT_THAT(
      text, HasSubstr("kiln_worker_state{pool=\"linux-x86_64\",worker=\"builder-b\",state=\"paused\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kiln_worker_up{pool=\"linux-x86_64\",worker=\"old-box\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("kiln_jobs{state=\"succeeded\"} 1520\n"));
  EXPECT_THAT(text, HasSubstr("kiln_client_share_ratio{client=\"ci-main\"} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("kiln_client_jobs{client=\"alice\",state=\"waiting\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("kiln_scheduler_info{scheduler_id=\"sched-7f3a\",placement_policy=\"least-loaded\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kiln_scheduler_start_time_seconds 1795913600\n"));
  // A worker that never looked anything up has no hit ratio sample.
  EXPECT_THAT(text, Not(HasSubstr("kiln_worker_cache_hit_ratio{pool=\"linux-x86_64\",worker=\"old-box\"}")));
}

TEST(Metrics, NoSlotMeansInfiniteWaitAndNoLookupsMeansNaN) {
  FarmView view;
  proto::JobInfo job;
  job.id = "1";
  job.state = "queued";
  job.pool = "p";
  view.jobs = {job};
  std::string text = render_metrics(view, compute_stats(view));
  EXPECT_THAT(text, HasSubstr("kiln_pool_expected_wait_seconds{pool=\"p\"} +Inf\n"));
  EXPECT_THAT(text, HasSubstr("kiln_pool_cache_hit_ratio{pool=\"p\"} NaN\n"));
}

TEST(Metrics, LabelValuesAreEscaped) {
  FarmView view;
  proto::WorkerInfo worker;
  worker.name = "we\"ird\\name\nx";
  worker.pool = "p";
  worker.state = "active";
  worker.connected = true;
  view.workers = {worker};
  std::string text = render_metrics(view, compute_stats(view));
  EXPECT_THAT(text, HasSubstr("kiln_worker_up{pool=\"p\",worker=\"we\\\"ird\\\\name\\nx\"} 1\n"));
}

}  // namespace
}  // namespace kiln::http
