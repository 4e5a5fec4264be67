// The placement trace format: what the reader accepts and rejects, and that
// what the writer writes reads back as the same trace.
#include "common/trace/placement_trace.h"

#include <gtest/gtest.h>

#include <sstream>

namespace kiln::trace {
namespace {

Result<Trace> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_trace(in, "t.jsonl");
}

TEST(PlacementTrace, ParsesWorkersAndJobsInSubmitOrder) {
  auto t = parse(
      "# a comment\n"
      "{\"type\":\"worker\",\"name\":\"w1\",\"capacity\":2,\"cache_limit\":10}\n"
      "{\"type\":\"job\",\"id\":\"b\",\"t\":5,\"urgent\":true,\"steps\":[{\"id\":\"s\",\"seconds\":3}]}\n"
      "\n"
      "{\"type\":\"job\",\"id\":\"a\",\"t\":1,\"client\":\"x\",\"steps\":[]}\n");
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  ASSERT_EQ(t->workers.size(), 1u);
  EXPECT_EQ(t->workers[0].capacity, 2u);
  EXPECT_EQ(t->workers[0].pool, "linux");
  EXPECT_EQ(t->workers[0].cache_limit, 10u);
  ASSERT_EQ(t->jobs.size(), 2u);
  EXPECT_EQ(t->jobs[0].id, "a");
  EXPECT_EQ(t->jobs[0].client, "x");
  EXPECT_TRUE(t->jobs[1].urgent);
  EXPECT_EQ(t->jobs[1].steps[0].seconds, 3);
}

TEST(PlacementTrace, ErrorsNameTheLineAndTheProblem) {
  auto bad_json = parse("{\"type\":\"worker\",\"name\":\"w\"}\n{oops\n");
  ASSERT_FALSE(bad_json.has_value());
  EXPECT_NE(bad_json.error().message().find("t.jsonl:2: not a JSON object"), std::string::npos);
  auto missing = parse("{\"type\":\"worker\",\"name\":\"w\"}\n{\"type\":\"job\",\"id\":\"j\"}\n");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("t.jsonl:2: missing or mistyped field"), std::string::npos);
  auto type = parse("{\"type\":\"robot\"}\n");
  ASSERT_FALSE(type.has_value());
  EXPECT_NE(type.error().message().find("unknown \"type\" \"robot\""), std::string::npos);
  auto no_workers = parse("");
  ASSERT_FALSE(no_workers.has_value());
  EXPECT_NE(no_workers.error().message().find("no workers"), std::string::npos);
  auto no_capacity = parse("{\"type\":\"worker\",\"name\":\"w\",\"capacity\":0}\n");
  ASSERT_FALSE(no_capacity.has_value());
  EXPECT_NE(no_capacity.error().message().find("t.jsonl:1: a worker's capacity must be at least 1"),
            std::string::npos);
  auto negative = parse(
      "{\"type\":\"worker\",\"name\":\"w\"}\n"
      "{\"type\":\"job\",\"id\":\"j\",\"t\":0,\"steps\":[{\"id\":\"s\",\"seconds\":-1}]}\n");
  ASSERT_FALSE(negative.has_value());
  EXPECT_NE(negative.error().message().find("t.jsonl:2: a step's seconds must not be negative"),
            std::string::npos);
}

