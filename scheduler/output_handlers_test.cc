// Jobs' outputs through the scheduler's core (`kiln submit --output`): the
// worker holding the attempt uploads each tar with put-output, job-done names
// them, the job's client reads them with get-output; everyone else is
// refused, a job-done naming an output that was never stored fails the job,
// and old outputs expire. (tests/farm/ drives the same through real
// processes.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>

#include "common/sha256.h"
#include "scheduler/testing/core_fixture.h"

namespace kiln::scheduler {
namespace {

using ::testing::HasSubstr;
using testing_support::kSpec;
using testing_support::Replies;
using testing_support::SchedulerCore;

std::int64_t real_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class OutputsTest : public SchedulerCore {
 protected:
  OutputsTest() {
    // Output tars are files with real mtimes: the fake wall clock must agree.
    clock_.set_wall(real_now_ms());
    options_.max_output_bytes = 1 << 20;
    options_.output_store_bytes = 8 << 20;
    start();
  }

  // A job asking for /out, assigned to w1.
  std::string submit_with_output() {
    register_worker("w1");
    register_worker("w2");
    const std::string id = submit({.spec = kSpec, .spec_name = "out.spec", .outputs = {"/out"}});
    auto assigns = last_submit_turn().to<proto::Assign>("w1");
    if (assigns.empty()) {
      assigns = last_submit_turn().to<proto::Assign>("w2");
      worker_ = "w2";
      other_ = "w1";
    }
    EXPECT_EQ(assigns.size(), 1u);
    if (!assigns.empty()) {
      EXPECT_EQ(assigns[0].job.outputs, std::vector<std::string>{"/out"});
      EXPECT_EQ(assigns[0].max_output_bytes, 1u << 20);
    }
    send_event(worker_, proto::JobEvent{.type = proto::Type::kJobStarted, .job_id = id, .attempt = 1});
    turn();
    return id;
  }

  // Sends `bytes` as output chunks of `chunk` bytes from `from`; the last reply.
  Replies put(const std::string& from, const std::string& id, const std::string& bytes, std::size_t chunk,
              std::uint32_t attempt = 1) {
    const std::string digest = "sha256:" + sha256_hex(bytes);
    std::uint64_t offset = 0;
    Replies last({});
    do {
      std::string data = bytes.substr(offset, chunk);
      send(Port::kWorkers, from,
           proto::PutOutput{.request_id = 7,
                            .job_id = id,
                            .attempt = attempt,
                            .digest = digest,
                            .total_size = bytes.size(),
                            .offset = offset,
                            .data = data});
      last = turn();
      auto acks = last.to<proto::ContextAck>(from);
      if (acks.empty()) return last;
      offset = acks.front().received;
      if (acks.front().complete) return last;
    } while (offset < bytes.size());
    return last;
  }

  void done(const std::string& id, std::vector<proto::Output> outputs) {
    send_event(worker_,
         proto::JobEvent{.type = proto::Type::kJobDone,
                         .job_id = id,
                         .attempt = 1,
                         .outcome = "succeeded",
                         .result = std::string(64, 'a'),
                         .outputs = std::move(outputs)});
    turn();
  }

  Replies get(const std::string& client, const std::string& id, const std::string& digest,
              std::uint64_t offset = 0) {
    send(Port::kClients, client, proto::GetOutput{.request_id = 5, .job_id = id, .digest = digest, .offset = offset});
    return turn();
  }

  std::string worker_ = "w1";
  std::string other_ = "w2";
};

TEST_F(OutputsTest, TheWorkerUploadsTheClientReadsBack) {
  const std::string id = submit_with_output();
  std::string tar(300'000, '\0');
  for (std::size_t i = 0; i < tar.size(); ++i) tar[i] = static_cast<char>(i * 7);
  const std::string digest = "sha256:" + sha256_hex(tar);
  auto last = put(worker_, id, tar, 128 << 10);
  auto ack = last.one<proto::ContextAck>(worker_);
  EXPECT_TRUE(ack.complete);
  EXPECT_EQ(ack.received, tar.size());
  done(id, {{.src = "/out", .digest = digest, .size = tar.size(), .entries = 3}});

  auto info = status(id);
  EXPECT_EQ(info.state, "succeeded");
  ASSERT_EQ(info.output_files.size(), 1u);
  EXPECT_EQ(info.output_files[0].digest, digest);
  EXPECT_EQ(info.output_files[0].entries, 3u);

  std::string back;
  while (back.size() < tar.size()) {
    auto chunk = get("client", id, digest, back.size()).one<proto::ContextChunk>("client");
    ASSERT_FALSE(chunk.data.empty());
    EXPECT_EQ(chunk.total_size, tar.size());
    back += chunk.data;
  }
  EXPECT_EQ(back, tar);
}

TEST_F(OutputsTest, OnlyTheWorkerHoldingTheAttemptMayUpload) {
  const std::string id = submit_with_output();
  const std::string tar = "output bytes";
  auto refused = put(other_, id, tar, 1024).one<proto::ErrorReply>(other_);
  EXPECT_EQ(refused.kind, "permission denied");
  EXPECT_THAT(refused.message, HasSubstr("no job with outputs assigned to this worker"));
  // With keys, on the upload's own connection: the key must be the worker's.
  auto with_key = [&](const std::string& name) {
    core_->handle(Port::kWorkers,
                  Incoming{.routing_id = "upload-socket-" + name,
                           .type = proto::Type::kPutOutput,
                           .type_text = "put-output",
                           .body = proto::encode(proto::PutOutput{.request_id = 3,
                                                                  .job_id = id,
                                                                  .attempt = 1,
                                                                  .digest = "sha256:" + sha256_hex(tar),
                                                                  .total_size = tar.size(),
                                                                  .data = tar}),
                           .peer = auth::Identity{.role = auth::Role::kWorker, .name = name}});
    return turn();
  };
  EXPECT_EQ(with_key(other_).one<proto::ErrorReply>("upload-socket-" + other_).kind, "permission denied");
  EXPECT_TRUE(with_key(worker_).one<proto::ContextAck>("upload-socket-" + worker_).complete);
  // Nor for an attempt that is not the current one.
  auto stale = put(worker_, id, tar, 1024, /*attempt=*/2).one<proto::ErrorReply>(worker_);
  EXPECT_EQ(stale.kind, "permission denied");
  // Nor for a job that asked for no outputs.
  const std::string plain = submit();
  turn();
  auto no_outputs = put(worker_, plain, tar, 1024).to<proto::ErrorReply>(worker_);
  auto no_outputs_other = put(other_, plain, tar, 1024).to<proto::ErrorReply>(other_);
  EXPECT_EQ(no_outputs.size() + no_outputs_other.size(), 2u);
}

TEST_F(OutputsTest, AnOutputOverTheLimitIsRefusedNamingIt) {
  const std::string id = submit_with_output();
  const std::string tar((1 << 20) + 1, 'x');
  auto refused = put(worker_, id, tar, 1 << 20).one<proto::ErrorReply>(worker_);
  EXPECT_EQ(refused.kind, "invalid argument");
  EXPECT_THAT(refused.message, HasSubstr("--max-output-bytes"));
}

TEST_F(OutputsTest, AJobDoneNamingAnOutputNeverStoredFailsTheJob) {
  const std::string id = submit_with_output();
  done(id, {{.src = "/out", .digest = "sha256:" + std::string(64, 'e'), .size = 10}});
  auto info = status(id);
  EXPECT_EQ(info.state, "failed");
  EXPECT_THAT(info.error, HasSubstr("does not hold it"));
  EXPECT_TRUE(info.output_files.empty());
}

TEST_F(OutputsTest, AJobDoneWithoutTheOutputsAskedForFailsTheJob) {
  const std::string id = submit_with_output();
  done(id, {});
  auto info = status(id);
  EXPECT_EQ(info.state, "failed");
  EXPECT_THAT(info.error, HasSubstr("reported 0 output(s) for the 1"));
}

TEST_F(OutputsTest, OnlyTheJobsClientOrAnAdminReads) {
  const std::string id = submit_with_output();
  const std::string tar = "secret-ish build output";
  const std::string digest = "sha256:" + sha256_hex(tar);
  put(worker_, id, tar, 1024);
  done(id, {{.src = "/out", .digest = digest, .size = tar.size(), .entries = 1}});
  // A digest the job does not name is not served, even if the scheduler holds it.
  auto other = get("client", id, "sha256:" + std::string(64, 'f')).one<proto::ErrorReply>("client");
  EXPECT_EQ(other.kind, "not found");
  EXPECT_THAT(other.message, HasSubstr("has no output"));
  auto unknown_job = get("client", "no-such-job", digest).one<proto::ErrorReply>("client");
  EXPECT_EQ(unknown_job.kind, "not found");

  // With keys: another client is refused, the job's client and an admin read it.
  auto as = [&](auth::Role role, const std::string& name) {
    core_->handle(Port::kClients,
                  Incoming{.routing_id = name,
                           .type = proto::Type::kGetOutput,
                           .type_text = "get-output",
                           .body = proto::encode(proto::GetOutput{.request_id = 5, .job_id = id, .digest = digest}),
                           .peer = auth::Identity{.role = role, .name = name}});
    return turn();
  };
  const std::string owner = status(id).client;
  auto refused = as(auth::Role::kClient, "mallory").one<proto::ErrorReply>("mallory");
  EXPECT_EQ(refused.kind, "permission denied");
  EXPECT_THAT(refused.message, HasSubstr("not yours"));
  EXPECT_EQ(as(auth::Role::kClient, owner).one<proto::ContextChunk>(owner).data, tar);
  EXPECT_EQ(as(auth::Role::kAdmin, "ops").one<proto::ContextChunk>("ops").data, tar);
}

TEST_F(OutputsTest, OutputsExpireAfterTheirRetention) {
  const std::string id = submit_with_output();
  const std::string tar = "kept for a while";
  const std::string digest = "sha256:" + sha256_hex(tar);
  put(worker_, id, tar, 1024);
  done(id, {{.src = "/out", .digest = digest, .size = tar.size(), .entries = 1}});
  EXPECT_EQ(get("client", id, digest).one<proto::ContextChunk>("client").data, tar);
  // A day and a minute later the periodic check removes it.
  clock_.advance(options_.output_retention_ms + 61'000);
  turn();
  auto gone = get("client", id, digest).one<proto::ErrorReply>("client");
  EXPECT_EQ(gone.kind, "not found");
  EXPECT_THAT(gone.message, HasSubstr("no longer held"));
}

TEST_F(OutputsTest, TheOldestOutputsMakeRoomWhenTheStoreIsFull) {
  options_.output_store_bytes = 2 << 20;
  start();
  const std::string first = submit_with_output();
  const std::string a(900'000, 'a');
  put(worker_, first, a, 1 << 20);
  done(first, {{.src = "/out", .digest = "sha256:" + sha256_hex(a), .size = a.size(), .entries = 1}});
  clock_.advance(1000);
  const std::string second = submit({.spec = kSpec, .spec_name = "out.spec", .outputs = {"/out"}});
  auto assigned = last_submit_turn();
  const std::string to = assigned.to<proto::Assign>("w1").empty() ? "w2" : "w1";
  const std::string b(900'000, 'b');
  // Files' mtimes order them: the first is older.
  const std::string first_path = dir_.path() + "/outputs/" + sha256_hex(a) + ".tar";
  struct timespec times[2] = {{real_now_ms() / 1000 - 10, 0}, {real_now_ms() / 1000 - 10, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, first_path.c_str(), times, 0), 0) << first_path;
  EXPECT_TRUE(put(to, second, b, 1 << 20).one<proto::ContextAck>(to).complete);
  const std::string c(900'000, 'c');
  send_event(to, proto::JobEvent{.type = proto::Type::kJobDone, .job_id = second, .attempt = 1,
                                          .outcome = "succeeded", .result = std::string(64, 'b'),
                                          .outputs = {{.src = "/out", .digest = "sha256:" + sha256_hex(b),
                                                       .size = b.size(), .entries = 1}}});
  turn();
  EXPECT_EQ(status(second).state, "succeeded");
  const std::string third = submit({.spec = kSpec, .spec_name = "out.spec", .outputs = {"/out"}});
  auto assigned3 = last_submit_turn();
  const std::string to3 = assigned3.to<proto::Assign>("w1").empty() ? "w2" : "w1";
  EXPECT_TRUE(put(to3, third, c, 1 << 20).one<proto::ContextAck>(to3).complete);
  // Three 900 kB tars do not fit in 2 MiB: the first (oldest) went.
  EXPECT_EQ(get("client", first, "sha256:" + sha256_hex(a)).one<proto::ErrorReply>("client").kind, "not found");
  EXPECT_EQ(get("client", second, "sha256:" + sha256_hex(b)).to<proto::ContextChunk>("client").size(), 1u);
}

TEST_F(OutputsTest, ASubmitWithAbsurdOutputsIsRefused) {
  send(Port::kClients, "client",
       proto::Submit{.request_id = 1, .job = {.spec = kSpec, .outputs = std::vector<std::string>(33, "/x")}});
  auto refused = turn().one<proto::ErrorReply>("client");
  EXPECT_THAT(refused.message, HasSubstr("at most 32"));
  send(Port::kClients, "client", proto::Submit{.request_id = 1, .job = {.spec = kSpec, .outputs = {""}}});
  EXPECT_THAT(turn().one<proto::ErrorReply>("client").message, HasSubstr("is not a path"));
}

}  // namespace
}  // namespace kiln::scheduler
