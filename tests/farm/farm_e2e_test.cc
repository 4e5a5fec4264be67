// The whole farm as processes: kiln-scheduler, kiln-worker (real builds with
// runc on overlayfs or on a private dockerd, or --fake-build where only the
// farm is under test) and the `kiln` command, over ZeroMQ on 127.0.0.1.
// Needs root (runc, overlayfs, dockerd).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/farm/raw_peers.h"
#include "tests/support/local_dockerd.h"
#include "tests/support/local_registry.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// The base image, made once for the whole binary.
std::string g_image_dir;

class BaseImage : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    g_image_dir = dir_->path() + "/busybox";
    auto r = run_process({source_dir() + "/scripts/make-base-image", g_image_dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { dir_.reset(); }

 private:
  std::unique_ptr<TempDir> dir_;
};
const auto* const kBaseImage = ::testing::AddGlobalTestEnvironment(new BaseImage);

class Farm : public ::testing::Test {
 protected:
  // Starts a worker process; `fake` >= 0 means --fake-build=SECONDS.
  Child& worker(const std::string& name, int capacity = 2, double fake = -1,
                const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {KILN_WORKER_BINARY,
                                     "--scheduler",
                                     scheduler->worker_endpoint(),
                                     "--name",
                                     name,
                                     "--capacity",
                                     std::to_string(capacity),
                                     "--state-dir",
                                     dir.path() + "/" + name,
                                     "--image-alias",
                                     "busybox=oci:" + g_image_dir + ":latest"};
    if (fake >= 0) {
      argv.push_back("--fake-build");
      argv.push_back(std::to_string(fake));
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers[name] = std::make_unique<Child>(argv, dir.path() + "/" + name + ".log");
    Child& child = *workers[name];
    EXPECT_TRUE(eventually([&] { return connected(name); })) << name << " did not register:\n" << child.log();
    return child;
  }

  bool connected(const std::string& name) {
    auto list = client->call<proto::Workers>(proto::ListWorkers{}, 2s);
    if (!list) return false;
    for (const auto& w : list->workers) {
      if (w.name == name && w.connected) return true;
    }
    return false;
  }

  void start_scheduler(std::vector<std::string> args = {}) {
    scheduler = std::make_unique<SchedulerProcess>(dir.path() + "/scheduler", std::move(args));
    client = scheduler->client();
  }

  // `kiln submit` (the real CLI: tars and uploads the context); returns the job id.
  std::string kiln_submit(const std::string& spec_file, const std::string& context,
                          std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        KILN_BINARY, "submit", "-f", spec_file, context, "--scheduler", scheduler->client_endpoint()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_process(argv);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  }

  proto::JobInfo wait_for(const std::string& id, std::chrono::seconds limit = 120s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = client->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 5000});
      if (r && (r->job.state == "succeeded" || r->job.state == "failed" || r->job.state == "cancelled"))
        return r->job;
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return {};
  }

  std::string write_context(const std::string& name, const std::string& greeting) {
    const std::string ctx = dir.path() + "/" + name;
    std::filesystem::create_directories(ctx);
    std::ofstream(ctx + "/greeting.txt") << greeting;
    std::ofstream(ctx + "/app.spec")
        << "((from busybox)\n (workdir /src)\n (copy (src greeting.txt) (dst ./))\n"
           " (run (shell \"cat greeting.txt && echo built > out.txt\")))\n";
    return ctx;
  }

  // A docker config in `login_dir` (for DOCKER_CONFIG) with the login
  // kiln:pushs3cret for `registry_host`, the one make_tls_and_htpasswd's
  // registries in these tests want. Returns login_dir.
  static std::string write_push_login(const std::string& login_dir, const std::string& registry_host) {
    std::filesystem::create_directories(login_dir);
    std::ofstream(login_dir + "/config.json")
        << R"({"auths": {")" + registry_host + R"(": {"auth": "a2lsbjpwdXNoczNjcmV0"}}})";  // kiln:pushs3cret
    return login_dir;
  }

  // `skopeo inspect --format FORMAT` of what the TLS registry made in `tls`
  // holds under `ref`, with the same login.
  static ProcessResult inspect_pushed(const std::string& tls, const std::string& ref,
                                      const std::string& format) {
    std::filesystem::create_directories(tls + "/trust");
    std::filesystem::copy_file(tls + "/ca.pem", tls + "/trust/ca.crt",
                               std::filesystem::copy_options::overwrite_existing);
    return run_process({"/usr/bin/skopeo", "inspect", "--cert-dir", tls + "/trust", "--creds",
                        "kiln:pushs3cret", "--format", format, "docker://" + ref});
  }

  // Workers stop as an operator would stop them (SIGTERM), so that they
  // clean up after themselves; TempDir detaches what a killed one left.
  void TearDown() override {
    for (auto& [name, child] : workers) {
      if (child->running()) child->stop(std::chrono::seconds(10));
    }
  }

  TempDir dir;
  std::unique_ptr<SchedulerProcess> scheduler;
  std::unique_ptr<proto::Client> client;
  std::map<std::string, std::unique_ptr<Child>> workers;
};

