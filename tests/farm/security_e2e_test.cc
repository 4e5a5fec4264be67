// Authentication and roles with the real processes (docs/security.md): a
// kiln-scheduler started with --key and --auth-dir, clients, admins and
// workers with their own keys, over CurveZMQ on 127.0.0.1. Each refusal is
// checked by its error text; the attack that used to work (a rogue worker
// taking a job, its secret and forging its result) is replayed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "common/auth/curve_keys.h"
#include "tests/farm/raw_peers.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kSpec = "((from busybox) (run (shell \"echo hello\")))";

class Security : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = dir_.path() + "/keys";
    auth_ = dir_.path() + "/auth";
    make_key("scheduler", nullptr);
    for (const char* name : {"alice", "bob"}) make_key(name, "clients");
    for (const char* name : {"w1", "w2"}) make_key(name, "workers");
    make_key("ops", "admins");
    make_key("stranger", nullptr);  // in no role directory
    scheduler_ = std::make_unique<SchedulerProcess>(
        dir_.path() + "/scheduler",
        std::vector<std::string>{"--key", keys_ + "/scheduler.key", "--auth-dir", auth_, "--lease-ms", "3000"});
  }

  void make_key(const std::string& name, const char* role_dir) {
    auto pair = auth::generate_curve_key_pair();
    ASSERT_TRUE(pair);
    ASSERT_TRUE(auth::write_key_files(*pair, keys_, name));
    if (role_dir != nullptr) {
      fs::create_directories(auth_ + "/" + role_dir);
      fs::copy_file(keys_ + "/" + name + ".pub", auth_ + "/" + role_dir + "/" + name + ".pub");
    }
  }
  proto::CurveClientKeys keys_of(const std::string& name) {
    auto mine = auth::read_secret_key_file(keys_ + "/" + name + ".key");
    auto theirs = auth::read_public_key_file(keys_ + "/scheduler.pub");
    EXPECT_TRUE(mine && theirs);
    return {.server_public_z85 = *theirs, .public_z85 = mine->public_z85, .secret_z85 = mine->secret_z85};
  }
  std::unique_ptr<proto::Client> as(const std::string& name) {
    auto c = scheduler_->client_with({.curve = keys_of(name), .key_file = keys_ + "/" + name + ".key"}, name);
    EXPECT_TRUE(c) << name << ": " << c.error().to_string();
    return c ? std::move(*c) : nullptr;
  }
  Result<std::unique_ptr<proto::Client>> try_as(const std::string& name) {
    return scheduler_->client_with({.curve = keys_of(name), .key_file = keys_ + "/" + name + ".key"}, name);
  }
  // A kiln-worker process with `key`, registering as `name`.
  std::unique_ptr<Child> worker_process(const std::string& key, const std::string& name,
                                        const std::string& fake_seconds = "0.2") {
    return std::make_unique<Child>(
        std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", scheduler_->worker_endpoint(), "--name", name,
                                 "--key", keys_ + "/" + key + ".key", "--scheduler-key", keys_ + "/scheduler.pub",
                                 "--state-dir", dir_.path() + "/" + key, "--fake-build", fake_seconds},
        fmt::format("{}/{}-as-{}-{}.log", dir_.path(), key, name, ++workers_started_));
  }
  std::string submit(proto::Client& client, proto::JobSpec spec = {.spec = kSpec}) {
    auto r = client.call<proto::Submitted>(proto::Submit{.job = std::move(spec)});
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? r->job_id : "";
  }
  bool worker_connected(proto::Client& admin, const std::string& name) {
    auto list = admin.call<proto::Workers>(proto::ListWorkers{}, 2s);
    if (!list) return false;
    for (const auto& w : list->workers)
      if (w.name == name && w.connected) return true;
    return false;
  }

  TempDir dir_;
  int workers_started_ = 0;
  std::string keys_, auth_;
  std::unique_ptr<SchedulerProcess> scheduler_;
};

