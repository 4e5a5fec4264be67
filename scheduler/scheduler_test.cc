// The scheduler's core driven through its messages, without sockets: a fake
// clock, the in-memory job database, the real placement policy. Leases,
// attempts, requeues, reclaim after a restart, timeouts, cancellation, held
// replies, and exactly one recorded result per job. (tests/farm/ drives the
// same core as a process over real ZeroMQ sockets.)
#include "scheduler/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "scheduler/testing/core_fixture.h"

namespace kiln::scheduler {
namespace {

using ::testing::HasSubstr;
using testing_support::FakeClock;
using testing_support::kSpec;
using testing_support::Replies;
using testing_support::SchedulerCore;

TEST_F(SchedulerCore, AJobRunsOnAWorkerAndHasExactlyOneResult) {
  register_worker("w1");
  const std::string id = submit();
  auto assign = last_submit_turn().one<proto::Assign>("w1");
  EXPECT_EQ(assign.job_id, id);
  EXPECT_EQ(assign.attempt, 1u);
  EXPECT_EQ(assign.job.spec, kSpec);
  EXPECT_EQ(status(id).state, "assigned");

  event("w1", proto::Type::kJobStarted, id, 1);
  event("w1", proto::Type::kJobLog, id, 1, "", "hello\n");
  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", std::string(64, 'a'));
  turn();
  // A second report of the same attempt (a resend after a reconnect) changes nothing.
  event("w1", proto::Type::kJobDone, id, 1, "failed", "", std::string(64, 'b'));
  turn();
  auto done = status(id);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.result, std::string(64, 'a'));
  EXPECT_EQ(done.worker, "w1");
  EXPECT_EQ(done.log_bytes, 6u);
  ASSERT_EQ(done.attempts.size(), 1u);
  EXPECT_EQ(done.attempts[0].outcome, "succeeded");
  EXPECT_EQ(done.finished_at_ms, clock_.wall_ms());
  // Stored, not only in memory.
  auto record = MemoryJobDb(store_).get_job(*seq_of(id));
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->state, "succeeded");
}

