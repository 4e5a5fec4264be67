// Where a store puts directories it no longer needs, to be removed off the
// build's path. On a filesystem mounted with `discard` every freed block is
// trimmed at once (an ext4 rmdir took about 4 ms on the project's VMs, its
// mkdir 0.03 ms): what a build step leaves behind (an overlayfs work
// directory, a cache's previous snapshot) is renamed into the attic, which
// frees nothing, and a thread of the attic's own removes it.
//
//   Attic attic(root + "/attic", [&](const std::string& p) { return backend.discard(p); });
//   KILN_RETURN_IF_ERROR(attic.start());      // also queues what an earlier run left
//   KILN_RETURN_IF_ERROR(attic.retire(dir));  // dir is gone from its place at once
//
// Contract: the attic directory is on the same filesystem as what is
// retired (retire() renames). The destructor stops after the entry being
// removed, leaving the rest for the next start(). drain() removes everything
// queued in the caller's thread. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/error.h"

namespace kiln::store {

class Attic {
 public:
  using Remover = std::function<Status(const std::string& path)>;

  Attic(std::string dir, Remover remove);
  ~Attic();
  Attic(const Attic&) = delete;
  Attic& operator=(const Attic&) = delete;

  // Creates the directory if missing, queues its entries and starts the thread.
  Status start();
  // Moves `path` into the attic (one rename) and queues its removal.
  Status retire(const std::string& path);
  // Removes everything queued now, in the calling thread; the first failure is returned.
  Status drain();
  // Entries not removed yet.
  std::size_t pending() const;

  const std::string& dir() const { return dir_; }

 private:
  void run();

  const std::string dir_;
  const Remover remove_;
  mutable std::mutex mu_;  // guards queue_, stopping_, next_
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // names in dir_
  bool stopping_ = false;
  std::uint64_t next_ = 0;
  std::thread thread_;
};

}  // namespace kiln::store