TEST_F(Security, ClientsWithoutAListedKeyAreRefusedWithTheReason) {
  auto none = proto::Client::connect(scheduler_->client_endpoint(), "anon", 5s);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(none.error().message(), HasSubstr("requires CurveZMQ authentication: pass --key FILE"));

  auto stranger = try_as("stranger");
  ASSERT_FALSE(stranger);
  EXPECT_THAT(stranger.error().message(), HasSubstr("refused this key (" + keys_ + "/stranger.key)"));
  EXPECT_THAT(stranger.error().message(), HasSubstr("not in clients/ or admins/"));

  // A worker key is no client key.
  auto worker_key = try_as("w1");
  ASSERT_FALSE(worker_key);
  EXPECT_THAT(worker_key.error().message(), HasSubstr("refused this key"));

  // The kiln command says the same, in one line, at once.
  const auto began = std::chrono::steady_clock::now();
  auto r = run_process({KILN_BINARY, "jobs", "--scheduler", scheduler_->client_endpoint(), "--key",
                        keys_ + "/stranger.key", "--scheduler-key", keys_ + "/scheduler.pub"});
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("kiln: the scheduler at " + scheduler_->client_endpoint() + " refused this key"));
}

TEST_F(Security, NetworkAddressesNeedKeysAndHttpATokenUnlessInsecure) {
  const std::string state = dir_.path() + "/other";
  auto plain = run_process({KILN_SCHEDULER_BINARY, "--state-dir", state, "--listen", "tcp://0.0.0.0:1",
                            "--listen-workers", "tcp://0.0.0.0:2", "--http", "off"});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_THAT(plain.err, HasSubstr("refusing to listen on tcp://0.0.0.0:1 and tcp://0.0.0.0:2 without "
                                   "authentication"));
  auto http = run_process({KILN_SCHEDULER_BINARY, "--state-dir", state, "--key", keys_ + "/scheduler.key",
                           "--auth-dir", auth_, "--listen", "tcp://127.0.0.1:1", "--listen-workers",
                           "tcp://127.0.0.1:2", "--http", "0.0.0.0:3"});
  EXPECT_EQ(http.exit_code, 1);
  EXPECT_THAT(http.err, HasSubstr("refusing to serve HTTP on 0.0.0.0:3 without a token"));
  auto half = run_process({KILN_SCHEDULER_BINARY, "--state-dir", state, "--key", keys_ + "/scheduler.key"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_THAT(half.err, HasSubstr("--key and --auth-dir go together"));
}

TEST_F(Security, WorkerKeysRegisterOnlyUnderTheirOwnNameAndNotOnTheClientPort) {
  auto ops = as("ops");
  ASSERT_TRUE(ops);
  // A client key on the worker port.
  auto client_as_worker = worker_process("alice", "alice");
  EXPECT_EQ(client_as_worker->wait(10s), 2) << client_as_worker->log();
  EXPECT_THAT(client_as_worker->log(), HasSubstr("refused this key"));
  EXPECT_THAT(client_as_worker->log(), HasSubstr("not in workers/"));
  // w2's key claiming to be w1.
  auto imposter = worker_process("w2", "w1");
  EXPECT_EQ(imposter->wait(10s), 2) << imposter->log();
  EXPECT_THAT(imposter->log(), HasSubstr("this worker key is w2's: it may register only as \"w2\", not \"w1\""));
  EXPECT_FALSE(worker_connected(*ops, "w1"));
  // The right key and name: in.
  auto w1 = worker_process("w1", "w1");
  EXPECT_TRUE(eventually([&] { return worker_connected(*ops, "w1"); })) << w1->log();
  // Without --name, the key's name is the worker's name.
  auto w2 = std::make_unique<Child>(
      std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", scheduler_->worker_endpoint(), "--key",
                               keys_ + "/w2.key", "--scheduler-key", keys_ + "/scheduler.pub", "--state-dir",
                               dir_.path() + "/w2-default", "--fake-build", "0"},
      dir_.path() + "/w2-default.log");
  EXPECT_TRUE(eventually([&] { return worker_connected(*ops, "w2"); })) << w2->log();
}

TEST_F(Security, ASecondLiveWorkerUnderTheSameNameIsRefusedNotSwapped) {
  auto ops = as("ops");
  auto first = worker_process("w1", "w1");
  ASSERT_TRUE(eventually([&] { return worker_connected(*ops, "w1"); })) << first->log();
  auto second = worker_process("w1", "w1");
  EXPECT_TRUE(eventually([&] {
    return second->log().find("is already connected and alive; a second worker with the same name is refused") !=
           std::string::npos;
  })) << second->log();
  // The first still holds its name and gets jobs.
  auto alice = as("alice");
  const std::string id = submit(*alice);
  auto done = alice->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 10000}, 15s);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->job.state, "succeeded");
  EXPECT_THAT(first->log(), Not(HasSubstr("refused")));
}