TEST_F(SchedulerCore, ASilentWorkerLosesItsJobToAnotherWithANewAttempt) {
  register_worker("w1");
  const std::string id = submit();
  ASSERT_EQ(last_submit_turn().to<proto::Assign>("w1").size(), 1u);
  event("w1", proto::Type::kJobStarted, id, 1);
  event("w1", proto::Type::kJobLog, id, 1, "", "partial output\n");
  turn();
  register_worker("w2");

  // w2 keeps its lease; w1 goes silent past it.
  for (int i = 0; i < 11; ++i) {
    clock_.advance(1'000);
    heartbeat("w2");
    auto out = turn();
    if (i < 9) {
      EXPECT_TRUE(out.to<proto::Assign>("w2").empty()) << "requeued before the lease ran out";
    }
  }
  auto job = status(id);
  EXPECT_EQ(job.state, "assigned");
  EXPECT_EQ(job.worker, "w2");
  EXPECT_EQ(job.attempt, 2u);
  ASSERT_EQ(job.attempts.size(), 2u);
  EXPECT_EQ(job.attempts[0].outcome, "lost");

  // w1 wakes up and reports attempt 1: not its job any more.
  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", std::string(64, 'a'));
  auto out = turn();
  EXPECT_EQ(out.to<proto::Reregister>("w1").size(), 1u);
  // It registers again still listing attempt 1: told to cancel it.
  out = register_worker("w1", 1, {{.job_id = id, .attempt = 1}});
  auto cancel = out.one<proto::CancelAssigned>("w1");
  EXPECT_EQ(cancel.job_id, id);
  EXPECT_EQ(cancel.attempt, 1u);

  event("w2", proto::Type::kJobDone, id, 2, "succeeded", "", std::string(64, 'c'));
  turn();
  job = status(id);
  EXPECT_EQ(job.state, "succeeded");
  EXPECT_EQ(job.result, std::string(64, 'c'));
  // The log says an attempt was lost, after what it had printed.
  send(Port::kClients, "client", proto::ReadLog{.request_id = 3, .job_id = id});
  auto log = turn().one<proto::Log>("client");
  EXPECT_THAT(log.data, HasSubstr("partial output\n"));
  EXPECT_THAT(log.data, HasSubstr("[kiln: attempt 1 lost: worker w1 sent nothing for"));
  EXPECT_TRUE(log.complete);
}

TEST_F(SchedulerCore, ARunningJobIsReclaimedByItsWorkerAfterASchedulerRestart) {
  register_worker("w1");
  const std::string id = submit();
  event("w1", proto::Type::kJobStarted, id, 1);
  turn();
  start();  // restart on the committed data
  EXPECT_EQ(status(id).state, "running");

  auto out = register_worker("w1", 1, {{.job_id = id, .attempt = 1}});
  EXPECT_TRUE(out.to<proto::CancelAssigned>("w1").empty());
  // Well past a lease, with heartbeats: still attempt 1 on w1.
  for (int i = 0; i < 15; ++i) {
    clock_.advance(1'000);
    heartbeat("w1", {{.job_id = id, .attempt = 1}});
    EXPECT_TRUE(turn().to<proto::Assign>("w1").empty());
  }
  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", std::string(64, 'd'));
  turn();
  auto job = status(id);
  EXPECT_EQ(job.state, "succeeded");
  EXPECT_EQ(job.attempt, 1u);
  EXPECT_EQ(job.result, std::string(64, 'd'));
}

TEST_F(SchedulerCore, AJobNoWorkerReclaimsAfterARestartRunsAgainAfterALease) {
  register_worker("w1");
  const std::string id = submit();
  event("w1", proto::Type::kJobStarted, id, 1);
  turn();
  clock_.reboot();  // the host restarted too: its steady clock begins again
  start();
  register_worker("w2");
  clock_.advance(5'000);
  heartbeat("w2");
  EXPECT_TRUE(turn().to<proto::Assign>("w2").empty()) << "requeued before the lease ran out";
  clock_.advance(5'500);
  heartbeat("w2");
  auto assign = turn().one<proto::Assign>("w2");
  EXPECT_EQ(assign.job_id, id);
  EXPECT_EQ(assign.attempt, 2u);
  auto job = status(id);
  ASSERT_EQ(job.attempts.size(), 2u);
  EXPECT_EQ(job.attempts[0].outcome, "lost");
}

TEST_F(SchedulerCore, WhatWasNotCommittedIsLostWithAKilledScheduler) {
  send(Port::kClients, "client", proto::Submit{.request_id = 1, .job = {.spec = kSpec}});
  core_->tick();
  // Killed before the commit, so the reply was never sent either.
  start();
  send(Port::kClients, "client", proto::GetStatus{.request_id = 2, .job_id = "j1"});
  auto out = turn();
  auto error = out.one<proto::ErrorReply>("client");
  EXPECT_EQ(error.request_id, 2u);
  EXPECT_THAT(error.message, HasSubstr("no job \"j1\""));
  // The number is not reused wrongly: the next job is j1, stored this time.
  EXPECT_EQ(submit(), "j1");
  start();
  EXPECT_EQ(status("j1").state, "queued");
}

TEST_F(SchedulerCore, AFailedCommitIsReported) {
  send(Port::kClients, "client", proto::Submit{.request_id = 1, .job = {.spec = kSpec}});
  core_->tick();
  store_->fail_commits = true;
  auto committed = core_->commit();
  ASSERT_FALSE(committed);
  EXPECT_EQ(committed.error().kind(), ErrorKind::kIo);
}

TEST_F(SchedulerCore, ATimedOutJobFailsAndItsWorkerIsToldToStop) {
  register_worker("w1");
  const std::string id = submit({.spec = kSpec, .timeout_seconds = 5});
  event("w1", proto::Type::kJobStarted, id, 1);
  turn();
  for (int i = 0; i < 6; ++i) {
    clock_.advance(1'000);
    heartbeat("w1", {{.job_id = id, .attempt = 1}});
    auto out = turn();
    if (i == 5) {
      auto cancel = out.one<proto::CancelAssigned>("w1");
      EXPECT_EQ(cancel.job_id, id);
    }
  }
  auto job = status(id);
  EXPECT_EQ(job.state, "failed");
  EXPECT_THAT(job.error, HasSubstr("timed out after 5 s"));
  // The worker's late report changes nothing.
  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", std::string(64, 'e'));
  turn();
  EXPECT_EQ(status(id).state, "failed");
}

TEST_F(SchedulerCore, CancellingAQueuedJobEndsItAndARunningOneAsksItsWorker) {
  const std::string queued = submit();
  send(Port::kClients, "client", proto::CancelJob{.request_id = 4, .job_id = queued});
  EXPECT_EQ(turn().one<proto::Ok>("client").request_id, 4u);
  EXPECT_EQ(status(queued).state, "cancelled");
  register_worker("w1");
  EXPECT_TRUE(turn().to<proto::Assign>("w1").empty()) << "a cancelled job was placed";

  const std::string running = submit();
  event("w1", proto::Type::kJobStarted, running, 1);
  turn();
  send(Port::kClients, "client", proto::CancelJob{.request_id = 5, .job_id = running});
  auto out = turn();
  EXPECT_EQ(out.one<proto::CancelAssigned>("w1").job_id, running);
  EXPECT_EQ(status(running).state, "running");
  event("w1", proto::Type::kJobDone, running, 1, "cancelled");
  turn();
  EXPECT_EQ(status(running).state, "cancelled");

  send(Port::kClients, "client", proto::CancelJob{.request_id = 6, .job_id = running});
  auto error = turn().one<proto::ErrorReply>("client");
  EXPECT_THAT(error.message, HasSubstr("has already ended (cancelled)"));
}

TEST_F(SchedulerCore, ACancelledJobWhoseWorkerIsLostEndsCancelled) {
  register_worker("w1");
  const std::string id = submit();
  event("w1", proto::Type::kJobStarted, id, 1);
  send(Port::kClients, "client", proto::CancelJob{.request_id = 5, .job_id = id});
  turn();
  clock_.advance(11'000);
  turn();
  auto job = status(id);
  EXPECT_EQ(job.state, "cancelled");
  EXPECT_THAT(job.error, HasSubstr("worker w1 sent nothing"));
}

TEST_F(SchedulerCore, AnInterruptedAttemptRunsAgain) {
  register_worker("w1");
  const std::string id = submit();
  event("w1", proto::Type::kJobStarted, id, 1);
  event("w1", proto::Type::kJobDone, id, 1, "interrupted");
  auto out = turn();
  // Back in the queue, and placed again on the only worker: attempt 2.
  auto assign = out.one<proto::Assign>("w1");
  EXPECT_EQ(assign.attempt, 2u);
  auto job = status(id);
  EXPECT_EQ(job.state, "assigned");
  EXPECT_EQ(job.attempts[0].outcome, "lost");
}

TEST_F(SchedulerCore, AnAssignTheWorkerNeverGotIsRequeuedAfterALease) {
  register_worker("w1");
  const std::string id = submit();
  ASSERT_EQ(last_submit_turn().to<proto::Assign>("w1").size(), 1u);
  // The worker heartbeats without the job (the assign was dropped).
  for (int i = 0; i < 10; ++i) {
    clock_.advance(1'000);
    heartbeat("w1");
    EXPECT_TRUE(turn().to<proto::Assign>("w1").empty());
  }
  clock_.advance(1'000);
  heartbeat("w1");
  auto assign = turn().one<proto::Assign>("w1");
  EXPECT_EQ(assign.job_id, id);
  EXPECT_EQ(assign.attempt, 2u);
}

TEST_F(SchedulerCore, AQueuedJobWithSecretsFailsAfterARestart) {
  const std::string id = submit({.spec = kSpec, .secrets = {{.id = "token", .value = "s3cr3t"}}});
  start();
  auto job = status(id);
  EXPECT_EQ(job.state, "failed");
  EXPECT_THAT(job.error, HasSubstr("secrets were held in memory only"));
  // The value was never stored.
  for (const auto& [seq, record] : store_->jobs) EXPECT_EQ(record.find("s3cr3t"), std::string::npos);
}

TEST_F(SchedulerCore, SecretsGoOnlyToTheWorkerHoldingTheAttempt) {
  register_worker("w1");
  const std::string id = submit({.spec = kSpec, .secrets = {{.id = "token", .value = "s3cr3t"}}});
  auto assign = last_submit_turn().one<proto::Assign>("w1");
  ASSERT_EQ(assign.job.secrets.size(), 1u);
  EXPECT_EQ(assign.job.secrets[0].value, "s3cr3t");
  EXPECT_EQ(status(id).secret_ids, std::vector<std::string>{"token"});
}

TEST_F(SchedulerCore, HeldStatusAndLogRepliesAreAnsweredWhenTheJobChangesOrAtTheirDeadline) {
  register_worker("w1");
  const std::string id = submit();
  send(Port::kClients, "waiter", proto::GetStatus{.request_id = 11, .job_id = id, .wait_ms = 30'000});
  send(Port::kClients, "reader", proto::ReadLog{.request_id = 12, .job_id = id, .wait_ms = 30'000});
  send(Port::kClients, "late", proto::GetStatus{.request_id = 13, .job_id = id, .wait_ms = 2'000});
  auto out = turn();
  EXPECT_EQ(out.size(), 0u) << "nothing to answer yet";

  event("w1", proto::Type::kJobStarted, id, 1);
  event("w1", proto::Type::kJobLog, id, 1, "", "line 1\n");
  out = turn();
  auto log = out.one<proto::Log>("reader");
  EXPECT_EQ(log.request_id, 12u);
  EXPECT_EQ(log.data, "line 1\n");
  EXPECT_FALSE(log.complete);
  EXPECT_TRUE(out.to<proto::Job>("waiter").empty());

  clock_.advance(2'500);
  heartbeat("w1", {{.job_id = id, .attempt = 1}});
  out = turn();
  EXPECT_EQ(out.one<proto::Job>("late").job.state, "running");

  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", std::string(64, 'f'));
  out = turn();
  auto job = out.one<proto::Job>("waiter");
  EXPECT_EQ(job.request_id, 11u);
  EXPECT_EQ(job.job.state, "succeeded");
}

TEST_F(SchedulerCore, PausedAndDrainingWorkersGetNoNewJobsAndTheStateIsKept) {
  register_worker("w1");
  send(Port::kClients, "admin", proto::WorkerAction{.request_id = 1, .worker = "w1", .action = "pause"});
  auto out = turn();
  EXPECT_EQ(out.one<proto::WorkerState>("w1").state, "paused");
  const std::string id = submit();
  EXPECT_TRUE(last_submit_turn().to<proto::Assign>("w1").empty());
  start();  // the pause survives a restart
  auto reg = register_worker("w1");
  EXPECT_EQ(reg.one<proto::Registered>("w1").state, "paused");
  EXPECT_TRUE(reg.to<proto::Assign>("w1").empty());
  send(Port::kClients, "admin", proto::WorkerAction{.request_id = 2, .worker = "w1", .action = "unpause"});
  out = turn();
  EXPECT_EQ(out.one<proto::Assign>("w1").job_id, id);
}

TEST_F(SchedulerCore, ListingsCountEveryStateAcrossARestart) {
  register_worker("w1", 2);
  const std::string a = submit();
  const std::string b = submit();
  event("w1", proto::Type::kJobDone, a, 1, "succeeded", "", std::string(64, 'a'));
  event("w1", proto::Type::kJobDone, b, 1, "failed");
  turn();
  submit();  // assigned to w1's free slot
  start();
  Snapshot snap = core_->snapshot();
  EXPECT_EQ(snap.jobs_by_state.at("succeeded"), 1u);
  EXPECT_EQ(snap.jobs_by_state.at("failed"), 1u);
  EXPECT_EQ(snap.jobs_by_state.at("assigned"), 1u);
  EXPECT_EQ(snap.jobs_by_state.at("queued"), 0u);
  EXPECT_EQ(snap.jobs_by_state.at("running"), 0u);
  EXPECT_EQ(snap.jobs_by_state.size(), 6u);
  send(Port::kClients, "client", proto::ListJobs{.request_id = 1, .states = {"failed"}});
  auto jobs = turn().one<proto::Jobs>("client");
  ASSERT_EQ(jobs.jobs.size(), 1u);
  EXPECT_EQ(jobs.jobs[0].id, b);
}

// ---- numbered logs and job-acks (workers that register with log_offsets) ----

class SchedulerLogs : public SchedulerCore {
 protected:
  // Registers `name` as a worker that numbers its log chunks; returns the turn's replies.
  Replies register_numbered(const std::string& name, std::vector<proto::RunningJob> running = {}) {
    send(Port::kWorkers, name,
         proto::Register{
             .name = name, .pool = "linux-x86_64", .capacity = 1, .running = running, .log_offsets = true});
    return turn();
  }
  void chunk(const std::string& worker, const std::string& job, std::uint32_t attempt, std::uint64_t offset,
             const std::string& text) {
    proto::JobEvent e{.type = proto::Type::kJobLog, .job_id = job, .attempt = attempt, .log = text};
    e.log_offset = offset;
    send_event(worker, e);
  }
  void done(const std::string& worker, const std::string& job, std::uint32_t attempt, std::uint64_t log_end,
            const std::string& outcome = "succeeded") {
    proto::JobEvent e{
        .type = proto::Type::kJobDone, .job_id = job, .attempt = attempt, .outcome = outcome, .result = "r"};
    e.log_end = log_end;
    send_event(worker, e);
  }
  void send_event(const std::string& worker, const proto::JobEvent& e) {
    core_->handle(Port::kWorkers, Incoming{.routing_id = worker,
                                           .type = e.type,
                                           .type_text = std::string(proto::type_name(e.type)),
                                           .body = proto::encode(e)});
  }
  std::string stored_log(const std::string& id) {
    send(Port::kClients, "client", proto::ReadLog{.request_id = 3, .job_id = id, .max_bytes = 1 << 20});
    return turn().one<proto::Log>("client").data;
  }
  // The one ack of `job` in `replies` to `worker`.
  static proto::JobAck ack_of(const Replies& replies, const std::string& worker, const std::string& job) {
    std::vector<proto::JobAck> found;
    for (const auto& message : replies.to<proto::JobAcks>(worker)) {
      for (const auto& a : message.acks)
        if (a.job_id == job) found.push_back(a);
    }
    EXPECT_EQ(found.size(), 1u) << "acks of " << job << " to " << worker;
    return found.empty() ? proto::JobAck{} : found.front();
  }
};

TEST_F(SchedulerLogs, ChunksArePlacedByOffsetAndAResentChunkIsStoredOnce) {
  auto registered = register_numbered("w1").one<proto::Registered>("w1");
  EXPECT_EQ(registered.log_cap_bytes, options_.log_cap_bytes);  // tells the worker it acknowledges
  const std::string id = submit();
  event("w1", proto::Type::kJobStarted, id, 1);
  chunk("w1", id, 1, 0, "hello ");
  chunk("w1", id, 1, 6, "world\n");
  auto out = turn();
  // One ack per attempt and turn, for everything placed in it.
  auto acked = ack_of(out, "w1", id);
  EXPECT_EQ(acked.attempt, 1u);
  EXPECT_EQ(acked.log_offset, 12u);
  EXPECT_FALSE(acked.log_full);
  EXPECT_FALSE(acked.done);

  // Resent (the ack was lost), and overlapping: only what is new is stored.
  chunk("w1", id, 1, 0, "hello ");
  chunk("w1", id, 1, 6, "world\nmore ");
  out = turn();
  EXPECT_EQ(ack_of(out, "w1", id).log_offset, 17u);
  EXPECT_EQ(stored_log(id), "hello world\nmore ");

  // A restart keeps where the attempt's log has got to: resends after it are placed right.
  start();
  register_numbered("w1", {{.job_id = id, .attempt = 1}});
  chunk("w1", id, 1, 6, "world\nmore ");
  chunk("w1", id, 1, 17, "text\n");
  done("w1", id, 1, 22);
  out = turn();
  acked = ack_of(out, "w1", id);
  EXPECT_EQ(acked.log_offset, 22u);
  EXPECT_TRUE(acked.done);
  EXPECT_EQ(stored_log(id), "hello world\nmore text\n");
  auto job = status(id);
  EXPECT_EQ(job.state, "succeeded");
  EXPECT_EQ(job.log_bytes, 22u);
}

TEST_F(SchedulerLogs, AcksLeaveOnlyAfterTheCommitAndNotAtAllWhenItFails) {
  register_numbered("w1");
  const std::string id = submit();
  chunk("w1", id, 1, 0, "staged\n");
  core_->tick();
  EXPECT_TRUE(Replies(core_->take_outbox()).to<proto::JobAcks>("w1").empty());
  ASSERT_TRUE(core_->commit());
  EXPECT_EQ(ack_of(Replies(core_->take_outbox()), "w1", id).log_offset, 7u);

  // Killed before the commit: nothing of it is stored, nothing acknowledged;
  // the worker still holds the text and sends it again.
  chunk("w1", id, 1, 7, "lost with the scheduler\n");
  core_->tick();
  EXPECT_TRUE(Replies(core_->take_outbox()).to<proto::JobAcks>("w1").empty());
  start();
  register_numbered("w1", {{.job_id = id, .attempt = 1}});
  EXPECT_EQ(stored_log(id), "staged\n");
  chunk("w1", id, 1, 7, "lost with the scheduler\n");
  EXPECT_EQ(ack_of(turn(), "w1", id).log_offset, 31u);
  EXPECT_EQ(stored_log(id), "staged\nlost with the scheduler\n");

  // A failed commit sends no acks.
  chunk("w1", id, 1, 31, "x\n");
  core_->tick();
  store_->fail_commits = true;
  ASSERT_FALSE(core_->commit());
  EXPECT_TRUE(Replies(core_->take_outbox()).to<proto::JobAcks>("w1").empty());
}

TEST_F(SchedulerLogs, HolesAreMarkedWithTheBytesMissingAndAJobDoneWaitsForItsLog) {
  register_numbered("w1");
  const std::string id = submit();
  chunk("w1", id, 1, 0, "0123456789");
  chunk("w1", id, 1, 25, "after the hole\n");  // 15 bytes never arrived
  EXPECT_EQ(ack_of(turn(), "w1", id).log_offset, 40u);
  // The job-done says the log is 50 bytes: the last 10 never came. The log
  // is marked before the outcome is recorded (same turn, same commit).
  done("w1", id, 1, 50);
  turn();
  EXPECT_EQ(stored_log(id),
            "0123456789"
            "\n[kiln: 15 bytes of attempt 1's log are missing here: they never reached the scheduler]\n"
            "after the hole\n"
            "\n[kiln: the last 10 bytes of attempt 1's log are missing: they never reached the scheduler]\n");
  EXPECT_EQ(status(id).state, "succeeded");
}

TEST_F(SchedulerLogs, OverTheCapNothingMoreIsStoredButEverythingIsAcknowledged) {
  options_.log_cap_bytes = 100;
  start();
  register_numbered("w1");
  const std::string id = submit();
  chunk("w1", id, 1, 0, std::string(60, 'a'));
  auto acked = ack_of(turn(), "w1", id);
  EXPECT_EQ(acked.log_offset, 60u);
  EXPECT_FALSE(acked.log_full);
  chunk("w1", id, 1, 60, std::string(60, 'b'));  // crosses the cap
  acked = ack_of(turn(), "w1", id);
  EXPECT_EQ(acked.log_offset, 120u);
  EXPECT_TRUE(acked.log_full);  // send no more: it would be dropped
  chunk("w1", id, 1, 120, std::string(60, 'c'));
  EXPECT_EQ(ack_of(turn(), "w1", id).log_offset, 180u);
  // The worker stopped sending; the rest is the cap's doing, not a loss: one marker.
  done("w1", id, 1, 4ull << 30);
  EXPECT_TRUE(ack_of(turn(), "w1", id).done);
  EXPECT_EQ(stored_log(id),
            std::string(60, 'a') + std::string(40, 'b') + "\n[kiln: log truncated: over 100 bytes]\n");
  EXPECT_EQ(status(id).state, "succeeded");
}

TEST_F(SchedulerLogs, ALogExactlyAtTheCapIsMarkedWhenMoreComes) {
  options_.log_cap_bytes = 10;
  start();
  register_numbered("w1");
  const std::string id = submit();
  chunk("w1", id, 1, 0, "0123456789");
  EXPECT_TRUE(ack_of(turn(), "w1", id).log_full);
  EXPECT_EQ(stored_log(id), "0123456789");
  done("w1", id, 1, 11);
  turn();
  EXPECT_EQ(stored_log(id), "0123456789\n[kiln: log truncated: over 10 bytes]\n");
}

TEST_F(SchedulerLogs, ReportsOfAnAttemptThatIsNotCurrentAreAcknowledgedAndDropped) {
  register_numbered("w1");
  const std::string id = submit();
  chunk("w1", id, 1, 0, "first attempt\n");
  turn();
  // The attempt is lost (w1 silent past its lease) and runs again on w2.
  register_numbered("w2");
  for (int i = 0; i < 11; ++i) {
    clock_.advance(1'000);
    heartbeat("w2");
    turn();
  }
  ASSERT_EQ(status(id).attempt, 2u);
  register_numbered("w1");
  chunk("w1", id, 1, 14, "late text\n");
  auto out = turn();
  auto acked = ack_of(out, "w1", id);
  EXPECT_EQ(acked.log_offset, 24u);
  EXPECT_TRUE(acked.log_full);
  EXPECT_EQ(out.one<proto::CancelAssigned>("w1").attempt, 1u);
  done("w1", id, 1, 24);
  acked = ack_of(turn(), "w1", id);
  EXPECT_TRUE(acked.done);
  EXPECT_THAT(stored_log(id), ::testing::Not(HasSubstr("late text")));
  EXPECT_EQ(status(id).state, "assigned");

  // The new attempt's log starts at its own offset 0, after the old one's.
  chunk("w2", id, 2, 0, "second attempt\n");
  EXPECT_EQ(ack_of(turn(), "w2", id).log_offset, 15u);
  EXPECT_THAT(stored_log(id), ::testing::EndsWith("the job runs again]\nsecond attempt\n"));
}

TEST_F(SchedulerLogs, AWorkerWithoutOffsetsGetsNoAcksAndItsTextIsAppended) {
  auto registered = register_worker("w1").one<proto::Registered>("w1");
  EXPECT_GT(registered.log_cap_bytes, 0u);  // an older worker ignores it
  const std::string id = submit();
  event("w1", proto::Type::kJobLog, id, 1, "", "one\n");
  event("w1", proto::Type::kJobLog, id, 1, "", "one\n");
  event("w1", proto::Type::kJobDone, id, 1, "succeeded", "", "r");
  EXPECT_TRUE(turn().to<proto::JobAcks>("w1").empty());
  EXPECT_EQ(stored_log(id), "one\none\n");
}

}  // namespace
}  // namespace kiln::scheduler
