// The scheduler as a process, driven over real ZeroMQ sockets by clients and
// by hand-written "raw" workers (raw_peers.h): the protocol's guarantees
// (docs/protocol.md) one by one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/id_set_digest.h"
#include "common/sha256.h"
#include "tests/farm/raw_peers.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kSpec = "((from busybox) (run (shell \"echo hello\")))";

proto::Submit submit_of(const std::string& spec = kSpec, bool urgent = false) {
  return proto::Submit{.job = {.spec = spec, .spec_name = "hello.spec", .urgent = urgent}};
}

std::string submit(proto::Client& client, proto::Submit s = submit_of()) {
  auto r = client.call<proto::Submitted>(s);
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? r->job_id : "";
}

proto::JobInfo status(proto::Client& client, const std::string& id, std::uint32_t wait_ms = 0) {
  auto r = client.call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = wait_ms});
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? r->job : proto::JobInfo{};
}

class SchedulerProtocol : public ::testing::Test {
 protected:
  TempDir dir;
};

TEST_F(SchedulerProtocol, SubmitRunsOnAWorkerAndRecordsTheResult) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client("ci-1");
  RawWorker w(s.worker_endpoint(), "w1");
  auto reg = w.register_worker(2);
  EXPECT_EQ(reg.lease_ms, 10000u);
  EXPECT_EQ(reg.state, "active");

  const std::string id = submit(*client);
  auto assign = w.expect<proto::Assign>();
  ASSERT_TRUE(assign);
  EXPECT_EQ(assign->job_id, id);
  EXPECT_EQ(assign->attempt, 1u);
  EXPECT_EQ(assign->job.spec, kSpec);
  EXPECT_EQ(assign->job.pool, "linux-x86_64");
  EXPECT_EQ(status(*client, id).state, "assigned");

  w.event(proto::Type::kJobStarted, id, 1);
  w.event(proto::Type::kJobLog, id, 1, "hello\n");
  w.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, 'b'));
  auto done = status(*client, id, 5000);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.worker, "w1");
  EXPECT_EQ(done.result, std::string(64, 'b'));
  ASSERT_EQ(done.steps.size(), 1u);
  EXPECT_DOUBLE_EQ(done.steps[0].seconds, 0.25);
  ASSERT_EQ(done.attempts.size(), 1u);
  EXPECT_EQ(done.attempts[0].outcome, "succeeded");
  EXPECT_EQ(done.client, "ci-1");
  EXPECT_GT(done.finished_at_ms, 0);
  EXPECT_EQ(done.log_bytes, 6u);

  auto workers = client->call<proto::Workers>(proto::ListWorkers{});
  ASSERT_TRUE(workers);
  ASSERT_EQ(workers->workers.size(), 1u);
  EXPECT_EQ(workers->workers[0].name, "w1");
  EXPECT_EQ(workers->workers[0].capacity, 2u);
  EXPECT_TRUE(workers->workers[0].running.empty());
}

TEST_F(SchedulerProtocol, BadSpecsAndMissingContextsAreRefusedAtSubmit) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  auto bad = client->call<proto::Submitted>(submit_of("((from busybox) (run (shel \"x\")))"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("hello.spec:1:"));

  auto tar = submit_of();
  tar.job.context = {.kind = proto::ContextRef::Kind::kTar, .digest = "sha256:" + std::string(64, 'c')};
  auto missing = client->call<proto::Submitted>(tar);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().message(), HasSubstr("has not been uploaded"));

  auto git = submit_of();
  git.job.context = {.kind = proto::ContextRef::Kind::kGit, .git_repo = "/r", .git_commit = "abc"};
  auto short_commit = client->call<proto::Submitted>(git);
  ASSERT_FALSE(short_commit);
  EXPECT_THAT(short_commit.error().message(), HasSubstr("40-hex commit"));
}

