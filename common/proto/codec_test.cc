#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <string>

#include "common/proto/messages.h"

namespace kiln::proto {
namespace {

TEST(ProtoCodec, SubmitRoundTripsEveryField) {
  Submit in{.request_id = 42,
            .job = {.spec = "((from busybox))",
                    .spec_name = "a.spec",
                    .pool = "linux-x86_64",
                    .client = "ci",
                    .urgent = true,
                    .context = {.kind = ContextRef::Kind::kGit, .git_repo = "/r", .git_commit = "abc"},
                    .secrets = {{"token", std::string("s\0cret", 6)}},
                    .timeout_seconds = 60,
                    .labels = {"arch=x86_64"}}};
  auto out = decode<Submit>(encode(in));
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(out->request_id, 42u);
  EXPECT_EQ(out->job.spec, in.job.spec);
  EXPECT_EQ(out->job.pool, "linux-x86_64");
  EXPECT_TRUE(out->job.urgent);
  EXPECT_EQ(out->job.context.kind, ContextRef::Kind::kGit);
  EXPECT_EQ(out->job.context.git_commit, "abc");
  ASSERT_EQ(out->job.secrets.size(), 1u);
  EXPECT_EQ(out->job.secrets[0].value, std::string("s\0cret", 6));
  EXPECT_EQ(out->job.timeout_seconds, 60u);
  EXPECT_EQ(out->job.labels, std::vector<std::string>{"arch=x86_64"});
}

TEST(ProtoCodec, JobRecordKeepsStepsAndAttempts) {
  JobInfo job{.id = "j1", .state = "succeeded", .worker = "w1", .attempt = 2, .result = "abc"};
  job.steps.push_back({"s1", "(run ...)", true, 0.5});
  job.attempts.push_back({1, "w0", 10, 20, "lost"});
  auto out = decode_job_record(encode_job_record(job));
  ASSERT_TRUE(out);
  ASSERT_EQ(out->steps.size(), 1u);
  EXPECT_TRUE(out->steps[0].cached);
  EXPECT_DOUBLE_EQ(out->steps[0].seconds, 0.5);
  ASSERT_EQ(out->attempts.size(), 1u);
  EXPECT_EQ(out->attempts[0].outcome, "lost");
  EXPECT_EQ(out->attempt, 2u);
}

TEST(ProtoCodec, MalformedBodiesAreErrorsNotCrashes) {
  EXPECT_FALSE(decode<Submit>(""));
  EXPECT_FALSE(decode<Submit>("abc"));
  // Eight bytes claiming a huge segment.
  std::string bogus("\x00\x00\x00\x00\xff\xff\xff\x7f", 8);
  auto r = decode<Submit>(bogus);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  // Garbage of the right length.
  std::string garbage(64, '\xab');
  EXPECT_FALSE(decode<Register>(garbage));
}

// Found by tests/fuzz/proto_codec_fuzz: a list of zero-sized structs costs
// its reader one word per element however many it claims, so a body of a
// few words could decode into millions of elements (the 64 MiB traversal
// limit was the only bound; ~1 GB from a 1 KB body). Readers now walk at
// most twice the words a message holds.
TEST(ProtoCodec, ATinyBodyCannotClaimMillionsOfElements) {
  capnp::MallocMessageBuilder message;
  // A heartbeat (schema/kiln.capnp: stats, running, inventoryDigest are its
  // three pointers) whose `running` list claims 4 million empty entries.
  auto heartbeat = message.getRoot<capnp::AnyPointer>().initAsAnyStruct(0, 3);
  heartbeat.getPointerSection()[1].initAsListOfAnyStruct(0, 0, 4'000'000);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  std::string body(reinterpret_cast<const char*>(words.asBytes().begin()), words.asBytes().size());
  ASSERT_LT(body.size(), 100u);
  auto decoded = decode<Heartbeat>(body);
  ASSERT_FALSE(decoded) << "decoded " << decoded->running.size() << " running jobs from " << body.size()
                        << " bytes";
  EXPECT_EQ(decoded.error().kind(), ErrorKind::kInvalidArgument);

  // A real heartbeat with many running jobs still decodes.
  Heartbeat many;
  for (int i = 0; i < 10'000; ++i) many.running.push_back({"j" + std::to_string(i), 1});
  auto back = decode<Heartbeat>(encode(many));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->running.size(), 10'000u);
}

// Found by tests/fuzz/worker_session_fuzz: an assign for job "\0x" decoded,
// but kiln's encoder stops a Text at its first NUL, so the worker's
// job-done named job "": text with a NUL inside is malformed.
TEST(ProtoCodec, TextWithANulInsideIsRefused) {
  std::string body = encode(Assign{.job_id = "QZ", .attempt = 1});
  const std::size_t at = body.find("QZ");
  ASSERT_NE(at, std::string::npos);
  body[at] = '\0';
  auto decoded = decode<Assign>(body);
  ASSERT_FALSE(decoded) << "decoded job id of " << decoded->job_id.size() << " bytes, which encodes as "
                        << decode<Assign>(encode(*decoded))->job_id.size();
  EXPECT_EQ(decoded.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(decoded.error().message().find("NUL"), std::string::npos) << decoded.error().message();
  // Data (log text, context bytes) may hold any byte.
  JobEvent log{.type = Type::kJobLog, .job_id = "j1", .attempt = 1, .log = std::string("a\0b", 3)};
  auto back = decode<JobEvent>(encode(log));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->log, log.log);
}

TEST(ProtoCodec, TypeNamesRoundTrip) {
  for (int t = 0; t <= static_cast<int>(Type::kGetOutput); ++t) {
    auto type = static_cast<Type>(t);
    auto parsed = parse_type(type_name(type));
    ASSERT_TRUE(parsed) << type_name(type);
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_FALSE(parse_type("no-such-type"));
}

TEST(ProtoCodec, LogOffsetsAndAcksRoundTrip) {
  JobEvent log{.type = Type::kJobLog, .job_id = "j1", .attempt = 2, .log = "text"};
  log.log_offset = 5ull << 32;
  auto log_back = decode<JobEvent>(encode(log));
  ASSERT_TRUE(log_back);
  EXPECT_EQ(log_back->log_offset, 5ull << 32);
  JobEvent done{.type = Type::kJobDone, .job_id = "j1", .attempt = 2, .outcome = "succeeded"};
  done.log_end = 123;
  EXPECT_EQ(decode<JobEvent>(encode(done))->log_end, 123u);

  auto reg = decode<Register>(encode(Register{.name = "w1", .log_offsets = true}));
  ASSERT_TRUE(reg);
  EXPECT_TRUE(reg->log_offsets);
  auto registered = decode<Registered>(encode(Registered{.scheduler_id = "s", .log_cap_bytes = 16u << 20}));
  ASSERT_TRUE(registered);
  EXPECT_EQ(registered->log_cap_bytes, 16u << 20);
  // An older peer's messages (no new fields) read as "no offsets, no acks".
  EXPECT_FALSE(decode<Register>(encode(Register{.name = "w1"}))->log_offsets);
  EXPECT_EQ(decode<Registered>(encode(Registered{.scheduler_id = "s"}))->log_cap_bytes, 0u);

  JobAcks acks{.acks = {{.job_id = "j1", .attempt = 2, .log_offset = 77, .log_full = true, .done = false},
                        {.job_id = "j2", .attempt = 1, .log_offset = 0, .log_full = false, .done = true}}};
  auto acks_back = decode<JobAcks>(encode(acks));
  ASSERT_TRUE(acks_back);
  ASSERT_EQ(acks_back->acks.size(), 2u);
  EXPECT_EQ(acks_back->acks[0].job_id, "j1");
  EXPECT_EQ(acks_back->acks[0].attempt, 2u);
  EXPECT_EQ(acks_back->acks[0].log_offset, 77u);
  EXPECT_TRUE(acks_back->acks[0].log_full);
  EXPECT_FALSE(acks_back->acks[0].done);
  EXPECT_TRUE(acks_back->acks[1].done);
  EXPECT_EQ(type_name(Type::kJobAcks), "job-acks");

  JobInfo record{.id = "j1", .state = "running"};
  record.attempt_log_bytes = 4096;
  EXPECT_EQ(decode_job_record(encode_job_record(record))->attempt_log_bytes, 4096u);
}

TEST(ProtoCodec, APushRoundTripsFromSubmitToJobDoneAndTheJobRecord) {
  Submit submit{.job = {.spec = "((from busybox))", .push = "127.0.0.1:5000/team/app:1"}};
  EXPECT_EQ(decode<Submit>(encode(submit))->job.push, "127.0.0.1:5000/team/app:1");
  JobEvent done{.type = Type::kJobDone, .job_id = "j1", .attempt = 1, .outcome = "succeeded"};
  done.pushed = "127.0.0.1:5000/team/app:1@sha256:ab";
  EXPECT_EQ(decode<JobEvent>(encode(done))->pushed, done.pushed);
  JobInfo record{.id = "j1", .state = "succeeded"};
  record.push = "127.0.0.1:5000/team/app:1";
  record.pushed = done.pushed;
  auto back = decode_job_record(encode_job_record(record));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->push, record.push);
  EXPECT_EQ(back->pushed, record.pushed);
  // An older peer's job (no push) reads as none.
  EXPECT_EQ(decode<Submit>(encode(Submit{.job = {.spec = "x"}}))->job.push, "");
}

TEST(ProtoCodec, ErrorReplyCarriesKind) {
  auto reply = error_reply(7, Error(ErrorKind::kNotFound, "no job j9"));
  auto back = to_error(*decode<ErrorReply>(encode(reply)));
  EXPECT_EQ(back.kind(), ErrorKind::kNotFound);
  EXPECT_NE(back.message().find("no job j9"), std::string::npos);
}

}  // namespace
}  // namespace kiln::proto
