// The scheduler's HTTP side against a real farm: kiln-scheduler with --http
// on a free port, two kiln-worker --fake-build workers of capacity 1 whose
// jobs last long enough to stay running, and six jobs (two running, four
// queued, one of them urgent). Then /metrics through `promtool check
// metrics`, the dashboard page in headless Chromium (DOM and a screenshot),
// and `kiln admin stats` with and without --json.
//
// promtool, chromium and timeout are looked up on PATH; a missing one fails
// the test (scripts/install-deps installs them). The screenshot goes to
// $KILN_TEST_OUTPUT_DIR/farm/dashboard.png (default /tmp/kiln-test-output).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/farm/raw_peers.h"
#include "tests/support/child.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPool = "linux-x86_64";
constexpr const char* kClientName = "dashboard-test";

// The first of `names` found as an executable on PATH, or "" when none is.
std::string find_on_path(const std::vector<std::string>& names) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    for (const std::string& name : names) {
      fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "";
}

fs::path output_dir() {
  const char* env = std::getenv("KILN_TEST_OUTPUT_DIR");
  fs::path dir = fs::path(env != nullptr && *env != '\0' ? env : "/tmp/kiln-test-output") / "farm";
  fs::create_directories(dir);
  return dir;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// A plain HTTP/1.1 GET with Connection: close, over a socket of its own (the
// farm tests do not link an HTTP client library). nullopt when nothing
// answers at 127.0.0.1:port.
std::optional<HttpReply> http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buffer[16384];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    raw.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  std::size_t end_of_head = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.") || end_of_head == std::string::npos) return std::nullopt;
  HttpReply reply;
  reply.head = raw.substr(0, end_of_head);
  reply.body = raw.substr(end_of_head + 4);
  reply.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  return reply;
}

class DashboardFarm : public ::testing::Test {
 protected:
  void SetUp() override {
    client_endpoint_ = "tcp://127.0.0.1:" + std::to_string(free_port());
    worker_endpoint_ = "tcp://127.0.0.1:" + std::to_string(free_port());
    http_port_ = free_port();
    std::vector<std::string> args{KILN_SCHEDULER_BINARY, "--state-dir", dir_.path() + "/scheduler",
                                  "--listen", client_endpoint_, "--listen-workers", worker_endpoint_,
                                  "--http", "127.0.0.1:" + std::to_string(http_port_), "--heartbeat-ms",
                                  "200",
                                  // Six jobs (30 s a step by default) against a 60 s target:
                                  // more workers are wanted than the two that accept.
                                  "--target-wait", "60"};
    args.insert(args.end(), extra_scheduler_args_.begin(), extra_scheduler_args_.end());
    scheduler_ = std::make_unique<Child>(args, dir_.path() + "/scheduler.log");
    ASSERT_TRUE(eventually([&] {
      auto c = proto::Client::connect(client_endpoint_, kClientName, 200ms);
      if (c) client_ = std::move(*c);
      return client_ != nullptr;
    })) << "kiln-scheduler did not come up:\n"
        << scheduler_->log();
    ASSERT_TRUE(eventually([&] { return http_get(http_port_, "/v1/stats").has_value(); }))
        << "kiln-scheduler's HTTP interface did not come up on port " << http_port_ << ":\n"
        << scheduler_->log();
  }