TEST_F(SchedulerProtocol, LogsAreServedByOffsetAndFollowedLive) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  const std::string id = submit(*client);
  ASSERT_TRUE(w.expect<proto::Assign>());
  w.event(proto::Type::kJobStarted, id, 1);
  w.event(proto::Type::kJobLog, id, 1, "line one\n");
  ASSERT_TRUE(eventually([&] { return status(*client, id).log_bytes == 9; }));

  auto from4 = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 4});
  ASSERT_TRUE(from4);
  EXPECT_EQ(from4->data, " one\n");
  EXPECT_FALSE(from4->complete);

  // A follower waiting at the end is answered as soon as more arrives.
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    w.event(proto::Type::kJobLog, id, 1, "line two\n");
  });
  auto start = std::chrono::steady_clock::now();
  auto follow = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 9, .wait_ms = 10000});
  later.join();
  ASSERT_TRUE(follow);
  EXPECT_EQ(follow->data, "line two\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 9s);  // answered by the data, not the wait running out

  w.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, 'b'));
  auto end = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 18, .wait_ms = 10000});
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->data.empty());
  EXPECT_TRUE(end->complete);
  EXPECT_EQ(end->state, "succeeded");
  // Resuming from any offset after the fact (a broken connection) works too.
  auto whole = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 0});
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->data, "line one\nline two\n");
  EXPECT_TRUE(whole->complete);
}

TEST_F(SchedulerProtocol, LogsOverTheCapAreTruncatedAndMarked) {
  SchedulerProcess s(dir.path() + "/s", {"--log-cap-bytes", "100"});
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  const std::string id = submit(*client);
  ASSERT_TRUE(w.expect<proto::Assign>());
  for (int i = 0; i < 5; ++i) w.event(proto::Type::kJobLog, id, 1, std::string(40, 'x') + "\n");
  w.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, 'b'));
  status(*client, id, 5000);
  auto log = client->call<proto::Log>(proto::ReadLog{.job_id = id, .offset = 0, .max_bytes = 4096});
  ASSERT_TRUE(log);
  EXPECT_EQ(log->data.substr(0, 100).find("[kiln"), std::string::npos);
  EXPECT_THAT(log->data, HasSubstr("[kiln: log truncated: over 100 bytes]"));
  EXPECT_LT(log->data.size(), 160u);
}

TEST_F(SchedulerProtocol, CancelQueuedAndRunningJobs) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  // No worker yet: the job stays queued and cancels at once.
  const std::string queued = submit(*client);
  ASSERT_TRUE(client->call<proto::Ok>(proto::CancelJob{.job_id = queued}));
  EXPECT_EQ(status(*client, queued).state, "cancelled");
  auto again = client->call<proto::Ok>(proto::CancelJob{.job_id = queued});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kFailedPrecondition);

  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  const std::string running = submit(*client);
  auto assign = w.expect<proto::Assign>();
  ASSERT_TRUE(assign);
  EXPECT_EQ(assign->job_id, running);  // the cancelled job was never sent
  w.event(proto::Type::kJobStarted, running, 1);
  ASSERT_TRUE(client->call<proto::Ok>(proto::CancelJob{.job_id = running}));
  auto cancel = w.expect<proto::CancelAssigned>();
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->job_id, running);
  EXPECT_EQ(cancel->attempt, 1u);
  w.event(proto::Type::kJobDone, running, 1, "", "cancelled");
  EXPECT_EQ(status(*client, running, 5000).state, "cancelled");
}

