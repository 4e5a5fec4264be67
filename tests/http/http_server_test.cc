// HttpServer over real sockets with the sample FarmView: every endpoint
// through an HTTP client, /metrics through promtool, the Grafana dashboard's
// metric names, and the dashboard page in headless Chromium. Outputs (each
// endpoint's body, the rendered DOM, a screenshot) are kept under
// ${CMAKE_BINARY_DIR}/test-output/http/ for docs/api.md and for looking at.
#include "scheduler/http/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "scheduler/http/metrics.h"
#include "scheduler/http/testing/sample_farm.h"
#include "tests/support/process.h"

namespace kiln::http {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

fs::path output_dir() {
  fs::path dir = fs::path(KILN_TEST_OUTPUT_DIR) / "http";
  fs::create_directories(dir);
  return dir;
}

void keep(const std::string& name, const std::string& content) {
  std::ofstream(output_dir() / name, std::ios::binary) << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The logs the fake scheduler serves: j103 and j104 are running (the
// dashboard follows the newest, j104), j101 has ended.
Result<proto::Log> fake_log(const std::string& job, std::uint64_t offset) {
  static const std::map<std::string, std::pair<std::string, std::string>> logs = {
      {"j103", {testing::kSampleRunningLog, "running"}},
      {"j104", {testing::kSampleRunningLog, "running"}},
      {"j101", {"step 1/2 cached\nstep 2/2 built in 119.5 s\n", "succeeded"}},
  };
  auto it = logs.find(job);
  if (it == logs.end()) return make_error(ErrorKind::kNotFound, "no job '" + job + "'");
  const auto& [text, state] = it->second;
  proto::Log log;
  log.job_id = job;
  log.offset = std::min<std::uint64_t>(offset, text.size());
  log.data = text.substr(log.offset);
  log.state = state;
  log.complete = state != "running";
  return log;
}

// An old job the view no longer holds, found by the scheduler's lookup.
Result<proto::JobInfo> fake_job_lookup(const std::string& id) {
  if (id == "j103") {  // in the view, without its spec
    proto::JobInfo job;
    job.id = id;
    job.state = "assigned";  // the database may lag the view: the view's state wins
    job.spec = "((from busybox) (run (shell \"make -j4\")))";
    return job;
  }
  if (id != "j42") return make_error(ErrorKind::kNotFound, "no job '" + id + "' in the scheduler's database");
  proto::JobInfo job;
  job.id = "j42";
  job.state = "succeeded";
  job.pool = "linux-x86_64";
  job.client = "ci-main";
  return job;
}

class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new HttpServer([] { return testing::sample_farm(); }, fake_log, fake_job_lookup);
    auto started = server_->start("127.0.0.1", 0);
    ASSERT_TRUE(started.has_value()) << started.error().to_string();
    ASSERT_GT(server_->bound_port(), 0);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static httplib::Result get(const std::string& path) {
    httplib::Client client("127.0.0.1", server_->bound_port());
    client.set_read_timeout(10, 0);
    return client.Get(path.c_str());
  }

  // GETs a JSON endpoint, keeps its body as an example, and parses it.
  static json get_json(const std::string& path, int expected_status, const std::string& example_name) {
    auto res = get(path);
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, expected_status) << path << ": " << res->body;
    EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("application/json")) << path;
    keep(example_name, res->body);
    return json::parse(res->body);
  }

  static std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(server_->bound_port()) + path;
  }

  static HttpServer* server_;
};
HttpServer* HttpServerTest::server_ = nullptr;

TEST_F(HttpServerTest, PoolsEndpoint) {
  json doc = get_json("/v1/pools", 200, "pools.json");
  ASSERT_EQ(doc["pools"].size(), 2u);
  EXPECT_EQ(doc["pools"][1]["name"], "linux-x86_64");
  EXPECT_EQ(doc["pools"][1]["workers_wanted"], 3);
  EXPECT_EQ(doc["pools"][0]["workers_wanted"], 4);
}

