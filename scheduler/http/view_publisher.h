// ViewPublisher: hands the latest FarmView from the scheduler's event loop to
// the HTTP threads.
//
//   http::ViewPublisher views;
//   http::HttpServer server([&] { return views.current(); }, read_log);
//   ...                                            // in the event loop, after changes:
//   if (views.due(now_ms)) views.publish(build_farm_view());
//
// publish() replaces the current view; readers keep the view they took for
// as long as they hold it, so a view is never changed while read. due()
// rate-limits rebuilding (a view is a copy of every worker and recent job):
// true when no view was published in the last `min_interval_ms`.
// Thread safety: publish() and due() from one thread (the event loop);
// current() from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "scheduler/http/farm_view.h"

namespace kiln::http {

class ViewPublisher {
 public:
  explicit ViewPublisher(std::int64_t min_interval_ms = 250) : min_interval_ms_(min_interval_ms) {}

  void publish(std::shared_ptr<const FarmView> view) {
    if (view) last_published_ms_ = view->now_ms;
    std::lock_guard lock(mutex_);
    current_ = std::move(view);
  }

  // Null until the first publish().
  std::shared_ptr<const FarmView> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  bool due(std::int64_t now_ms) const {
    return last_published_ms_ < 0 || now_ms - last_published_ms_ >= min_interval_ms_ ||
           now_ms < last_published_ms_;
  }

 private:
  const std::int64_t min_interval_ms_;
  std::int64_t last_published_ms_ = -1;  // event-loop thread only
  mutable std::mutex mutex_;
  std::shared_ptr<const FarmView> current_;
};

}  // namespace kiln::http