TEST_F(SchedulerProtocol, ALostWorkersJobMovesAndItsLateReportIsIgnored) {
  SchedulerProcess s(dir.path() + "/s", {"--lease-ms", "800", "--heartbeat-ms", "100"});
  auto client = s.client();
  RawWorker a(s.worker_endpoint(), "wa");
  a.register_worker(1);
  const std::string id = submit(*client);
  auto first = a.expect<proto::Assign>();
  ASSERT_TRUE(first);
  a.event(proto::Type::kJobStarted, id, 1);
  // wa goes silent; wb heartbeats and gets the job after the lease.
  RawWorker b(s.worker_endpoint(), "wb");
  b.register_worker(1);
  std::optional<proto::Assign> second;
  ASSERT_TRUE(eventually([&] {
    b.heartbeat();
    if (auto f = b.next(50ms); f && f->type == proto::Type::kAssign)
      second = *proto::decode<proto::Assign>(f->body);
    return second.has_value();
  })) << s.child().log();
  EXPECT_EQ(second->job_id, id);
  EXPECT_EQ(second->attempt, 2u);
  b.event(proto::Type::kJobStarted, id, 2);
  // wa wakes up and reports a success: it is no longer registered (told to
  // register again), and its report changes nothing.
  a.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, '1'));
  auto rereg = a.expect<proto::Reregister>();
  ASSERT_TRUE(rereg);
  a.register_worker(1, {{id, 1}});
  auto stale = a.expect<proto::CancelAssigned>();
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->attempt, 1u);
  a.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, '1'));
  EXPECT_EQ(status(*client, id).state, "running");

  b.event(proto::Type::kJobDone, id, 2, "", "succeeded", std::string(64, '2'));
  auto done = status(*client, id, 5000);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.result, std::string(64, '2'));
  EXPECT_EQ(done.worker, "wb");
  ASSERT_EQ(done.attempts.size(), 2u);
  EXPECT_EQ(done.attempts[0].outcome, "lost");
  EXPECT_EQ(done.attempts[1].outcome, "succeeded");
}

TEST_F(SchedulerProtocol, AJobInterruptedByAStoppingWorkerRunsAgainElsewhere) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  RawWorker a(s.worker_endpoint(), "wa");
  a.register_worker(1);
  const std::string id = submit(*client);
  ASSERT_TRUE(a.expect<proto::Assign>());
  a.event(proto::Type::kJobStarted, id, 1);
  ASSERT_TRUE(client->call<proto::Ok>(proto::WorkerAction{.worker = "wa", .action = "drain"}));
  a.event(proto::Type::kJobDone, id, 1, "", "interrupted");
  RawWorker b(s.worker_endpoint(), "wb");
  b.register_worker(1);
  auto again = b.expect<proto::Assign>();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, id);
  EXPECT_EQ(again->attempt, 2u);
  auto job = status(*client, id);
  ASSERT_EQ(job.attempts.size(), 2u);
  EXPECT_EQ(job.attempts[0].outcome, "lost");
}

TEST_F(SchedulerProtocol, MalformedAndOversizedFramesGetErrorsAndServiceContinues) {
  SchedulerProcess s(dir.path() + "/s");
  zmq::context_t ctx(1);
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(s.client_endpoint());
  auto expect_error = [&](const std::vector<std::string>& frames, const std::string& what) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      raw.send(zmq::buffer(frames[i]),
               i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&item, 1, 10s), 1) << "no answer to " << what;
    auto frame = proto::receive(raw, false);
    ASSERT_TRUE(frame);
    ASSERT_EQ(frame->type, proto::Type::kError) << what;
    auto error = proto::decode<proto::ErrorReply>(frame->body);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, "invalid argument") << what;
    EXPECT_FALSE(error->message.empty());
  };
  expect_error({"submit"}, "one frame");
  expect_error({"submit", "x", "y"}, "three frames");
  expect_error({"no-such-type", std::string(16, '\0')}, "unknown type");
  expect_error({"submit", std::string(24, '\xff')}, "garbage body");
  expect_error({"register", std::string(8, '\0')}, "worker message on the client port");
  expect_error({"submit", std::string(9u << 20, 'x')}, "oversized body");

  // Still serving.
  auto client = s.client();
  EXPECT_FALSE(submit(*client).empty());
  EXPECT_TRUE(s.child().running());
  EXPECT_THAT(s.child().log(), HasSubstr("unknown message type"));
}

// A submit too large to take is answered with its own request id, so the
// client that sent it gets the error at once (it used to wait 30 s and
// report the scheduler unreachable).
TEST_F(SchedulerProtocol, AnOversizedSubmitIsAnsweredToItsRequest) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  const auto began = std::chrono::steady_clock::now();
  auto r = client->call<proto::Submitted>(submit_of(std::string(50u << 20, ' ') + kSpec), 20s);
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("message too large: submit body is"));
  EXPECT_THAT(r.error().message(), HasSubstr("the limit is 8388608 bytes"));
  EXPECT_LT(took, 15s) << "the error did not reach the request: the call waited for its time-out";
}