TEST_F(HttpServerTest, WorkersEndpoint) {
  json doc = get_json("/v1/workers", 200, "workers.json");
  ASSERT_EQ(doc["workers"].size(), 4u);
  std::set<std::string> names;
  for (const json& w : doc["workers"]) names.insert(w["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"builder-a", "builder-b", "old-box", "arm-1"}));
}

TEST_F(HttpServerTest, ClientsAndStatsEndpoints) {
  json clients = get_json("/v1/clients", 200, "clients.json");
  EXPECT_EQ(clients["clients"].size(), 3u);
  json stats = get_json("/v1/stats", 200, "stats.json");
  EXPECT_EQ(stats["scheduler"]["id"], "sched-7f3a");
  EXPECT_EQ(stats["totals"]["workers_wanted"], 7);
  EXPECT_EQ(stats["jobs_by_state"]["succeeded"], 1520);
}

TEST_F(HttpServerTest, JobsListWithStateAndLimit) {
  json all = get_json("/v1/jobs", 200, "jobs.json");
  EXPECT_EQ(all["total"], 8);
  json running = get_json("/v1/jobs?state=running&limit=1", 200, "jobs-running.json");
  EXPECT_EQ(running["total"], 2);
  ASSERT_EQ(running["jobs"].size(), 1u);
  EXPECT_EQ(running["jobs"][0]["id"], "j104");
  json bad = get_json("/v1/jobs?state=sleeping", 400, "jobs-bad-state.json");
  EXPECT_EQ(bad["error"]["kind"], "invalid argument");
  EXPECT_THAT(bad["error"]["message"].get<std::string>(), HasSubstr("sleeping"));
}

TEST_F(HttpServerTest, JobDetailFromTheViewFromTheLookupOr404) {
  json job = get_json("/v1/jobs/j101", 200, "job.json");
  EXPECT_EQ(job["job"]["steps"].size(), 2u);
  json old = get_json("/v1/jobs/j42", 200, "job-old.json");
  EXPECT_EQ(old["job"]["state"], "succeeded");
  json running = get_json("/v1/jobs/j103", 200, "job-running.json");
  EXPECT_EQ(running["job"]["state"], "running");
  EXPECT_THAT(running["job"]["spec"].get<std::string>(), HasSubstr("make -j4"));
  json missing = get_json("/v1/jobs/j999", 404, "job-missing.json");
  EXPECT_EQ(missing["error"]["kind"], "not found");
  EXPECT_THAT(missing["error"]["message"].get<std::string>(), HasSubstr("j999"));
}

TEST_F(HttpServerTest, LogByOffsetWithCompletionHeaders) {
  auto whole = get("/v1/jobs/j103/log");
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->status, 200);
  EXPECT_EQ(whole->body, testing::kSampleRunningLog);
  EXPECT_EQ(whole->get_header_value("X-Kiln-Log-Complete"), "false");
  EXPECT_EQ(whole->get_header_value("X-Kiln-Job-State"), "running");
  std::string next = whole->get_header_value("X-Kiln-Log-Next-Offset");
  EXPECT_EQ(next, std::to_string(std::string(testing::kSampleRunningLog).size()));
  std::string exchange = "HTTP/1.1 " + std::to_string(whole->status) + "\n";
  for (const auto& [key, value] : whole->headers) exchange += key + ": " + value + "\n";
  keep("log-j103.http", exchange + "\n" + whole->body);

  auto tail = get("/v1/jobs/j103/log?offset=10");
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->body, std::string(testing::kSampleRunningLog).substr(10));
  EXPECT_EQ(tail->get_header_value("X-Kiln-Log-Offset"), "10");

  auto ended = get("/v1/jobs/j101/log?offset=0");
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->get_header_value("X-Kiln-Log-Complete"), "true");

  json missing = get_json("/v1/jobs/nope/log", 404, "log-missing.json");
  EXPECT_THAT(missing["error"]["message"].get<std::string>(), HasSubstr("reading the log of job nope"));
  json bad = get_json("/v1/jobs/j103/log?offset=abc", 400, "log-bad-offset.json");
  EXPECT_THAT(bad["error"]["message"].get<std::string>(), HasSubstr("offset=abc"));
}