  // A fake-build worker of capacity 1 whose jobs last long enough to stay
  // running for the whole test (they are killed with the test).
  void start_worker(const std::string& name, const std::string& capacity = "1",
                    const std::string& fake_seconds = "60") {
    workers_.push_back(std::make_unique<Child>(
        std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", worker_endpoint_, "--name", name,
                                 "--capacity", capacity, "--fake-build", fake_seconds, "--state-dir",
                                 dir_.path() + "/" + name},
        dir_.path() + "/" + name + ".log"));
    ASSERT_TRUE(eventually([&] {
      auto list = client_->call<proto::Workers>(proto::ListWorkers{}, 2s);
      if (!list) return false;
      for (const auto& w : list->workers)
        if (w.name == name && w.connected) return true;
      return false;
    })) << name
        << " did not register:\n"
        << workers_.back()->log();
  }

  std::string submit(const std::string& spec_name, bool urgent) {
    auto submitted = client_->call<proto::Submitted>(
        proto::Submit{.job = {.spec = "((from busybox) (run (shell \"echo " + spec_name + "\")))",
                              .spec_name = spec_name,
                              .urgent = urgent}});
    EXPECT_TRUE(submitted) << submitted.error().to_string();
    return submitted ? submitted->job_id : "";
  }

  std::vector<std::string> job_ids(const std::string& state) {
    auto jobs = client_->call<proto::Jobs>(proto::ListJobs{.states = {state}, .limit = 100});
    std::vector<std::string> ids;
    if (jobs)
      for (const auto& job : jobs->jobs) ids.push_back(job.id);
    return ids;
  }

  Json stats() {
    auto reply = http_get(http_port_, "/v1/stats");
    if (!reply || reply->status != 200) return Json();
    return Json::parse(reply->body, nullptr, false);
  }

  // Two workers, two running jobs, then four queued (one urgent), as both the
  // database and the published HTTP view see them.
  void start_busy_farm() {
    start_worker("dash-w1");
    start_worker("dash-w2");
    for (const char* name : {"run-1.spec", "run-2.spec"}) submit(name, false);
    ASSERT_TRUE(eventually([&] { return job_ids("running").size() == 2; }))
        << "the first two jobs did not start:\n"
        << scheduler_->log();
    running_ = job_ids("running");
    for (const char* name : {"wait-1.spec", "wait-2.spec", "wait-3.spec"}) submit(name, false);
    submit("wait-urgent.spec", true);
    ASSERT_TRUE(eventually([&] {
      Json s = stats();
      return s.is_object() && s["pools"].size() == 1 && s["pools"][0]["queued"]["total"] == 4 &&
             s["pools"][0]["running_jobs"] == 2;
    })) << "/v1/stats never showed 4 queued and 2 running: "
        << stats().dump(2);
  }

  std::string http_address() const { return "127.0.0.1:" + std::to_string(http_port_); }

  std::vector<std::string> extra_scheduler_args_;  // set before SetUp
  TempDir dir_;
  std::string client_endpoint_;
  std::string worker_endpoint_;
  int http_port_ = 0;
  std::unique_ptr<Child> scheduler_;
  std::vector<std::unique_ptr<Child>> workers_;
  std::unique_ptr<proto::Client> client_;
  std::vector<std::string> running_;
};

TEST_F(DashboardFarm, MetricsPassPromtoolAndCountTheRealFarm) {
  ASSERT_NO_FATAL_FAILURE(start_busy_farm());
  std::vector<std::string> expected = {
      "kiln_jobs{state=\"running\"} 2",
      "kiln_jobs{state=\"queued\"} 4",
      "kiln_pool_queued_jobs{pool=\"linux-x86_64\",urgency=\"urgent\"} 1",
      "kiln_pool_queued_jobs{pool=\"linux-x86_64\",urgency=\"normal\"} 3",
      "kiln_pool_running_jobs{pool=\"linux-x86_64\"} 2",
      "kiln_client_jobs{client=\"dashboard-test\",state=\"running\"} 2",
  };
  for (const char* worker : {"dash-w1", "dash-w2"}) {
    std::string labels = std::string("{pool=\"linux-x86_64\",worker=\"") + worker + "\"}";
    expected.push_back("kiln_worker_up" + labels + " 1");
    expected.push_back("kiln_worker_capacity_jobs" + labels + " 1");
    // What the worker itself reports: it arrives with the next heartbeat
    // after the job started, so the scrape below waits for it.
    expected.push_back("kiln_worker_running_jobs" + labels + " 1");
  }
  auto has_line = [](const std::string& body, const std::string& line) {
    return body.find("\n" + line + "\n") != std::string::npos;
  };
  std::optional<HttpReply> metrics;
  eventually([&] {
    metrics = http_get(http_port_, "/metrics");
    return metrics && std::all_of(expected.begin(), expected.end(),
                                  [&](const std::string& line) { return has_line(metrics->body, line); });
  });
  ASSERT_TRUE(metrics);
  const fs::path kept = output_dir() / "metrics.txt";
  std::ofstream(kept, std::ios::binary) << metrics->body;
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->head, HasSubstr("text/plain; version=0.0.4"));
  const std::string& body = metrics->body;
  for (const std::string& line : expected) EXPECT_TRUE(has_line(body, line)) << line << " is not in " << kept;

  std::string promtool = find_on_path({"promtool"});
  ASSERT_FALSE(promtool.empty()) << "promtool is not on PATH: run scripts/install-deps";
  auto check = run_process({promtool, "check", "metrics"}, body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // promtool prints lint problems, and nothing else, when there are any.
  EXPECT_EQ(check.out + check.err, "");
}