TEST_F(SchedulerProtocol, AnIncompatibleProtocolVersionIsRefusedClearly) {
  SchedulerProcess s(dir.path() + "/s");
  zmq::context_t ctx(1);
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(s.client_endpoint());
  proto::send(raw, proto::Hello{.protocol_version = 99, .request_id = 5, .client = "old"});
  zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&item, 1, 10s), 1);
  auto frame = proto::receive(raw, false);
  ASSERT_TRUE(frame);
  ASSERT_EQ(frame->type, proto::Type::kError);
  auto error = proto::decode<proto::ErrorReply>(frame->body);
  EXPECT_EQ(error->request_id, 5u);
  EXPECT_EQ(error->kind, "failed precondition");
  EXPECT_THAT(error->message, HasSubstr("protocol version 99 is not supported"));

  RawWorker w(s.worker_endpoint(), "w-old");
  w.send_register(1, {}, 2);
  auto refused = w.expect<proto::ErrorReply>();
  ASSERT_TRUE(refused);
  EXPECT_THAT(refused->message, HasSubstr("protocol version 2 is not supported"));
  auto client = s.client();
  auto workers = client->call<proto::Workers>(proto::ListWorkers{});
  ASSERT_TRUE(workers);
  EXPECT_TRUE(workers->workers.empty());
}

TEST_F(SchedulerProtocol, KillNineKeepsTheQueueAndWorkersReclaimTheirJobs) {
  SchedulerProcess s(dir.path() + "/s", {"--lease-ms", "2000", "--heartbeat-ms", "100"});
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  const std::string running = submit(*client);
  auto assign = w.expect<proto::Assign>();
  ASSERT_TRUE(assign);
  w.event(proto::Type::kJobStarted, running, 1);
  w.event(proto::Type::kJobLog, running, 1, "before the crash\n");
  std::vector<std::string> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(submit(*client));
  ASSERT_TRUE(eventually([&] { return status(*client, running).log_bytes > 0; }));

  s.child().kill_now();
  s.restart();
  client = s.client();
  for (const std::string& id : queued) EXPECT_EQ(status(*client, id).state, "queued") << id;
  // The worker hears "reregister" on its next heartbeat and reclaims its job.
  w.heartbeat({{running, 1}});
  ASSERT_TRUE(w.expect<proto::Reregister>());
  w.register_worker(1, {{running, 1}});
  EXPECT_EQ(status(*client, running).state, "running");
  w.event(proto::Type::kJobLog, running, 1, "after\n");
  w.event(proto::Type::kJobDone, running, 1, "", "succeeded", std::string(64, 'r'));
  auto done = status(*client, running, 5000);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.attempts.size(), 1u);
  auto log = client->call<proto::Log>(proto::ReadLog{.job_id = running, .offset = 0});
  ASSERT_TRUE(log);
  EXPECT_EQ(log->data, "before the crash\nafter\n");
  // The queued jobs then run, each once, in order.
  std::set<std::string> seen;
  for (std::size_t i = 0; i < queued.size(); ++i) {
    auto next = w.expect<proto::Assign>();
    ASSERT_TRUE(next) << "job " << i;
    EXPECT_TRUE(seen.insert(next->job_id).second);
    w.event(proto::Type::kJobDone, next->job_id, next->attempt, "", "succeeded", std::string(64, 'q'));
  }
  EXPECT_EQ(seen, std::set<std::string>(queued.begin(), queued.end()));
}