TEST_F(Farm, TheSameSpecTwiceLandsOnTheWarmWorkerAndIsServedFromCache) {
  start_scheduler();
  worker("w1");
  worker("w2");
  const std::string ctx = write_context("ctx", "hello farm\n");
  // Keep w1 out of the first build so that w2 (not the first by name) gets warm.
  ASSERT_TRUE(client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "pause"}));
  const std::string first = kiln_submit(ctx + "/app.spec", ctx);
  auto cold = wait_for(first);
  ASSERT_EQ(cold.state, "succeeded") << cold.error << "\n" << workers["w2"]->log();
  EXPECT_EQ(cold.worker, "w2");
  ASSERT_EQ(cold.steps.size(), 3u);  // from, copy, run (workdir is no snapshot)
  EXPECT_FALSE(cold.steps.back().cached);
  ASSERT_TRUE(client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "unpause"}));

  // Both idle now; only w2 holds the steps (its inventory told the scheduler).
  const std::string second = kiln_submit(ctx + "/app.spec", ctx);
  auto warm = wait_for(second);
  ASSERT_EQ(warm.state, "succeeded") << warm.error;
  EXPECT_EQ(warm.worker, "w2");
  ASSERT_EQ(warm.steps.size(), 3u);
  for (const auto& step : warm.steps) EXPECT_TRUE(step.cached) << step.description;
  EXPECT_EQ(warm.result, cold.result);
  auto log = client->call<proto::Log>(proto::ReadLog{.job_id = second, .offset = 0, .max_bytes = 1 << 20});
  ASSERT_TRUE(log);
  EXPECT_THAT(log->data, HasSubstr("from cache"));
  EXPECT_THAT(log->data, HasSubstr("hello farm"));  // the cached step's log is replayed

  // `kiln status --json` shows the same through the CLI.
  auto status =
      run_process({KILN_BINARY, "status", second, "--json", "--scheduler", scheduler->client_endpoint()});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("\"worker\": \"w2\""));
  EXPECT_THAT(status.out, HasSubstr("\"cached\": true"));

  // The warm worker's own store statistics (what the dashboard's cache and
  // store columns show) reach the scheduler with its heartbeats: the first
  // build's 3 steps were misses and are stored, the second's 3 were hits.
  proto::WorkerStats w2;
  EXPECT_TRUE(eventually([&] {
    auto list = client->call<proto::Workers>(proto::ListWorkers{}, 2s);
    if (!list) return false;
    for (const auto& w : list->workers)
      if (w.name == "w2") w2 = w.stats;
    return w2.cache_hits >= 3;
  })) << "w2 reported "
      << w2.cache_hits << " cache hits";
  EXPECT_GE(w2.cache_misses, 3u);
  EXPECT_GE(w2.store_items, 3u);
  EXPECT_GT(w2.store_bytes, 0u);

  // `kiln admin trace` writes both jobs as a placement trace: the same chain,
  // each step costed at what the cold build took.
  const std::string trace = dir.path() + "/farm.jsonl";
  auto written = run_process(
      {KILN_BINARY, "admin", "trace", "--out", trace, "--scheduler", scheduler->client_endpoint()});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  EXPECT_THAT(written.err, HasSubstr("trace of 2 job(s) and 2 worker(s)"));
  std::ifstream lines(trace);
  std::vector<nlohmann::json> jobs;
  std::set<std::string> worker_names;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] == "worker") worker_names.insert(j["name"].get<std::string>());
    if (j["type"] == "job") jobs.push_back(j);
  }
  EXPECT_EQ(worker_names, (std::set<std::string>{"w1", "w2"}));
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]["id"], first);
  EXPECT_EQ(jobs[1]["id"], second);
  EXPECT_EQ(jobs[0]["steps"], jobs[1]["steps"]);
  ASSERT_EQ(jobs[0]["steps"].size(), 3u);
  EXPECT_EQ(jobs[0]["steps"][2]["id"], cold.steps[2].id);
  EXPECT_DOUBLE_EQ(jobs[0]["steps"][2]["seconds"].get<double>(), cold.steps[2].seconds);
  EXPECT_GE(jobs[1]["t"].get<double>(), jobs[0]["t"].get<double>());