std::vector<std::string> chromium_command(const std::string& chromium, const std::string& timeout,
                                          const std::string& profile) {
  return {timeout,
          "60",
          chromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + profile,
          "--virtual-time-budget=5000"};
}

TEST_F(DashboardFarm, DashboardShowsTheRealFarmInHeadlessChromium) {
  std::string chromium = find_on_path({"chromium", "chromium-browser"});
  std::string timeout = find_on_path({"timeout"});
  ASSERT_FALSE(chromium.empty()) << "chromium is not on PATH: run scripts/install-deps";
  ASSERT_FALSE(timeout.empty()) << "timeout (coreutils) is not on PATH";
  ASSERT_NO_FATAL_FAILURE(start_busy_farm());
  Json before = stats();
  ASSERT_TRUE(before.is_object());
  const std::string profile = dir_.path() + "/chromium";
  const std::string url = "http://" + http_address() + "/";

  auto dump = chromium_command(chromium, timeout, profile);
  dump.insert(dump.end(), {"--dump-dom", url});
  auto dom = run_process(dump);
  Json after = stats();
  std::ofstream(output_dir() / "dashboard-dom.html", std::ios::binary) << dom.out;
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  // Only the page's script, reading the JSON API, can have put these there.
  for (const char* name : {"dash-w1", "dash-w2", kPool, kClientName})
    EXPECT_THAT(dom.out, HasSubstr(std::string(">") + name)) << name;
  ASSERT_EQ(running_.size(), 2u);
  for (const std::string& id : running_) EXPECT_THAT(dom.out, HasSubstr(">" + id)) << id;
  // The log pane follows a running job live: the fake build's first line.
  EXPECT_THAT(dom.out, ::testing::ContainsRegex("fake build of job j[0-9]+ on dash-w[12]: running for 60 s"));
  // The workers-wanted figure is the one the API computes (the backlog
  // shrinks as the running jobs age, so either reading is right).
  std::smatch wanted;
  ASSERT_TRUE(std::regex_search(dom.out, wanted, std::regex(R"(id="wanted-linux-x86_64">(\d+)</span>)")))
      << "no workers-wanted figure for the pool in the DOM";
  std::set<int> api_figures = {before["pools"][0]["workers_wanted"].get<int>(),
                               after["pools"][0]["workers_wanted"].get<int>()};
  EXPECT_TRUE(api_figures.contains(std::stoi(wanted[1]))) << "DOM says " << wanted[1];
  const int wanted_in_dom = std::stoi(wanted[1]);
  EXPECT_GT(wanted_in_dom, 2);  // more than the two accepting workers
  EXPECT_THAT(dom.out,
              HasSubstr("<span class=\"need-more\">add " + std::to_string(wanted_in_dom - 2) + "</span>"));
  EXPECT_THAT(dom.out, HasSubstr("id=\"status\" class=\"\">updated "));  // no fetch error shown

  fs::path screenshot = output_dir() / "dashboard.png";
  fs::remove(screenshot);
  auto shot = chromium_command(chromium, timeout, profile);
  shot.insert(shot.end(), {"--screenshot=" + screenshot.string(), "--window-size=1280,900", url});
  auto shot_result = run_process(shot);
  EXPECT_EQ(shot_result.exit_code, 0) << shot_result.err;
  std::string png = read_file(screenshot);
  ASSERT_GT(png.size(), 1000u) << "no screenshot at " << screenshot;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::cout << "dashboard screenshot: " << screenshot.string() << "\n";
}

// A client's estimate of a cold build reaches placement: with no worker
// holding any of its steps, the job's expected seconds are the estimate
// (without one, the pool's default step cost times its steps).
TEST_F(DashboardFarm, ClientEstimateIsWhatPlacementExpects) {
  auto submitted =
      client_->call<proto::Submitted>(proto::Submit{.job = {.spec = "((from busybox) (run (shell \"make\")))",
                                                            .spec_name = "estimated.spec",
                                                            .estimate_seconds = 900}});
  ASSERT_TRUE(submitted) << submitted.error().to_string();
  std::string plain = submit("plain.spec", false);
  auto expected = [&](const std::string& id) {
    auto reply = http_get(http_port_, "/v1/jobs/" + id);
    if (!reply || reply->status != 200) return Json();
    return Json::parse(reply->body, nullptr, false)["job"]["expected_seconds"];
  };
  Json with_estimate, without;
  ASSERT_TRUE(eventually([&] {
    with_estimate = expected(submitted->job_id);
    without = expected(plain);
    return with_estimate.is_number() && without.is_number();
  })) << "/v1/jobs/ID never showed expected_seconds";
  EXPECT_DOUBLE_EQ(with_estimate.get<double>(), 900);
  EXPECT_DOUBLE_EQ(without.get<double>(), 60);  // 2 steps x the 30 s default
}

