// Unit tests of the decoders of dockerd's streamed answers (streams.h).
#include "worker/docker/streams.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::docker {
namespace {

using ::testing::HasSubstr;

std::string frame(StreamKind kind, const std::string& payload) {
  std::uint32_t n = static_cast<std::uint32_t>(payload.size());
  std::string out = {static_cast<char>(kind),
                     0,
                     0,
                     0,
                     static_cast<char>(n >> 24),
                     static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8),
                     static_cast<char>(n)};
  return out + payload;
}

struct Collected {
  std::string out, err, order;  // order: one letter per piece, o or e
  StreamDemuxer::Sink sink() {
    return [this](StreamKind kind, std::string_view bytes) {
      EXPECT_FALSE(bytes.empty());
      (kind == StreamKind::kStderr ? err : out).append(bytes);
      order += kind == StreamKind::kStderr ? 'e' : 'o';
    };
  }
};

TEST(StreamDemuxerTest, SplitsFramesByStream) {
  Collected c;
  StreamDemuxer demux(c.sink());
  ASSERT_TRUE(demux.feed(frame(StreamKind::kStdout, "hello\n") + frame(StreamKind::kStderr, "oops\n") +
                         frame(StreamKind::kStdout, "bye\n")));
  EXPECT_TRUE(demux.finish());
  EXPECT_EQ(c.out, "hello\nbye\n");
  EXPECT_EQ(c.err, "oops\n");
  EXPECT_EQ(c.order, "oeo");
  EXPECT_EQ(demux.payload_bytes(), 15u);
}

TEST(StreamDemuxerTest, AnySplitOfTheBytesGivesTheSameOutput) {
  std::string payload_a(300, 'a');
  std::string payload_b = "b\n";
  std::string stream = frame(StreamKind::kStdout, payload_a) + frame(StreamKind::kStderr, payload_b) +
                       frame(StreamKind::kStdout, "") + frame(StreamKind::kStdout, "z");
  for (std::size_t step : {1u, 2u, 3u, 7u, 8u, 9u, 100u}) {
    Collected c;
    StreamDemuxer demux(c.sink());
    for (std::size_t i = 0; i < stream.size(); i += step) {
      ASSERT_TRUE(demux.feed(std::string_view(stream).substr(i, step))) << "step " << step;
    }
    EXPECT_TRUE(demux.finish()) << "step " << step;
    EXPECT_EQ(c.out, payload_a + "z") << "step " << step;
    EXPECT_EQ(c.err, payload_b) << "step " << step;
  }
}

TEST(StreamDemuxerTest, LargeFrameLengthIsBigEndian) {
  std::string payload(70000, 'x');  // needs the third length byte
  Collected c;
  StreamDemuxer demux(c.sink());
  ASSERT_TRUE(demux.feed(frame(StreamKind::kStdout, payload)));
  EXPECT_TRUE(demux.finish());
  EXPECT_EQ(c.out.size(), 70000u);
}

TEST(StreamDemuxerTest, RawTtyOutputIsRefused) {
  Collected c;
  StreamDemuxer demux(c.sink());
  auto s = demux.feed("hello world, no header\n");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(s.error().message(), HasSubstr("TTY"));
  EXPECT_FALSE(demux.feed(frame(StreamKind::kStdout, "x")));  // stays failed
  EXPECT_FALSE(demux.finish());
  EXPECT_EQ(c.out, "");
}

TEST(StreamDemuxerTest, EndingInsideAFrameIsAnError) {
  Collected c;
  StreamDemuxer cut_header(c.sink());
  ASSERT_TRUE(cut_header.feed(frame(StreamKind::kStdout, "abc").substr(0, 5)));
  EXPECT_THAT(cut_header.finish().error().message(), HasSubstr("inside a frame header (5 of 8 bytes)"));
  StreamDemuxer cut_payload(c.sink());
  ASSERT_TRUE(cut_payload.feed(frame(StreamKind::kStdout, "abcdef").substr(0, 10)));
  EXPECT_THAT(cut_payload.finish().error().message(), HasSubstr("4 bytes before the end of a frame"));
}

TEST(JsonMessageStreamTest, PassesMessagesSplitAnywhere) {
  std::string stream =
      "{\"status\":\"Pulling from team/busybox\",\"id\":\"1\"}\r\n"
      "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":10,\"total\":20},\"id\":\"abc\"}\n"
      "\n"
      "{\"status\":\"Digest: sha256:00\"}";
  for (std::size_t step : {1u, 5u, 1000u}) {
    std::vector<std::string> statuses;
    JsonMessageStream messages([&](const nlohmann::json& m) -> Status {
      statuses.push_back(m.value("status", ""));
      return {};
    });
    for (std::size_t i = 0; i < stream.size(); i += step)
      ASSERT_TRUE(messages.feed(std::string_view(stream).substr(i, step)));
    ASSERT_TRUE(messages.finish());
    EXPECT_THAT(statuses,
                ::testing::ElementsAre("Pulling from team/busybox", "Downloading", "Digest: sha256:00"))
        << "step " << step;
  }
}

TEST(JsonMessageStreamTest, InBandErrorsBecomeErrors) {
  int seen = 0;
  JsonMessageStream messages([&](const nlohmann::json&) -> Status {
    ++seen;
    return {};
  });
  auto s = messages.feed(
      "{\"status\":\"Pulling\"}\n"
      "{\"errorDetail\":{\"message\":\"manifest for x:1 not found: manifest unknown\"},\"error\":\"manifest "
      "for "
      "x:1 not found\"}\n");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(s.error().message(), "manifest for x:1 not found: manifest unknown");
  EXPECT_EQ(seen, 1);

  JsonMessageStream other([](const nlohmann::json&) -> Status { return {}; });
  auto t = other.feed("{\"error\":\"Get \\\"https://r/v2/\\\": connection refused\"}\n");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(t.error().message(), HasSubstr("connection refused"));
}

TEST(JsonMessageStreamTest, RefusesGarbageAndOversizedMessages) {
  JsonMessageStream garbage([](const nlohmann::json&) -> Status { return {}; });
  auto s = garbage.feed("not json\n");
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(), HasSubstr("not a JSON object: not json"));

  JsonMessageStream big([](const nlohmann::json&) -> Status { return {}; });
  std::string chunk(64 << 10, 'x');
  Status last;
  for (int i = 0; i < 20 && last; ++i) last = big.feed(chunk);
  ASSERT_FALSE(last);
  EXPECT_THAT(last.error().message(), HasSubstr("longer than 1048576 bytes"));
}

TEST(JsonMessageStreamTest, HandlerErrorsStopTheStream) {
  JsonMessageStream messages(
      [](const nlohmann::json&) -> Status { return make_error(ErrorKind::kCancelled, "stop"); });
  auto s = messages.feed("{\"status\":\"a\"}\n{\"status\":\"b\"}\n");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled);
}

}  // namespace
}  // namespace kiln::docker