#ifdef KILN_SIM_BINARY
  auto replay = run_process({KILN_SIM_BINARY, "--trace", trace, "--policies", "kiln,least-loaded"});
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_THAT(replay.out, HasSubstr("2 jobs, 2 workers (4 slots)"));
#endif
}

// Issue 15: a docker-backend worker (its own dockerd, started by the test)
// and an overlayfs worker serve one pool. Each builds a job of its own (the
// other paused), both succeed, the same jobs again are served from cache by
// the worker that built them, the docker worker pushes a result with the
// login sent with the job, and a step has the same id on both backends.
TEST_F(Farm, ADockerWorkerAndAnOverlayfsWorkerServeOnePoolEachFromItsOwnCache) {
  LocalDockerd dockerd;
  ASSERT_EQ(dockerd.start_error(), "");
  start_scheduler();
  worker("docker", 2, -1, {"--store", "docker:kiln-farm", "--docker-host", dockerd.host()});
  worker("overlayfs", 2);
  EXPECT_THAT(workers["docker"]->log(), HasSubstr("run by dockerd " + dockerd.host()));
  auto act = [&](const std::string& name, const std::string& action) {
    auto r = client->call<proto::Ok>(proto::WorkerAction{.worker = name, .action = action});
    ASSERT_TRUE(r) << action << " " << name << ": " << r.error().to_string();
  };
  const std::string on_docker = write_context("ctx-docker", "built by dockerd\n");
  const std::string on_overlayfs = write_context("ctx-overlayfs", "built on overlayfs\n");
  const std::vector<std::pair<std::string, std::string>> jobs = {{"docker", on_docker},
                                                                 {"overlayfs", on_overlayfs}};
  // Each job cold on one worker while the other is paused.
  std::map<std::string, proto::JobInfo> cold;
  for (const auto& [name, ctx] : jobs) {
    const std::string other = name == "docker" ? "overlayfs" : "docker";
    act(other, "pause");
    cold[name] = wait_for(kiln_submit(ctx + "/app.spec", ctx));
    act(other, "unpause");
    ASSERT_EQ(cold[name].state, "succeeded") << cold[name].error << "\n" << workers[name]->log();
    EXPECT_EQ(cold[name].worker, name);
    ASSERT_EQ(cold[name].steps.size(), 3u);  // from, copy, run
    EXPECT_FALSE(cold[name].steps.back().cached);
  }
  auto images = dockerd.docker({"images", "--format", "{{.Repository}}:{{.Tag}}", "kiln-farm"});
  EXPECT_THAT(images.out, HasSubstr("kiln-farm:" + cold["docker"].result)) << images.out << images.err;

  // Both idle: each job again goes to the worker that holds its steps, and
  // its files come out of either store (--output).
  for (const auto& [name, ctx] : jobs) {
    const std::string out = dir.path() + "/out-" + name;
    const std::string id = kiln_submit(ctx + "/app.spec", ctx, {"--output", "/src:" + out});
    auto warm = wait_for(id);
    ASSERT_EQ(warm.state, "succeeded") << warm.error << "\n" << workers[name]->log();
    EXPECT_EQ(warm.worker, name);
    EXPECT_EQ(warm.result, cold[name].result);
    ASSERT_EQ(warm.steps.size(), 3u);
    for (const auto& step : warm.steps) EXPECT_TRUE(step.cached) << name << ": " << step.description;
    auto log = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 0, .max_bytes = 1 << 20});
    ASSERT_TRUE(log);
    EXPECT_THAT(log->data, HasSubstr(name == "docker" ? "built by dockerd" : "built on overlayfs"));
    std::ifstream greeting(out + "/greeting.txt"), built(out + "/out.txt");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(greeting), {}),
              name == "docker" ? "built by dockerd\n" : "built on overlayfs\n");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(built), {}), "built\n");
  }

  // `kiln submit --push` of the docker worker's job, warm there: dockerd
  // pushes the result to a registry that wants a login (htpasswd over TLS),
  // with the login that came with the job (the worker has none of its own).
  const std::string tls = dir.path() + "/tls";
  ASSERT_EQ(make_tls_and_htpasswd(tls, "kiln", "pushs3cret"), "");
  LocalRegistry registry(dir.path() + "/registry", {.tls_certificate = tls + "/server.pem",
                                                    .tls_key = tls + "/server.key",
                                                    .htpasswd = tls + "/htpasswd"});
  const std::string ref = registry.host() + "/team/docker-worker:1";
  const std::string login_dir = write_push_login(dir.path() + "/docker-login", registry.host());
  auto pushing = run_process({"/usr/bin/env", "DOCKER_CONFIG=" + login_dir, KILN_BINARY, "submit", "-f",
                              on_docker + "/app.spec", on_docker, "--push", ref, "--scheduler",
                              scheduler->client_endpoint()});
  ASSERT_EQ(pushing.exit_code, 0) << pushing.err;
  auto pushed = wait_for(pushing.out.substr(0, pushing.out.find('\n')));
  ASSERT_EQ(pushed.state, "succeeded") << pushed.error << "\n" << workers["docker"]->log();
  EXPECT_EQ(pushed.worker, "docker");
  EXPECT_EQ(pushed.result, cold["docker"].result);
  ASSERT_THAT(pushed.pushed, HasSubstr(ref + "@sha256:"));
  auto inspected = inspect_pushed(tls, ref, "{{.Digest}} {{len .Layers}}");
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  const std::string digest = inspected.out.substr(0, inspected.out.find(' '));
  EXPECT_EQ(ref + "@" + digest, pushed.pushed);
  EXPECT_EQ(inspected.out.substr(inspected.out.find(' ') + 1), "3\n");  // busybox, the copy, the run
  // Nothing of the push is left in dockerd: no container, no pushed name.
  auto left = dockerd.docker({"ps", "-a", "--filter", "label=kiln.kind=push", "--format", "{{.Names}}"});
  EXPECT_EQ(left.out, "") << left.err;
  auto names = dockerd.docker({"images", "--format", "{{.Repository}}:{{.Tag}}"});
  EXPECT_THAT(names.out, ::testing::Not(HasSubstr("docker-worker"))) << names.out;
  auto grep = run_process({"/bin/grep", "-rla", "pushs3cret", dir.path() + "/scheduler",
                           dir.path() + "/docker", dir.path() + "/docker.log"});
  EXPECT_EQ(grep.exit_code, 1) << grep.out;

  // The docker worker's job, built on overlayfs too: the same step ids.
  act("docker", "pause");
  auto again = wait_for(kiln_submit(on_docker + "/app.spec", on_docker));
  act("docker", "unpause");
  ASSERT_EQ(again.state, "succeeded") << again.error << "\n" << workers["overlayfs"]->log();
  EXPECT_EQ(again.worker, "overlayfs");
  EXPECT_FALSE(again.steps.back().cached);
  EXPECT_EQ(again.result, cold["docker"].result);
  EXPECT_EQ(workers["docker"]->stop(), 0) << workers["docker"]->log();  // before its dockerd goes
}