TEST_F(SchedulerProtocol, UnreclaimedJobsReturnToTheQueueAfterTheLease) {
  SchedulerProcess s(dir.path() + "/s", {"--lease-ms", "600", "--heartbeat-ms", "100"});
  auto client = s.client();
  {
    RawWorker gone(s.worker_endpoint(), "gone");
    gone.register_worker(1);
    const std::string id = submit(*client);
    ASSERT_TRUE(gone.expect<proto::Assign>());
    s.child().kill_now();
    s.restart();
    client = s.client();
    RawWorker other(s.worker_endpoint(), "other");
    other.register_worker(1);
    std::optional<proto::Assign> moved;
    ASSERT_TRUE(eventually([&] {
      other.heartbeat();
      if (auto f = other.next(50ms); f && f->type == proto::Type::kAssign)
        moved = *proto::decode<proto::Assign>(f->body);
      return moved.has_value();
    }));
    EXPECT_EQ(moved->job_id, id);
    EXPECT_EQ(moved->attempt, 2u);
  }
}

TEST_F(SchedulerProtocol, ContextsUploadInChunksDedupAndAreVerified) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  std::string tar(2'500'000, '\0');
  for (std::size_t i = 0; i < tar.size(); ++i) tar[i] = static_cast<char>(i * 7 % 251);
  const std::string digest = "sha256:" + sha256_hex(tar);
  std::uint64_t offset = 0;
  bool complete = false;
  while (!complete) {
    std::string chunk = tar.substr(offset, 1 << 20);
    auto ack = client->call<proto::ContextAck>(
        proto::PutContext{.digest = digest, .total_size = tar.size(), .offset = offset, .data = chunk});
    ASSERT_TRUE(ack) << ack.error().to_string();
    offset = ack->received;
    complete = ack->complete;
  }
  EXPECT_EQ(offset, tar.size());
  // A second upload stops after its first chunk.
  auto dedup = client->call<proto::ContextAck>(proto::PutContext{
      .digest = digest, .total_size = tar.size(), .offset = 0, .data = tar.substr(0, 1 << 20)});
  ASSERT_TRUE(dedup);
  EXPECT_TRUE(dedup->complete);
  // Out of order: told where to resume.
  const std::string other = "sha256:" + sha256_hex("other");
  auto ahead = client->call<proto::ContextAck>(
      proto::PutContext{.digest = other, .total_size = 10, .offset = 5, .data = "12345"});
  ASSERT_TRUE(ahead);
  EXPECT_EQ(ahead->received, 0u);
  EXPECT_FALSE(ahead->complete);
  // Wrong bytes for the digest: refused.
  auto wrong = client->call<proto::ContextAck>(
      proto::PutContext{.digest = other, .total_size = 5, .offset = 0, .data = "wrong"});
  ASSERT_FALSE(wrong);
  EXPECT_THAT(wrong.error().message(), HasSubstr("does not match its digest"));

  // A worker reads a context back only for a job assigned to it (real tar
  // contexts fetched by workers: farm_e2e_test); any other is refused.
  RawWorker w(s.worker_endpoint(), "w1");
  proto::send(w.socket(), proto::GetContext{.request_id = 9, .digest = digest, .offset = 2'000'000});
  auto chunk = w.expect<proto::ErrorReply>();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->request_id, 9u);
  EXPECT_THAT(chunk->message, HasSubstr("belongs to no job assigned to this worker"));
  // A submit naming it is read (for the job's step ids): these bytes are no
  // tar, which is refused up front rather than on a worker. (Real tar
  // contexts: farm_e2e_test.)
  auto job = submit_of();
  job.job.context = {.kind = proto::ContextRef::Kind::kTar, .digest = digest, .size = tar.size()};
  auto refused = client->call<proto::Submitted>(job);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(refused.error().message(), HasSubstr("not a readable tar"));
}

TEST_F(SchedulerProtocol, AJobOverItsTimeoutFails) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  auto job = submit_of();
  job.job.timeout_seconds = 1;
  const std::string id = submit(*client, job);
  ASSERT_TRUE(w.expect<proto::Assign>());
  w.event(proto::Type::kJobStarted, id, 1);
  auto cancel = w.expect<proto::CancelAssigned>(5s);
  ASSERT_TRUE(cancel);
  auto done = status(*client, id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_THAT(done.error, HasSubstr("timed out after 1 s"));
}