// A client's "submitted" counts every job of it in the database, not only
// those in the view's window (the active, queued and 200 most recent ended
// jobs).
TEST_F(DashboardFarm, ClientSubmittedCountsEveryJobOfIt) {
  start_worker("quick", "64", "0");
  constexpr int kJobs = 260;
  for (int i = 0; i < kJobs; ++i) submit("quick-" + std::to_string(i) + ".spec", false);
  auto submitted = [&]() -> long {
    Json s = stats();
    if (!s.is_object() || s["jobs_by_state"]["succeeded"] != kJobs) return -1;
    for (const Json& c : s["clients"])
      if (c["name"] == kClientName) return c["submitted"].get<long>();
    return -1;
  };
  long seen = -1;
  ASSERT_TRUE(eventually([&] { return (seen = submitted()) >= 0; }, 30s))
      << "the jobs did not all succeed: " << stats().dump(2);
  EXPECT_EQ(seen, kJobs);
  auto reply = http_get(http_port_, "/metrics");
  ASSERT_TRUE(reply);
  EXPECT_THAT(reply->body, HasSubstr("kiln_client_submitted_jobs{client=\"" + std::string(kClientName) +
                                     "\"} " + std::to_string(kJobs) + "\n"));
}

// A pool of its own target, configured but with no workers or jobs.
class DashboardFarmWithPoolTarget : public DashboardFarm {
 protected:
  void SetUp() override {
    extra_scheduler_args_ = {"--target-wait", "linux-arm64=120"};
    DashboardFarm::SetUp();
  }
};

// --target-wait SECONDS sets every pool's target; POOL=SECONDS one pool's.
// A configured pool is listed even before a worker or job names it.
TEST_F(DashboardFarmWithPoolTarget, TargetWaitIsSetPerPool) {
  auto reply = http_get(http_port_, "/v1/pools");
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 200) << reply->body;
  Json pools = Json::parse(reply->body)["pools"];
  ASSERT_TRUE(pools.is_array());
  std::map<std::string, double> targets;
  for (const Json& p : pools) targets[p["name"].get<std::string>()] = p["target_wait_seconds"].get<double>();
  EXPECT_EQ(targets["linux-arm64"], 120);
  submit("default-pool.spec", false);  // names the default pool
  ASSERT_TRUE(eventually([&] {
    auto r = http_get(http_port_, "/v1/pools");
    if (!r) return false;
    Json doc = Json::parse(r->body);
    for (const Json& p : doc["pools"])
      if (p["name"] == kPool) return p["target_wait_seconds"].get<double>() == 60;
    return false;
  }));
}

class DashboardFarmWithHistory : public DashboardFarm {
 protected:
  void SetUp() override {
    extra_scheduler_args_ = {"--history-interval", "1"};
    DashboardFarm::SetUp();
  }
};