TEST_F(Farm, AFailingStepFailsTheJobWithItsError) {
  start_scheduler();
  worker("w1");
  const std::string ctx = dir.path() + "/bad";
  std::filesystem::create_directories(ctx);
  std::ofstream(ctx + "/bad.spec") << "((from busybox) (run (shell \"echo about to fail; exit 3\")))\n";
  auto r = run_process({KILN_BINARY, "submit", "-f", ctx + "/bad.spec", ctx, "--follow", "--scheduler",
                        scheduler->client_endpoint()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, HasSubstr("about to fail"));
  std::string id = r.out.substr(r.out.find_last_of('\n', r.out.size() - 2) + 1);
  id.pop_back();
  auto job = wait_for(id);
  EXPECT_EQ(job.state, "failed");
  EXPECT_THAT(job.error, HasSubstr("3"));
}

TEST_F(Farm, AKilledWorkersJobCompletesOnAnotherWithOneResult) {
  start_scheduler({"--lease-ms", "1500", "--heartbeat-ms", "200"});
  worker("w1", 1, 4.0);
  worker("w2", 1, 4.0);
  auto submitted = client->call<proto::Submitted>(
      proto::Submit{.job = {.spec = "((from busybox) (run (shell \"true\")))", .spec_name = "k.spec"}});
  ASSERT_TRUE(submitted);
  proto::JobInfo running;
  ASSERT_TRUE(eventually([&] {
    auto r = client->call<proto::Job>(proto::GetStatus{.job_id = submitted->job_id});
    if (r && r->job.state == "running") running = r->job;
    return r && r->job.state == "running";
  }));
  workers[running.worker]->kill_now();
  auto done = wait_for(submitted->job_id);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_NE(done.worker, running.worker);
  ASSERT_EQ(done.attempts.size(), 2u);
  EXPECT_EQ(done.attempts[0].outcome, "lost");
  EXPECT_EQ(done.attempts[1].outcome, "succeeded");
}

TEST_F(Farm, AStoppedWorkersJobsMoveAfterTheLeaseAndItsLateReportIsIgnored) {
  start_scheduler({"--lease-ms", "1500", "--heartbeat-ms", "200"});
  Child& stopped = worker("w1", 1, 3.0);
  auto submitted = client->call<proto::Submitted>(
      proto::Submit{.job = {.spec = "((from busybox) (run (shell \"true\")))", .spec_name = "s.spec"}});
  ASSERT_TRUE(submitted);
  ASSERT_TRUE(eventually([&] {
    auto r = client->call<proto::Job>(proto::GetStatus{.job_id = submitted->job_id});
    return r && r->job.state == "running";
  }));
  stopped.signal(SIGSTOP);
  worker("w2", 1, 0.5);
  auto done = wait_for(submitted->job_id);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.worker, "w2");
  // w1 wakes up, finishes its stale attempt and reports it: ignored.
  stopped.signal(SIGCONT);
  ASSERT_TRUE(eventually([&] { return connected("w1"); }));
  std::this_thread::sleep_for(4s);
  auto after = client->call<proto::Job>(proto::GetStatus{.job_id = submitted->job_id});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->job.worker, "w2");
  EXPECT_EQ(after->job.attempts.size(), 2u);
  EXPECT_EQ(after->job.attempts.back().outcome, "succeeded");
}