TEST_F(SchedulerProtocol, PausedAndDrainingWorkersGetNothingNew) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(2);
  ASSERT_TRUE(client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "pause"}));
  auto state = w.expect<proto::WorkerState>();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->state, "paused");
  const std::string id = submit(*client);
  EXPECT_FALSE(w.expect<proto::Assign>(500ms));
  EXPECT_EQ(status(*client, id).state, "queued");
  ASSERT_TRUE(client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "unpause"}));
  auto assign = w.expect<proto::Assign>();
  ASSERT_TRUE(assign);
  EXPECT_EQ(assign->job_id, id);
  // forget refuses a connected worker; unknown actions and workers are errors.
  auto forget = client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "forget"});
  ASSERT_FALSE(forget);
  EXPECT_EQ(forget.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_FALSE(client->call<proto::Ok>(proto::WorkerAction{.worker = "nobody", .action = "pause"}));
  EXPECT_FALSE(client->call<proto::Ok>(proto::WorkerAction{.worker = "w1", .action = "explode"}));
}

// Low-disk and unhealthy workers, as their heartbeats report them, get no
// new jobs until they report enough disk and health again.
TEST_F(SchedulerProtocol, LowDiskAndUnhealthyWorkersGetNothingNew) {
  SchedulerProcess s(dir.path() + "/s", {"--low-disk-bytes", std::to_string(10ull << 30)});
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(2);
  proto::Heartbeat low;
  low.stats.healthy = true;
  low.stats.disk_free_bytes = 1ull << 30;  // 1 GiB free, below 10 GiB
  low.stats.disk_total_bytes = 200ull << 30;
  proto::send(w.socket(), low);
  ASSERT_TRUE(eventually([&] {
    auto workers = client->call<proto::Workers>(proto::ListWorkers{});
    return workers && workers->workers.size() == 1 &&
           workers->workers[0].stats.disk_free_bytes == (1ull << 30);
  }));
  const std::string id = submit(*client);
  EXPECT_FALSE(w.expect<proto::Assign>(500ms));
  EXPECT_EQ(status(*client, id).state, "queued");

  proto::Heartbeat sick = low;
  sick.stats.disk_free_bytes = 100ull << 30;
  sick.stats.healthy = false;  // enough disk now, but its healthcheck fails
  proto::send(w.socket(), sick);
  EXPECT_FALSE(w.expect<proto::Assign>(500ms));
  EXPECT_EQ(status(*client, id).state, "queued");

  w.heartbeat();  // healthy, 100 GiB free
  auto assign = w.expect<proto::Assign>();
  ASSERT_TRUE(assign);
  EXPECT_EQ(assign->job_id, id);
}

// A worker that registers again on the same connection (asked to by a drift
// check, say) before it has read an assign just sent keeps that job: it is
// not requeued as lost, and the assign it then reads is the one that runs.
// (A worker on a new connection has lost it: see the kill -9 test.)
TEST_F(SchedulerProtocol, AnAssignInFlightSurvivesARegistrationOnTheSameConnection) {
  SchedulerProcess s(dir.path() + "/s");
  auto client = s.client();
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  const std::string id = submit(*client);
  ASSERT_TRUE(eventually([&] { return status(*client, id).state == "assigned"; }));
  // Registers again listing nothing, as if the assign were still unread.
  w.send_register(1);
  // Everything that arrives: the first assign, now read, then "registered",
  // and no second assign.
  bool registered = false;
  std::vector<std::uint32_t> attempts;
  while (auto frame = w.next(1000ms)) {
    if (frame->type == proto::Type::kRegistered) registered = true;
    if (frame->type == proto::Type::kAssign)
      attempts.push_back(proto::decode<proto::Assign>(frame->body)->attempt);
  }
  EXPECT_TRUE(registered);
  EXPECT_EQ(attempts, std::vector<std::uint32_t>{1});
  proto::JobInfo job = status(*client, id);
  EXPECT_EQ(job.attempt, 1u);
  EXPECT_EQ(job.state, "assigned");
  w.event(proto::Type::kJobStarted, id, 1);
  w.event(proto::Type::kJobDone, id, 1, "", "succeeded", std::string(64, 'b'));
  EXPECT_EQ(status(*client, id, 5000).state, "succeeded");
}