TEST_F(HttpServerTest, UnknownPathIsAJson404) {
  json doc = get_json("/v2/nothing", 404, "unknown-path.json");
  EXPECT_THAT(doc["error"]["message"].get<std::string>(), HasSubstr("/v2/nothing"));
}

TEST_F(HttpServerTest, MetricsPassPromtool) {
  auto res = get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(res->body, HasSubstr("kiln_pool_workers_wanted{pool=\"linux-x86_64\"} 3\n"));
  keep("metrics.txt", res->body);
  ASSERT_TRUE(fs::exists(KILN_PROMTOOL)) << KILN_PROMTOOL << " is missing: run scripts/install-deps";
  auto check = kiln::testing::run_process({KILN_PROMTOOL, "check", "metrics"}, res->body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // promtool prints lint problems (and nothing else) when there are any.
  EXPECT_EQ(check.out + check.err, "");
}

TEST_F(HttpServerTest, GrafanaDashboardUsesOnlyExposedMetrics) {
  auto res = get("/metrics");
  ASSERT_TRUE(res);
  std::set<std::string> exposed;
  std::regex type_line(R"(# TYPE (\S+) )");
  for (std::sregex_iterator it(res->body.begin(), res->body.end(), type_line), end; it != end; ++it) {
    exposed.insert((*it)[1]);
  }
  ASSERT_FALSE(exposed.empty());

  fs::path path = fs::path(kiln::testing::source_dir()) / "docs/grafana/kiln-dashboard.json";
  json dashboard = json::parse(read_file(path), nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << path << " is not valid JSON";
  EXPECT_FALSE(dashboard["title"].get<std::string>().empty());
  ASSERT_TRUE(dashboard["panels"].is_array());

  std::vector<std::string> expressions;
  std::function<void(const json&)> collect = [&](const json& node) {
    if (node.is_object()) {
      for (const auto& [key, value] : node.items()) {
        if ((key == "expr" || key == "query") && value.is_string())
          expressions.push_back(value.get<std::string>());
        collect(value);
      }
    } else if (node.is_array()) {
      for (const json& item : node) collect(item);
    }
  };
  collect(dashboard);
  ASSERT_GE(expressions.size(), 10u);

  std::regex metric_name(R"(\bkiln_[a-zA-Z0-9_]+)");
  std::set<std::string> used;
  for (const std::string& expr : expressions) {
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric_name), end; it != end; ++it)
      used.insert(it->str());
  }
  for (const std::string& name : used) {
    // A histogram's series are FAMILY_bucket, FAMILY_sum and FAMILY_count.
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (name.ends_with(suffix) && exposed.contains(name.substr(0, name.size() - std::strlen(suffix))))
        family = name.substr(0, name.size() - std::strlen(suffix));
    EXPECT_TRUE(exposed.contains(family)) << name << " is not in /metrics";
  }
  // The dashboard's history charts have their Grafana panels too.
  for (const char* series : {"kiln_pool_queued_jobs", "kiln_pool_jobs_started_total",
                             "kiln_pool_jobs_finished_total", "kiln_pool_queue_wait_seconds_bucket",
                             "kiln_pool_cache_hit_ratio", "kiln_worker_up", "kiln_worker_disk_free_bytes"})
    EXPECT_TRUE(used.contains(series)) << series << " has no panel";

  // Every panel expression must also be valid PromQL: promtool parses them
  // as recording rules (the label_values() template query is Grafana's, not PromQL).
  std::string rules = "groups:\n  - name: grafana-panels\n    rules:\n";
  int rule = 0;
  for (const std::string& expr : expressions) {
    if (expr.starts_with("label_values(")) continue;
    rules += "      - record: kiln:grafana_panel_" + std::to_string(rule++) +
             "\n        expr: " + json(expr).dump() + "\n";
  }
  ASSERT_GE(rule, 10);
  fs::path rules_file = output_dir() / "grafana-panels.rules.yml";
  keep(rules_file.filename(), rules);
  ASSERT_TRUE(fs::exists(KILN_PROMTOOL)) << KILN_PROMTOOL << " is missing: run scripts/install-deps";
  auto check = kiln::testing::run_process({KILN_PROMTOOL, "check", "rules", rules_file.string()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // The capacity recommendation is what the dashboard is for.
  EXPECT_TRUE(used.contains("kiln_pool_workers_wanted"));
  EXPECT_TRUE(used.contains("kiln_worker_disk_free_bytes"));
}

TEST_F(HttpServerTest, DashboardIsSelfContained) {
  auto res = get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(res->body, HasSubstr("<title>kiln farm</title>"));
  // Nothing from another host: no absolute URLs at all.
  EXPECT_THAT(res->body, Not(HasSubstr("http://")));
  EXPECT_THAT(res->body, Not(HasSubstr("https://")));
  EXPECT_THAT(res->body, Not(HasSubstr("src=\"//")));
  // And the browser is told to refuse any other host.
  std::string csp = res->get_header_value("Content-Security-Policy");
  EXPECT_THAT(csp, HasSubstr("default-src 'none'"));
  EXPECT_THAT(csp, HasSubstr("connect-src 'self'"));
}

std::vector<std::string> chromium_command(const std::string& user_data_dir) {
  return {KILN_TIMEOUT,
          "120",
          KILN_CHROMIUM,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + user_data_dir,
          "--virtual-time-budget=5000"};
}

TEST_F(HttpServerTest, DashboardRendersInHeadlessChromium) {
  ASSERT_TRUE(fs::exists(KILN_CHROMIUM)) << KILN_CHROMIUM << " is missing: run scripts/install-deps";
  char profile_template[] = "/tmp/kiln-chromium-XXXXXX";
  ASSERT_NE(::mkdtemp(profile_template), nullptr);
  std::string profile = profile_template;

  auto dump = chromium_command(profile);
  dump.push_back("--dump-dom");
  dump.push_back(url("/"));
  auto dom = kiln::testing::run_process(dump);
  keep("dashboard-dom.html", dom.out);
  EXPECT_EQ(dom.exit_code, 0) << dom.err;
  // What only the JavaScript can have put there, from the JSON API:
  for (const char* name : {"builder-a", "builder-b", "old-box", "arm-1", "linux-x86_64", "linux-arm64",
                           "j103", "j104", "j105", "j106", "j107", "ci-main", "release"}) {
    EXPECT_THAT(dom.out, HasSubstr(std::string(">") + name)) << name;
  }
  EXPECT_THAT(dom.out, HasSubstr("id=\"wanted-linux-x86_64\">3</span>"));
  EXPECT_THAT(dom.out, HasSubstr("id=\"wanted-linux-arm64\">4</span>"));
  EXPECT_THAT(dom.out, HasSubstr("builder-b has 2.0 GiB free"));  // the low-disk warning
  EXPECT_THAT(dom.out, HasSubstr("compiling kiln.cc"));           // the followed job's live log
  EXPECT_THAT(dom.out, HasSubstr("scheduler sched-7f3a"));
  EXPECT_THAT(dom.out, HasSubstr("id=\"status\" class=\"\">updated "));  // not an error
  EXPECT_THAT(dom.out, HasSubstr("id=\"log-title\">j104 (running)"));

  fs::path screenshot = output_dir() / "dashboard.png";
  fs::remove(screenshot);
  auto shot = chromium_command(profile);
  shot.push_back("--screenshot=" + screenshot.string());
  shot.push_back("--window-size=1280,900");
  shot.push_back(url("/"));
  auto shot_result = kiln::testing::run_process(shot);
  EXPECT_EQ(shot_result.exit_code, 0) << shot_result.err;
  std::string png = read_file(screenshot);
  ASSERT_GT(png.size(), 1000u) << "no screenshot at " << screenshot;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  fs::remove_all(profile);
}

TEST(HttpServer, NoViewYetIsA503) {
  HttpServer server([] { return std::shared_ptr<const FarmView>(); },
                    [](const std::string&, std::uint64_t) -> Result<proto::Log> { return proto::Log{}; });
  ASSERT_TRUE(server.start("127.0.0.1", 0).has_value());
  httplib::Client client("127.0.0.1", server.bound_port());
  auto res = client.Get("/v1/pools");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, HasSubstr("has not published"));
  server.stop();
  EXPECT_EQ(server.bound_port(), 0);
}

TEST(HttpServer, ATokenIsNeededForEveryRequestButThePageItself) {
  auto view = kiln::http::testing::sample_farm();
  const std::string token = "0123456789abcdef-token";
  HttpServer server([view] { return view; },
                    [](const std::string&, std::uint64_t) -> Result<proto::Log> { return proto::Log{}; },
                    nullptr, HttpAuth{.token = token});
  ASSERT_TRUE(server.start("127.0.0.1", 0).has_value());
  httplib::Client client("127.0.0.1", server.bound_port());
  for (const char* path : {"/metrics", "/v1/stats", "/v1/jobs", "/v1/workers", "/v1/jobs/j1/log"}) {
    auto none = client.Get(path);
    ASSERT_TRUE(none) << path;
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"kiln\"");
    EXPECT_THAT(none->body, HasSubstr("needs its token"));
    auto wrong = client.Get(path, {{"Authorization", "Bearer 0123456789abcdef-tokeX"}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
    EXPECT_THAT(wrong->body, HasSubstr("wrong HTTP token"));
    auto right = client.Get(path, {{"Authorization", "Bearer " + token}});
    ASSERT_TRUE(right);
    EXPECT_NE(right->status, 401) << path;
  }
  auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);  // static; it fetches its data with the token
  auto post = client.Post("/v1/stats", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);
}

TEST(HttpServer, PublicReadLeavesGetsOpenButNothingElse) {
  auto view = kiln::http::testing::sample_farm();
  HttpServer server([view] { return view; },
                    [](const std::string&, std::uint64_t) -> Result<proto::Log> { return proto::Log{}; },
                    nullptr, HttpAuth{.token = "0123456789abcdef-token", .public_read = true});
  ASSERT_TRUE(server.start("127.0.0.1", 0).has_value());
  httplib::Client client("127.0.0.1", server.bound_port());
  auto get = client.Get("/v1/stats");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  auto post = client.Post("/v1/stats", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);
}

TEST(HttpServer, PortInUseIsAnErrorNamingTheFlag) {
  auto view = [] { return testing::sample_farm(); };
  auto log = [](const std::string&, std::uint64_t) -> Result<proto::Log> { return proto::Log{}; };
  HttpServer first(view, log);
  ASSERT_TRUE(first.start("127.0.0.1", 0).has_value());
  HttpServer second(view, log);
  auto started = second.start("127.0.0.1", first.bound_port());
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(started.error().message(), HasSubstr(std::to_string(first.bound_port())));
  EXPECT_THAT(started.error().message(), HasSubstr("--http"));
}

TEST(HttpServer, StopRightAfterStartReturns) {
  HttpServer server([] { return testing::sample_farm(); },
                    [](const std::string&, std::uint64_t) -> Result<proto::Log> { return proto::Log{}; });
  ASSERT_TRUE(server.start("127.0.0.1", 0).has_value());
  server.stop();
  server.stop();  // idempotent
  EXPECT_EQ(server.bound_port(), 0);
}

}  // namespace
}  // namespace kiln::http