TEST_F(Farm, KillNineTheSchedulerUnderLoadLosesAndDuplicatesNothing) {
  start_scheduler({"--lease-ms", "3000", "--heartbeat-ms", "200"});
  worker("w1", 4, 0.05);
  worker("w2", 4, 0.05);
  std::vector<std::string> acked;
  for (int i = 0; i < 150; ++i) {
    auto r = client->call<proto::Submitted>(
        proto::Submit{.job = {.spec = "((from busybox) (run (shell \"echo " + std::to_string(i) + "\")))",
                              .spec_name = "l.spec"}});
    ASSERT_TRUE(r) << r.error().to_string();
    acked.push_back(r->job_id);
    if (i == 100) {
      scheduler->child().kill_now();
      scheduler->restart();
      client = scheduler->client();
    }
  }
  std::set<std::string> results;
  for (const std::string& id : acked) {
    auto job = wait_for(id, 60s);
    EXPECT_EQ(job.state, "succeeded") << id << ": " << job.error;
    EXPECT_LE(job.attempts.size(), 2u) << id;
    EXPECT_EQ(job.attempts.back().outcome, "succeeded") << id;
    results.insert(job.id);
  }
  EXPECT_EQ(results.size(), acked.size());
  auto all = client->call<proto::Jobs>(proto::ListJobs{.limit = 1000});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->total, acked.size());  // no job appeared twice
}