// Found by tests/fuzz/placement_trace_fuzz: a cache_limit past 2^64 (read
// as a double) was cast to size_t, undefined behaviour; a negative capacity
// became 4294967295.
TEST(PlacementTrace, WorkerNumbersMustBeWholeNumbersInRange) {
  for (const char* line : {
           "{\"type\":\"worker\",\"name\":\"w\",\"cache_limit\":18446744073709551616120}\n",
           "{\"type\":\"worker\",\"name\":\"w\",\"cache_limit\":-1}\n",
           "{\"type\":\"worker\",\"name\":\"w\",\"cache_limit\":2.5}\n",
       }) {
    auto t = parse(line);
    ASSERT_FALSE(t.has_value()) << line;
    EXPECT_EQ(t.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(t.error().message().find("t.jsonl:1: a worker's cache_limit must be a whole number"),
              std::string::npos)
        << t.error().message();
  }
  for (const char* line : {
           "{\"type\":\"worker\",\"name\":\"w\",\"capacity\":-1}\n",
           "{\"type\":\"worker\",\"name\":\"w\",\"capacity\":4294967297}\n",
           "{\"type\":\"worker\",\"name\":\"w\",\"capacity\":1e30}\n",
       }) {
    auto t = parse(line);
    ASSERT_FALSE(t.has_value()) << line;
    EXPECT_NE(t.error().message().find("t.jsonl:1: a worker's capacity must be a whole number from 1 to"),
              std::string::npos)
        << t.error().message();
  }
  auto largest = parse("{\"type\":\"worker\",\"name\":\"w\",\"capacity\":4294967295,"
                       "\"cache_limit\":18446744073709551615}\n");
  ASSERT_TRUE(largest.has_value()) << largest.error().to_string();
  EXPECT_EQ(largest->workers[0].capacity, 4294967295u);
  EXPECT_EQ(largest->workers[0].cache_limit, 18446744073709551615u);
}

// Found by tests/fuzz/placement_trace_fuzz: a "type" that is not a string
// threw nlohmann::json's type_error out of parse_trace (kiln-sim terminated).
TEST(PlacementTrace, ATypeThatIsNotAStringIsAnError) {
  for (const char* line : {"{\"type\":{\"a\":[1,2]}}\n", "{\"type\":7}\n", "{\"type\":null}\n"}) {
    auto t = parse(line);
    ASSERT_FALSE(t.has_value()) << line;
    EXPECT_EQ(t.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(t.error().message().find("t.jsonl:1: missing or mistyped field"), std::string::npos)
        << t.error().message();
  }
}

TEST(PlacementTrace, AMissingFileIsNotFound) {
  auto t = read_trace("/nonexistent/trace.jsonl");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(t.error().message().find("/nonexistent/trace.jsonl"), std::string::npos);
}

TEST(PlacementTrace, WriteThenParseGivesEveryFieldBack) {
  Trace t;
  t.workers = {
      {.name = "w1", .pool = "linux-x86_64", .capacity = 4, .labels = {"arch=x86_64"}, .cache_limit = 0},
      {.name = "w2", .pool = "linux-arm64", .capacity = 1, .labels = {}, .cache_limit = 120}};
  t.jobs = {{.id = "j1",
             .submit = 0,
             .pool = "linux-x86_64",
             .client = "alice@host",
             .urgent = true,
             .labels = {"arch=x86_64"},
             .steps = {{.id = "9a0b", .seconds = 20.5}, {.id = "7c1d", .seconds = 0}},
             .estimate = 900},
            {.id = "j2", .submit = 12.25, .steps = {}}};
  std::ostringstream out;
  write_trace(t, out, "kiln admin trace: 2 workers, jobs oldest first");
  const std::string text = out.str();
  EXPECT_EQ(text.substr(0, text.find('\n')), "# kiln admin trace: 2 workers, jobs oldest first");
  // "type" leads every line, as docs/placement.md shows them.
  EXPECT_NE(text.find("\n{\"type\":\"worker\",\"name\":\"w1\",\"pool\":\"linux-x86_64\",\"capacity\":4,"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n{\"type\":\"job\",\"id\":\"j2\",\"t\":12.25,"), std::string::npos) << text;

  auto back = parse(text);
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  ASSERT_EQ(back->workers.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->workers[i].name, t.workers[i].name);
    EXPECT_EQ(back->workers[i].pool, t.workers[i].pool);
    EXPECT_EQ(back->workers[i].capacity, t.workers[i].capacity);
    EXPECT_EQ(back->workers[i].labels, t.workers[i].labels);
    EXPECT_EQ(back->workers[i].cache_limit, t.workers[i].cache_limit);
  }
  ASSERT_EQ(back->jobs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const TraceJob& a = t.jobs[i];
    const TraceJob& b = back->jobs[i];
    EXPECT_EQ(b.id, a.id);
    EXPECT_EQ(b.submit, a.submit);
    EXPECT_EQ(b.pool, a.pool);
    EXPECT_EQ(b.client, a.client);
    EXPECT_EQ(b.urgent, a.urgent);
    EXPECT_EQ(b.labels, a.labels);
    EXPECT_EQ(b.estimate, a.estimate);
    ASSERT_EQ(b.steps.size(), a.steps.size());
    for (std::size_t s = 0; s < a.steps.size(); ++s) {
      EXPECT_EQ(b.steps[s].id, a.steps[s].id);
      EXPECT_EQ(b.steps[s].seconds, a.steps[s].seconds);
    }
  }
}

TEST(PlacementTrace, InvalidUtf8IsReplacedNotThrown) {
  Trace t;
  t.workers = {{.name = "w\xff"}};
  std::ostringstream out;
  write_trace(t, out);
  auto back = parse(out.str());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->workers[0].name, "w\xEF\xBF\xBD");
}

}  // namespace
}  // namespace kiln::trace
