#include "scheduler/http/testing/sample_farm.h"

namespace kiln::http::testing {
namespace {

constexpr std::int64_t kNow = 1'796'000'000'000;  // Unix ms
constexpr std::uint64_t kGiB = 1ull << 30;

proto::WorkerInfo worker(std::string name, std::string pool, std::string state, std::uint32_t capacity,
                         bool connected, std::uint64_t free_gib, std::uint64_t hits, std::uint64_t misses) {
  proto::WorkerInfo w;
  w.name = std::move(name);
  w.pool = std::move(pool);
  w.state = std::move(state);
  w.capacity = capacity;
  w.connected = connected;
  w.labels = {"arch=" + std::string(w.pool == "linux-arm64" ? "arm64" : "x86_64")};
  w.stats = {.disk_free_bytes = free_gib * kGiB,
             .disk_total_bytes = 100 * kGiB,
             .store_items = hits + misses,
             .store_bytes = (100 - free_gib) * kGiB / 2,
             .cache_hits = hits,
             .cache_misses = misses,
             .running_jobs = 0,
             .healthy = true};
  w.last_heartbeat_ms = connected ? kNow - 400 : kNow - 3'600'000;
  return w;
}

proto::JobInfo job(std::string id, std::string state, std::string pool, std::string client,
                   std::int64_t submitted_ago_s) {
  proto::JobInfo j;
  j.id = std::move(id);
  j.state = std::move(state);
  j.pool = std::move(pool);
  j.client = std::move(client);
  j.spec_name = "app.spec";
  j.submitted_at_ms = kNow - submitted_ago_s * 1000;
  return j;
}

}  // namespace

std::shared_ptr<const FarmView> sample_farm() {
  auto view = std::make_shared<FarmView>();
  view->now_ms = kNow;
  view->scheduler_id = "sched-7f3a";
  view->placement_policy = "least-loaded";
  view->started_at_ms = kNow - 86'400'000;
  view->heartbeat_ms = 1000;
  view->pools = {{.name = "linux-x86_64", .target_wait_seconds = 300},
                 {.name = "linux-arm64", .target_wait_seconds = 120}};
  view->low_disk_threshold_bytes = 5 * kGiB;
  view->default_target_wait_seconds = 300;
  view->default_job_seconds = 60;

  // builder-b is paused and has 2 GiB free (< 5 GiB): a low-disk warning, not accepting.
  view->workers = {worker("builder-a", "linux-x86_64", "active", 2, true, 40, 90, 10),
                   worker("builder-b", "linux-x86_64", "paused", 2, true, 2, 30, 30),
                   worker("old-box", "linux-x86_64", "disconnected", 4, false, 80, 0, 0),
                   worker("arm-1", "linux-arm64", "active", 1, true, 60, 0, 4)};
  view->workers[0].running = {"j103"};
  view->workers[0].stats.running_jobs = 1;
  view->workers[3].running = {"j104"};
  view->workers[3].stats.running_jobs = 1;

  // j101 ran 120 s: the x86 pool's mean, used for j106 (no estimate).
  auto j101 = job("j101", "succeeded", "linux-x86_64", "ci-main", 900);
  j101.worker = "builder-a";
  j101.attempt = 1;
  j101.started_at_ms = kNow - 800'000;
  j101.finished_at_ms = kNow - 680'000;
  j101.result = "3f1c0a9e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468";
  j101.steps = {{.id = "9a0b", .description = "(from busybox)", .cached = true, .seconds = 0.1},
                {.id = "7c1d", .description = "(run (shell \"make\"))", .cached = false, .seconds = 119.5}};
  j101.attempts = {{.number = 1,
                    .worker = "builder-a",
                    .assigned_at_ms = kNow - 800'500,
                    .ended_at_ms = kNow - 680'000,
                    .outcome = "succeeded"}};
  j101.log_bytes = 2048;
  j101.spec = "((from busybox)\n (run (shell \"make\")))\n";
  auto j102 = job("j102", "failed", "linux-x86_64", "alice", 700);
  j102.worker = "builder-b";
  j102.attempt = 1;
  j102.started_at_ms = kNow - 650'000;
  j102.finished_at_ms = kNow - 640'000;
  j102.error = "step (run (shell \"make test\")) exited with status 2";
  // j103 runs on builder-a: expected 600 s, started 100 s ago -> 500 s remain.
  auto j103 = job("j103", "running", "linux-x86_64", "ci-main", 200);
  j103.worker = "builder-a";
  j103.attempt = 1;
  j103.started_at_ms = kNow - 100'000;
  j103.log_bytes = std::char_traits<char>::length(kSampleRunningLog);
  // j104 runs on arm-1: expected 200 s, started 50 s ago -> 150 s remain.
  auto j104 = job("j104", "running", "linux-arm64", "release", 120);
  j104.worker = "arm-1";
  j104.attempt = 1;
  j104.started_at_ms = kNow - 50'000;
  auto j105 = job("j105", "queued", "linux-x86_64", "release", 60);  // urgent, expected 900 s
  j105.urgent = true;
  auto j106 = job("j106", "queued", "linux-x86_64", "ci-main", 50);  // no estimate: 120 s
  auto j107 = job("j107", "queued", "linux-arm64", "alice", 40);     // expected 300 s
  auto j108 = job("j108", "cancelled", "linux-x86_64", "alice", 30);
  j108.finished_at_ms = kNow - 20'000;
  view->jobs = {j101, j102, j103, j104, j105, j106, j107, j108};
  view->expected_seconds = {{"j103", 600}, {"j104", 200}, {"j105", 900}, {"j107", 300}};
  // The database holds older jobs too.
  view->jobs_total_by_state = {{"queued", 3},       {"assigned", 0}, {"running", 2},
                               {"succeeded", 1520}, {"failed", 87},  {"cancelled", 12}};
  // Figures: linux-x86_64 backlog 900 + 120 + 500 = 1520 s over 2 slots (builder-a)
  // -> expected wait 760 s; wanted = ceil(1520 / (300 * 2)) = 3 (mean capacity of
  // the connected builder-a and builder-b is 2). linux-arm64: 300 + 150 = 450 s,
  // 1 slot -> wait 450 s; wanted = ceil(450 / (120 * 1)) = 4.
  return view;
}

}  // namespace kiln::http::testing