TEST_F(Security, ClientsActOnlyOnTheirOwnJobsAndAdminsOnEverything) {
  auto alice = as("alice");
  auto bob = as("bob");
  auto ops = as("ops");
  ASSERT_TRUE(alice && bob && ops);
  // The name is the key's, not what the client says.
  const std::string id = submit(*alice, {.spec = kSpec, .client = "bob"});
  auto mine = alice->call<proto::Job>(proto::GetStatus{.job_id = id});
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->job.client, "alice");

  auto cancel = bob->call<proto::Ok>(proto::CancelJob{.job_id = id});
  ASSERT_FALSE(cancel);
  EXPECT_EQ(cancel.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(cancel.error().message(), HasSubstr("job " + id + " is not yours"));
  auto peek = bob->call<proto::Job>(proto::GetStatus{.job_id = id});
  ASSERT_FALSE(peek);
  EXPECT_THAT(peek.error().message(), HasSubstr("is not yours"));
  auto log = bob->call<proto::Log>(proto::ReadLog{.job_id = id});
  ASSERT_FALSE(log);
  auto bobs = bob->call<proto::Jobs>(proto::ListJobs{});
  ASSERT_TRUE(bobs);
  EXPECT_EQ(bobs->total, 0u);
  auto alices = alice->call<proto::Jobs>(proto::ListJobs{});
  ASSERT_TRUE(alices);
  EXPECT_EQ(alices->total, 1u);

  // Admin things are for admins.
  auto workers = alice->call<proto::Workers>(proto::ListWorkers{});
  ASSERT_FALSE(workers);
  EXPECT_THAT(workers.error().message(), HasSubstr("listing workers needs an admin key; alice is a client key"));
  auto w1 = worker_process("w1", "w1");
  ASSERT_TRUE(eventually([&] { return worker_connected(*ops, "w1"); })) << w1->log();
  auto pause = alice->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "pause"});
  ASSERT_FALSE(pause);
  EXPECT_THAT(pause.error().message(), HasSubstr("pause of a worker needs an admin key"));
  auto get = alice->call<proto::ContextChunk>(proto::GetContext{.digest = "sha256:" + std::string(64, 'a')});
  ASSERT_FALSE(get);
  EXPECT_THAT(get.error().message(), HasSubstr("downloading a build context needs an admin key"));

  EXPECT_TRUE(ops->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "pause"}));
  EXPECT_TRUE(ops->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "unpause"}));
  auto all = ops->call<proto::Jobs>(proto::ListJobs{});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->total, 1u);
  const std::string other = submit(*bob);
  auto by_admin = ops->call<proto::Ok>(proto::CancelJob{.job_id = other});
  EXPECT_TRUE(by_admin) << by_admin.error().to_string();
}

TEST_F(Security, ARemovedKeyIsRefusedAndItsConnectionsClosedWithoutARestart) {
  auto alice = as("alice");
  auto ops = as("ops");
  ASSERT_TRUE(alice && ops);
  ASSERT_TRUE(alice->call<proto::Jobs>(proto::ListJobs{}));
  auto w1 = worker_process("w1", "w1");
  ASSERT_TRUE(eventually([&] { return worker_connected(*ops, "w1"); })) << w1->log();

  fs::remove(auth_ + "/clients/alice.pub");
  fs::remove(auth_ + "/workers/w1.pub");
  const auto removed = std::chrono::steady_clock::now();
  // The worker is cut off and cannot come back: it exits, saying why.
  EXPECT_EQ(w1->wait(15s), 2) << w1->log();
  EXPECT_LT(std::chrono::steady_clock::now() - removed, 10s);
  EXPECT_THAT(w1->log(), HasSubstr("refused this key"));
  EXPECT_FALSE(worker_connected(*ops, "w1"));
  // The client's next request fails, with the reason.
  auto after = alice->call<proto::Jobs>(proto::ListJobs{}, 5s);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_THAT(after.error().message(), HasSubstr("refused this key"));
  // A new connection with it too.
  EXPECT_FALSE(try_as("alice"));
  EXPECT_THAT(scheduler_->child().log(), HasSubstr("client:alice: its key was removed from the auth directory"));
  // Keys added later work at once.
  fs::copy_file(keys_ + "/stranger.pub", auth_ + "/clients/stranger.pub");
  EXPECT_TRUE(eventually([&] { return try_as("stranger").has_value(); }, 10s));
}

