#include "worker/store/attic.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/fs.h"
#include "worker/store/fs_util.h"

namespace kiln::store {

Attic::Attic(std::string dir, Remover remove) : dir_(std::move(dir)), remove_(std::move(remove)) {}

Attic::~Attic() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status Attic::start() {
  KILN_RETURN_IF_ERROR(ensure_dir(dir_));
  KILN_ASSIGN_OR_RETURN(auto names, list_dir(dir_));
  {
    std::lock_guard lock(mu_);
    for (auto& name : names) queue_.push_back(std::move(name));
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_one();
  return {};
}

Status Attic::retire(const std::string& path) {
  std::string name;
  {
    std::lock_guard lock(mu_);
    // Unique: names an earlier run left may still be there.
    auto now = std::chrono::system_clock::now().time_since_epoch();
    name = fmt::format("{}-{}-{}", path.substr(path.rfind('/') + 1),
                       std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(), next_++);
  }
  KILN_RETURN_IF_ERROR(rename_path(path, dir_ + "/" + name));
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(name));
  }
  cv_.notify_one();
  return {};
}

Status Attic::drain() {
  std::deque<std::string> names;
  {
    std::lock_guard lock(mu_);
    names.swap(queue_);
  }
  Status first;
  for (const auto& name : names) {
    if (auto s = remove_(dir_ + "/" + name); !s && first) first = s;
  }
  return first;
}

std::size_t Attic::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void Attic::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::string name = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (auto s = remove_(dir_ + "/" + name); !s)
      spdlog::warn("store: removing {}/{} (no longer needed): {}", dir_, name, s.error().to_string());
    lock.lock();
  }
}

}  // namespace kiln::store