// The drift check: inventory messages and heartbeats carry the digest of
// what the worker told the scheduler its store holds. While the index
// agrees nothing happens; when they disagree (here: the worker "lost" an
// id without saying so), the scheduler asks it to register again, which
// resends the full inventory.
TEST_F(SchedulerProtocol, InventoryDriftIsCaughtByHeartbeatsAndRepaired) {
  SchedulerProcess s(dir.path() + "/s");
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(1);
  auto raw = [](const std::string& name) {
    Digest d = [&] {
      Sha256 h;
      h.update(name);
      return h.digest();
    }();
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  };
  auto digest_of = [](const std::vector<std::string>& ids) {
    IdSetDigest d;
    for (const std::string& id : ids) d.add(id);
    Digest v = d.value();
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
  };
  const std::string a = raw("step-a"), b = raw("step-b");
  proto::send(w.socket(), proto::Inventory{.full = true, .added = {a, b}, .set_digest = digest_of({a, b})});
  proto::Heartbeat beat;
  beat.stats.healthy = true;
  beat.stats.disk_free_bytes = 100ull << 30;
  beat.stats.disk_total_bytes = 200ull << 30;
  beat.inventory_digest = digest_of({a, b});
  proto::send(w.socket(), beat);
  EXPECT_FALSE(w.expect<proto::Reregister>(500ms));  // in step

  beat.inventory_digest = digest_of({a});  // b went without a removal
  proto::send(w.socket(), beat);
  auto again = w.expect<proto::Reregister>();
  ASSERT_TRUE(again);
  EXPECT_THAT(again->reason, HasSubstr("cache inventory out of step"));

  // Registering again with the full set puts both back in step.
  w.register_worker(1);
  proto::send(w.socket(), proto::Inventory{.full = true, .added = {a}, .set_digest = digest_of({a})});
  proto::send(w.socket(), beat);
  EXPECT_FALSE(w.expect<proto::Reregister>(500ms));
}

TEST_F(SchedulerProtocol, ManyClientsAtOnceEachJobRunsExactlyOnce) {
  SchedulerProcess s(dir.path() + "/s");
  RawWorker w(s.worker_endpoint(), "w1");
  w.register_worker(8);
  constexpr int kClients = 8, kJobsEach = 25;
  std::atomic<bool> stop{false};
  std::multiset<std::string> ran;
  std::thread worker([&] {
    while (!stop) {
      auto f = w.next(50ms);
      if (!f || f->type != proto::Type::kAssign) continue;
      auto a = proto::decode<proto::Assign>(f->body);
      ran.insert(a->job_id);
      w.event(proto::Type::kJobDone, a->job_id, a->attempt, "", "succeeded", std::string(64, 'd'));
    }
  });
  std::vector<std::thread> clients;
  std::vector<std::vector<std::string>> ids(kClients);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = proto::Client::connect(s.client_endpoint(), "client-" + std::to_string(c));
      if (!client) return;
      for (int j = 0; j < kJobsEach; ++j) {
        auto r = (*client)->call<proto::Submitted>(submit_of());
        if (r) ids[c].push_back(r->job_id);
      }
      for (const std::string& id : ids[c])
        EXPECT_TRUE((*client)->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 20000}));
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  worker.join();
  auto client = s.client();
  std::set<std::string> all;
  for (auto& list : ids) {
    EXPECT_EQ(list.size(), static_cast<std::size_t>(kJobsEach));
    for (const std::string& id : list) {
      all.insert(id);
      EXPECT_EQ(status(*client, id).state, "succeeded") << id;
    }
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kClients * kJobsEach));
  EXPECT_EQ(ran.size(), all.size());  // each ran once
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()), all);
}

}  // namespace
}  // namespace kiln::testing