TEST_F(Farm, AGitContextIsFetchedByTheWorker) {
  start_scheduler();
  worker("w1");
  const std::string repo = dir.path() + "/repo";
  std::filesystem::create_directories(repo);
  std::ofstream(repo + "/greeting.txt") << "from git\n";
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"});
    auto r = run_process(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  git({"init", "-q"});
  git({"add", "greeting.txt"});
  git({"commit", "-q", "-m", "one"});
  std::string commit = git({"rev-parse", "HEAD"});
  commit.pop_back();
  const std::string spec = dir.path() + "/git.spec";
  std::ofstream(spec)
      << "((from busybox) (copy (src greeting.txt) (dst /g.txt)) (run (shell \"cat /g.txt\")))\n";
  auto r = run_process({KILN_BINARY, "submit", "-f", spec, "--git", "file://" + repo, "--commit", commit,
                        "--follow", "--scheduler", scheduler->client_endpoint()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << workers["w1"]->log();
  EXPECT_THAT(r.out, HasSubstr("from git"));
}

// `kiln submit --push`: the worker pushes the result to a registry that wants
// a login (htpasswd over TLS). The login comes from the submitter's docker
// config and travels with the job as a secret: the worker has none of its
// own, and neither the scheduler's database nor the logs hold it.
TEST_F(Farm, TheWorkerPushesTheResultWithTheLoginSentWithTheJob) {
  const std::string tls = dir.path() + "/tls";
  ASSERT_EQ(make_tls_and_htpasswd(tls, "kiln", "pushs3cret"), "");
  LocalRegistry registry(dir.path() + "/registry", {.tls_certificate = tls + "/server.pem",
                                                    .tls_key = tls + "/server.key",
                                                    .htpasswd = tls + "/htpasswd"});
  start_scheduler();
  worker("w1", 2, -1, {"--registry-ca", tls + "/ca.pem"});
  const std::string ctx = write_context("ctx", "pushed by the farm\n");
  const std::string ref = registry.host() + "/team/farm:1";
  const std::string login_dir = write_push_login(dir.path() + "/docker", registry.host());
  auto submit = [&](const std::string& docker_config) {
    return run_process({"/usr/bin/env", "DOCKER_CONFIG=" + docker_config, KILN_BINARY, "submit", "-f",
                        ctx + "/app.spec", ctx, "--push", ref, "--scheduler", scheduler->client_endpoint()});
  };

  // Without a login the push is refused, and the job fails saying so.
  auto anonymous = submit(dir.path() + "/no-docker");
  ASSERT_EQ(anonymous.exit_code, 0) << anonymous.err;
  std::string anonymous_id = anonymous.out.substr(0, anonymous.out.find('\n'));
  auto refused = wait_for(anonymous_id);
  EXPECT_EQ(refused.state, "failed");
  EXPECT_THAT(refused.error, HasSubstr("repository:team/farm:push,pull"));
  EXPECT_EQ(refused.pushed, "");

  auto with_login = submit(login_dir);
  ASSERT_EQ(with_login.exit_code, 0) << with_login.err;
  std::string id = with_login.out.substr(0, with_login.out.find('\n'));
  auto job = wait_for(id);
  ASSERT_EQ(job.state, "succeeded") << job.error << "\n" << workers["w1"]->log();
  EXPECT_EQ(job.push, ref);
  ASSERT_THAT(job.pushed, HasSubstr(ref + "@sha256:"));
  EXPECT_EQ(job.secret_ids, std::vector<std::string>{"kiln-push-login"});
  // What the registry holds under the tag is what the job status says.
  auto inspected = inspect_pushed(tls, ref, "{{.Digest}}");
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(ref + "@" + inspected.out.substr(0, inspected.out.find('\n')), job.pushed);
  auto status = run_process({KILN_BINARY, "status", id, "--scheduler", scheduler->client_endpoint()});
  EXPECT_THAT(status.out, HasSubstr("pushed:    " + job.pushed));
  auto log = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 0, .max_bytes = 1 << 20});
  ASSERT_TRUE(log);
  EXPECT_THAT(log->data, HasSubstr("push: pushed " + ref));
  // The password is nowhere on disk: not in the scheduler's state, the
  // worker's, or any log.
  auto grep = run_process({"/bin/grep", "-rla", "pushs3cret", dir.path() + "/scheduler", dir.path() + "/w1",
                           dir.path() + "/w1.log"});
  EXPECT_EQ(grep.exit_code, 1) << grep.out;
  EXPECT_THAT(log->data, ::testing::Not(HasSubstr("pushs3cret")));
}

TEST_F(Farm, TheClientGetsTheOutputsItAskedFor) {
  start_scheduler({"--max-output-bytes", "1048576"});
  worker("w1", 2);
  const std::string ctx = dir.path() + "/out-ctx";
  std::filesystem::create_directories(ctx);
  std::ofstream(ctx + "/app.spec")
      << "((from busybox)\n (workdir /app)\n"
         " (run (shell \"mkdir -p bin && printf 'hi\\\\n' > bin/hello && chmod 755 bin/hello && ln -s hello "
         "bin/link && head -c 300000 /dev/urandom > bin/blob && sha256sum bin/blob\")))\n";
  const std::string out1 = dir.path() + "/out1";
  const std::string out2 = dir.path() + "/out2/nested";
  auto r = run_process({KILN_BINARY, "submit", "-f", ctx + "/app.spec", ctx, "--output", "/app/bin:" + out1,
                        "--output", "/app/bin/hello:" + out2, "--scheduler", scheduler->client_endpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << workers["w1"]->log();
  std::string id = r.out.substr(0, r.out.size() - 1);
  id = id.substr(id.rfind('\n') + 1);
  EXPECT_THAT(r.err, HasSubstr("kiln: output /app/bin -> " + out1 + ": 3 entries"));
  // The log printed the blob's digest inside the container: the copy here matches it.
  const std::string blob_hash = run_process({"/usr/bin/sha256sum", out1 + "/blob"}).out.substr(0, 64);
  EXPECT_THAT(r.out, HasSubstr(blob_hash + "  bin/blob"));
  EXPECT_EQ(std::filesystem::file_size(out1 + "/blob"), 300000u);
  std::ifstream hello(out1 + "/hello");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(hello), {}), "hi\n");
  EXPECT_EQ(std::filesystem::status(out1 + "/hello").permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0755));
  EXPECT_EQ(std::filesystem::read_symlink(out1 + "/link"), "hello");
  EXPECT_TRUE(std::filesystem::is_regular_file(out2 + "/hello"));

  auto status = run_process({KILN_BINARY, "status", id, "--scheduler", scheduler->client_endpoint()});
  EXPECT_THAT(status.out, HasSubstr("outputs:\n  /app/bin  3 entries"));
  // Fetched again later by job id; an output the job did not ask for is named.
  const std::string out3 = dir.path() + "/out3";
  auto again = run_process(
      {KILN_BINARY, "output", id, "/app/bin:" + out3, "--scheduler", scheduler->client_endpoint()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(run_process({"/usr/bin/sha256sum", out3 + "/blob"}).out.substr(0, 64), blob_hash);
  auto other =
      run_process({KILN_BINARY, "output", id, "/etc:" + out3, "--scheduler", scheduler->client_endpoint()});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_THAT(other.err, HasSubstr("has no output \"/etc\" (it asked for: /app/bin, /app/bin/hello)"));

  // A SRC missing from the result, and one over the scheduler's limit, fail the job saying so.
  auto missing = run_process({KILN_BINARY, "submit", "-f", ctx + "/app.spec", ctx, "--output",
                              "/app/nope:" + out3, "--scheduler", scheduler->client_endpoint()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/app/nope does not exist in the result"));
  std::ofstream(ctx + "/big.spec")
      << "((from busybox)\n (run (shell \"head -c 2000000 /dev/urandom > /big\")))\n";
  auto big = run_process({KILN_BINARY, "submit", "-f", ctx + "/big.spec", ctx, "--output", "/big:" + out3,
                          "--scheduler", scheduler->client_endpoint()});
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_THAT(big.err,
              HasSubstr("--output /big: the files are over 1.0 MiB (1048576 bytes), the most an output "
                        "may hold (kiln-scheduler --max-output-bytes)"));
  EXPECT_FALSE(std::filesystem::exists(out3 + "/big"));
}

}  // namespace
}  // namespace kiln::testing