// The last hours: /v1/stats/history takes a point every interval, and the
// dashboard draws it as charts (a line per pool) in headless Chromium.
TEST_F(DashboardFarmWithHistory, HistoryIsChartedFromTheRealFarm) {
  ASSERT_NO_FATAL_FAILURE(start_busy_farm());
  Json history;
  ASSERT_TRUE(eventually([&] {
    auto r = http_get(http_port_, "/v1/stats/history");
    if (!r || r->status != 200) return false;
    history = Json::parse(r->body, nullptr, false);
    if (history.is_discarded() || history["points"].size() < 3) return false;
    const Json& last = history["points"].back();
    return last["workers_connected"] == 2 && last["pools"].size() == 1 && last["pools"][0]["queued"] == 4;
  })) << history.dump(2);
  EXPECT_EQ(history["interval_seconds"], 1);
  std::ofstream(output_dir() / "stats-history.json") << history.dump(2) << "\n";
  // The two running jobs started within the history: a started rate and a
  // queue wait appear in some point.
  bool started = false;
  for (const Json& p : history["points"]) started = started || p["pools"][0]["started_per_minute"] > 0;
  EXPECT_TRUE(started) << history.dump(2);
  EXPECT_GT(history["points"].back()["disk_free_bytes"].get<double>(), 0);

  std::string chromium = find_on_path({"chromium", "chromium-browser"});
  std::string timeout = find_on_path({"timeout"});
  ASSERT_FALSE(chromium.empty());
  auto dump = chromium_command(chromium, timeout, dir_.path() + "/chromium");
  dump.insert(dump.end(), {"--dump-dom", "http://" + http_address() + "/"});
  auto dom = run_process(dump);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  std::ofstream(output_dir() / "dashboard-history-dom.html", std::ios::binary) << dom.out;
  for (const char* id :
       {"chart-queued", "chart-throughput", "chart-wait", "chart-cache", "chart-workers", "chart-disk"})
    EXPECT_THAT(dom.out, HasSubstr(std::string("id=\"") + id + "\"")) << id;
  // The queue chart has the pool's line with as many points as the history.
  std::smatch line;
  ASSERT_TRUE(std::regex_search(
      dom.out, line, std::regex("id=\"chart-queued\"[^]*?data-series=\"linux-x86_64\" points=\"([^\"]+)\"")))
      << "no line for the pool in the queue chart";
  const std::string points = line[1];
  EXPECT_GE(std::count(points.begin(), points.end(), ','), 3) << points;

  fs::path screenshot = output_dir() / "dashboard-history.png";
  auto shot = chromium_command(chromium, timeout, dir_.path() + "/chromium");
  shot.insert(shot.end(), {"--screenshot=" + screenshot.string(), "--window-size=1280,1400",
                           "http://" + http_address() + "/"});
  EXPECT_EQ(run_process(shot).exit_code, 0);
  std::cout << "dashboard screenshot with history: " << screenshot.string() << "\n";
}

TEST_F(DashboardFarm, AdminStatsSummarisesAndPrintsTheJson) {
  ASSERT_NO_FATAL_FAILURE(start_busy_farm());
  auto summary =
      run_process({KILN_BINARY, "admin", "stats", "--scheduler", client_endpoint_, "--http", http_address()});
  ASSERT_EQ(summary.exit_code, 0) << summary.out << summary.err;
  std::ofstream(output_dir() / "admin-stats.txt") << summary.out;
  const std::string& out = summary.out;
  EXPECT_THAT(out, HasSubstr("pool linux-x86_64\n"));
  EXPECT_THAT(out, HasSubstr("  queued          4 (1 urgent, 3 normal)\n"));
  EXPECT_THAT(out, HasSubstr("  running         2 on 2 slots\n"));
  EXPECT_THAT(out, HasSubstr("jobs: 4 queued, 0 assigned, 2 running, 0 succeeded, 0 failed, 0 cancelled\n"));
  std::smatch wanted;
  ASSERT_TRUE(std::regex_search(
      out, wanted,
      std::regex(R"(WORKERS WANTED  (\d+) to meet the 1m 00s target wait; 2 accepting: ADD (\d+)\n)")))
      << out;
  EXPECT_GT(std::stoi(wanted[1]), 2);
  EXPECT_EQ(std::stoi(wanted[2]), std::stoi(wanted[1]) - 2);
  for (const char* worker : {"dash-w1", "dash-w2"}) EXPECT_THAT(out, HasSubstr(worker));
  for (const std::string& id : running_) EXPECT_THAT(out, HasSubstr("1/1 " + id)) << id;
  EXPECT_THAT(out, HasSubstr(kClientName));

  auto json = run_process(
      {KILN_BINARY, "admin", "stats", "--json", "--scheduler", client_endpoint_, "--http", http_address()});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json doc = Json::parse(json.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << json.out;
  ASSERT_TRUE(doc["pools"].is_array());
  ASSERT_TRUE(doc["workers"].is_array());
  ASSERT_TRUE(doc["clients"].is_array());
  ASSERT_EQ(doc["pools"].size(), 1u);
  EXPECT_EQ(doc["pools"][0]["name"], kPool);
  EXPECT_EQ(doc["pools"][0]["queued"]["total"], 4);
  EXPECT_EQ(doc["pools"][0]["queued"]["urgent"], 1);
  EXPECT_EQ(doc["pools"][0]["running_jobs"], 2);
  EXPECT_EQ(doc["workers"].size(), 2u);
  ASSERT_EQ(doc["clients"].size(), 1u);
  EXPECT_EQ(doc["clients"][0]["name"], kClientName);
  EXPECT_EQ(doc["clients"][0]["running"], 2);
  EXPECT_EQ(doc["clients"][0]["waiting"], 4);
}

}  // namespace
}  // namespace kiln::testing
