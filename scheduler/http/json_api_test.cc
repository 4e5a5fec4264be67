#include "scheduler/http/json_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/proto/farm_json.h"
#include "scheduler/http/testing/sample_farm.h"

namespace kiln::http {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(JsonApi, PoolsCarryTheRecommendationAndWarnings) {
  auto view = testing::sample_farm();
  json doc = json::parse(pools_json(compute_stats(*view)));
  ASSERT_EQ(doc["pools"].size(), 2u);
  const json& x86 = doc["pools"][1];
  EXPECT_EQ(x86["name"], "linux-x86_64");
  EXPECT_EQ(x86["workers_wanted"], 3);
  EXPECT_EQ(x86["queued"]["urgent"], 1);
  EXPECT_EQ(x86["queued"]["total"], 2);
  EXPECT_DOUBLE_EQ(x86["expected_wait_seconds"].get<double>(), 760);
  EXPECT_EQ(x86["workers"]["accepting"], 1);
  ASSERT_EQ(x86["low_disk_warnings"].size(), 1u);
  EXPECT_THAT(x86["low_disk_warnings"][0].get<std::string>(), HasSubstr("builder-b"));
}

TEST(JsonApi, UnknownFiguresAreNull) {
  FarmView view;
  proto::JobInfo job;
  job.id = "1";
  job.state = "queued";
  job.pool = "p";
  view.jobs = {job};
  json doc = json::parse(pools_json(compute_stats(view)));
  EXPECT_TRUE(doc["pools"][0]["expected_wait_seconds"].is_null());
  EXPECT_TRUE(doc["pools"][0]["cache_hit_rate"].is_null());
}

TEST(JsonApi, WorkersWithDerivedHealth) {
  auto view = testing::sample_farm();
  json doc = json::parse(workers_json(compute_stats(*view)));
  ASSERT_EQ(doc["workers"].size(), 4u);
  EXPECT_EQ(doc["workers"][1]["name"], "builder-b");
  EXPECT_EQ(doc["workers"][1]["health"], "low-disk");
  EXPECT_EQ(doc["workers"][1]["accepting"], false);
  EXPECT_EQ(doc["workers"][0]["running"], json::array({"j103"}));
  EXPECT_DOUBLE_EQ(doc["workers"][0]["cache_hit_rate"].get<double>(), 0.9);
  EXPECT_TRUE(doc["workers"][2]["cache_hit_rate"].is_null());
}

TEST(JsonApi, JobsNewestFirstFilteredAndLimited) {
  auto view = testing::sample_farm();
  json all = json::parse(jobs_json(*view, {}));
  EXPECT_EQ(all["total"], 8);
  EXPECT_EQ(all["jobs"][0]["id"], "j108");  // submitted last
  EXPECT_EQ(all["jobs"][7]["id"], "j101");
  EXPECT_FALSE(all["jobs"][0].contains("spec"));
  EXPECT_FALSE(all["jobs"][0].contains("steps"));

  auto query = parse_jobs_query("queued,running", "2");
  ASSERT_TRUE(query.has_value());
  json some = json::parse(jobs_json(*view, *query));
  EXPECT_EQ(some["total"], 5);
  ASSERT_EQ(some["jobs"].size(), 2u);
  EXPECT_EQ(some["jobs"][0]["id"], "j107");
  EXPECT_EQ(some["jobs"][1]["id"], "j106");
  EXPECT_TRUE(some["jobs"][1]["expected_seconds"].is_null());
  EXPECT_DOUBLE_EQ(some["jobs"][0]["expected_seconds"].get<double>(), 300);
}

TEST(JsonApi, BadQueriesSayWhatIsValid) {
  auto state = parse_jobs_query("queued,sleeping", "");
  ASSERT_FALSE(state.has_value());
  EXPECT_EQ(state.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(state.error().message(), HasSubstr("'sleeping'"));
  EXPECT_THAT(state.error().message(), HasSubstr("succeeded"));
  auto limit = parse_jobs_query("", "ten");
  ASSERT_FALSE(limit.has_value());
  EXPECT_THAT(limit.error().message(), HasSubstr("?limit=ten"));
  auto defaults = parse_jobs_query("", "");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->limit, 100u);
  EXPECT_TRUE(defaults->states.empty());
}

TEST(JsonApi, JobDetailHasStepsAttemptsAndSpec) {
  auto view = testing::sample_farm();
  auto body = job_json(*view, "j101");
  ASSERT_TRUE(body.has_value());
  json doc = json::parse(*body);
  EXPECT_EQ(doc["job"]["state"], "succeeded");
  ASSERT_EQ(doc["job"]["steps"].size(), 2u);
  EXPECT_EQ(doc["job"]["steps"][0]["cached"], true);
  EXPECT_EQ(doc["job"]["attempts"][0]["worker"], "builder-a");
  EXPECT_THAT(doc["job"]["spec"].get<std::string>(), HasSubstr("(from busybox)"));
  EXPECT_TRUE(doc["job"]["labels"].is_array());
  EXPECT_TRUE(doc["job"]["secret_ids"].is_array());
  EXPECT_EQ(doc["job"]["cancel_requested"], false);
  EXPECT_FALSE(job_json(*view, "j999").has_value());
}

// The API's job and worker are the shared forms (what `kiln status --json`
// and `kiln admin workers --json` print) plus what only the scheduler knows.
TEST(JsonApi, JobsAndWorkersAreTheSharedFormsPlusTheSchedulersFigures) {
  auto view = testing::sample_farm();
  json listed = json::parse(jobs_json(*view, {}))["jobs"][0];
  const proto::JobInfo* j108 = find_job(*view, "j108");
  ASSERT_NE(j108, nullptr);
  json expected = proto::job_to_json(*j108, proto::JobJsonDetail::kList);
  expected["expected_seconds"] = listed["expected_seconds"];
  EXPECT_EQ(listed, expected);

  json detail = json::parse(*job_json(*view, "j101"))["job"];
  expected = proto::job_to_json(*find_job(*view, "j101"), proto::JobJsonDetail::kFull);
  expected["expected_seconds"] = nullptr;
  EXPECT_EQ(detail, expected);

  json worker = json::parse(workers_json(compute_stats(*view)))["workers"][1];
  expected = proto::worker_to_json(view->workers[1]);
  for (const char* derived :
       {"health", "accepting", "low_disk", "disk_free_ratio", "cache_hit_rate", "heartbeat_age_seconds"}) {
    ASSERT_TRUE(worker.contains(derived)) << derived;
    expected[derived] = worker[derived];
  }
  EXPECT_EQ(worker, expected);
}

TEST(JsonApi, InvalidUtf8FromPeersIsReplacedNotThrown) {
  FarmView view;
  proto::JobInfo job;
  job.id = "1";
  job.state = "failed";
  job.error = "bad byte \xff here";
  view.jobs = {job};
  auto body = job_json(view, "1");
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(json::parse(*body)["job"]["error"], "bad byte \xEF\xBF\xBD here");
}

TEST(JsonApi, StatsSummariseEverything) {
  auto view = testing::sample_farm();
  json doc = json::parse(stats_json(*view, compute_stats(*view)));
  EXPECT_EQ(doc["scheduler"]["id"], "sched-7f3a");
  EXPECT_EQ(doc["jobs_by_state"]["failed"], 87);
  EXPECT_EQ(doc["totals"]["workers_wanted"], 7);
  EXPECT_EQ(doc["totals"]["queued_jobs"], 3);
  EXPECT_EQ(doc["totals"]["low_disk_workers"], 1);
  EXPECT_EQ(doc["pools"].size(), 2u);
  EXPECT_EQ(doc["workers"].size(), 4u);
  EXPECT_EQ(doc["clients"].size(), 3u);
}

TEST(JsonApi, ErrorDocument) {
  json doc = json::parse(error_json(Error(ErrorKind::kNotFound, "no job 'x'")));
  EXPECT_EQ(doc["error"]["kind"], "not found");
  EXPECT_EQ(doc["error"]["message"], "no job 'x'");
}

}  // namespace
}  // namespace kiln::http
