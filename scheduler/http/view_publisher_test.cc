#include "scheduler/http/view_publisher.h"

#include <gtest/gtest.h>

namespace kiln::http {
namespace {

std::shared_ptr<const FarmView> view_at(std::int64_t now_ms) {
  auto view = std::make_shared<FarmView>();
  view->now_ms = now_ms;
  return view;
}

TEST(ViewPublisher, NullUntilFirstPublishThenTheLatest) {
  ViewPublisher publisher;
  EXPECT_EQ(publisher.current(), nullptr);
  publisher.publish(view_at(1000));
  publisher.publish(view_at(2000));
  ASSERT_NE(publisher.current(), nullptr);
  EXPECT_EQ(publisher.current()->now_ms, 2000);
}

TEST(ViewPublisher, ReadersKeepTheViewTheyTook) {
  ViewPublisher publisher;
  publisher.publish(view_at(1000));
  auto held = publisher.current();
  publisher.publish(view_at(2000));
  EXPECT_EQ(held->now_ms, 1000);
}

TEST(ViewPublisher, DueAfterTheMinimumInterval) {
  ViewPublisher publisher(250);
  EXPECT_TRUE(publisher.due(0));
  publisher.publish(view_at(1000));
  EXPECT_FALSE(publisher.due(1100));
  EXPECT_TRUE(publisher.due(1250));
  EXPECT_TRUE(publisher.due(500));  // the clock went back: publish rather than stall
}

}  // namespace
}  // namespace kiln::http