// The attack from the issue that made kiln loopback-only: a peer that is
// not the worker registers as a worker, takes a job, reads its secret and
// reports a made-up result. Every step of it is refused now.
TEST_F(Security, ARogueWorkerGetsNoJobNoSecretAndCannotForgeAResult) {
  auto alice = as("alice");
  auto ops = as("ops");
  auto w1 = worker_process("w1", "w1", "3");
  ASSERT_TRUE(eventually([&] { return worker_connected(*ops, "w1"); })) << w1->log();
  ASSERT_TRUE(ops->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "pause"}));
  const std::string id = submit(*alice, {.spec = kSpec, .secrets = {{.id = "token", .value = "s3cr3t-value"}}});

  // 1. No key at all: the handshake fails; nothing is received.
  RawWorker anonymous(scheduler_->worker_endpoint(), "w1");
  anonymous.send_register(4);
  EXPECT_FALSE(anonymous.next(1500ms));
  // 2. A client key on the worker port: refused at the handshake.
  RawWorker with_client_key(scheduler_->worker_endpoint(), "w1", keys_of("alice"));
  with_client_key.send_register(4);
  EXPECT_FALSE(with_client_key.next(1500ms));
  // 3. Another worker's key claiming w1's name.
  RawWorker w2_as_w1(scheduler_->worker_endpoint(), "w1", keys_of("w2"));
  w2_as_w1.send_register(4);
  auto refused = w2_as_w1.expect<proto::ErrorReply>(3s);
  ASSERT_TRUE(refused);
  EXPECT_THAT(refused->message, HasSubstr("may register only as \"w2\""));
  // 4. ... or w1's routing id, to receive what is sent to w1.
  RawWorker w2_routed_as_w1(scheduler_->worker_endpoint(), "w2", keys_of("w2"), "w1");
  w2_routed_as_w1.send_register(4);
  auto no_route = w2_routed_as_w1.expect<proto::ErrorReply>(3s);
  ASSERT_TRUE(no_route);
  EXPECT_THAT(no_route->message, HasSubstr("sets no ZeroMQ routing id"));
  // 5. The job runs on w1 (a 3 s build). Registered as itself, w2 may not
  // report on it.
  ASSERT_TRUE(ops->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "unpause"}));
  ASSERT_TRUE(eventually([&] {
    auto s = alice->call<proto::Job>(proto::GetStatus{.job_id = id});
    return s && s->job.state == "running";
  }));
  RawWorker w2(scheduler_->worker_endpoint(), "w2", keys_of("w2"));
  w2.register_worker(1);
  w2.event(proto::Type::kJobLog, id, 1, "forged output\n");
  w2.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, 'f'));
  // Told to stop what is not its job; the report changes nothing.
  auto told_off = w2.expect<proto::CancelAssigned>(3s);
  ASSERT_TRUE(told_off) << "the forged report was not refused";
  EXPECT_EQ(told_off->job_id, id);
  auto running = alice->call<proto::Job>(proto::GetStatus{.job_id = id});
  ASSERT_TRUE(running);
  EXPECT_EQ(running->job.state, "running") << "a forged report ended the job";
  auto after = alice->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 10000}, 15s);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->job.state, "succeeded");
  EXPECT_EQ(after->job.worker, "w1");
  auto log = alice->call<proto::Log>(proto::ReadLog{.job_id = id});
  ASSERT_TRUE(log);
  EXPECT_THAT(log->data, Not(HasSubstr("forged output")));
  EXPECT_NE(after->job.result, std::string(64, 'f'));
  EXPECT_EQ(after->job.attempts.size(), 1u);
  // Nothing the rogue peers received carried the secret.
  for (RawWorker* rogue : {&anonymous, &with_client_key, &w2_as_w1, &w2_routed_as_w1, &w2}) {
    while (auto frame = rogue->next(200ms)) EXPECT_EQ(frame->body.find("s3cr3t-value"), std::string::npos);
  }
}

}  // namespace
}  // namespace kiln::testing
