#include <gtest/gtest.h>

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

TEST(ProtoCodec, TypeNamesRoundTrip) {
  for (int t = 0; t <= static_cast<int>(Type::kInventory); ++t) {
    auto type = static_cast<Type>(t);
    auto parsed = parse_type(type_name(type));
    ASSERT_TRUE(parsed) << type_name(type);
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_FALSE(parse_type("no-such-type"));
}

TEST(ProtoCodec, ErrorReplyCarriesKind) {
  auto reply = error_reply(7, Error(ErrorKind::kNotFound, "no job j9"));
  auto back = to_error(*decode<ErrorReply>(encode(reply)));
  EXPECT_EQ(back.kind(), ErrorKind::kNotFound);
  EXPECT_NE(back.message().find("no job j9"), std::string::npos);
}

}  // namespace
}  // namespace kiln::proto
