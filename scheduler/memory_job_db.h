// A JobDb in memory, for the scheduler's unit tests and for tools that run
// the scheduler without a disk. The committed data lives in a
// MemoryJobStore that outlives any one MemoryJobDb: a test "restarts" a
// scheduler by opening a new MemoryJobDb on the same store, and what was
// staged but never committed is lost, as with a killed process.
//
//   auto store = std::make_shared<MemoryJobStore>();
//   Scheduler first(options, std::make_unique<MemoryJobDb>(store), ...);
//   ...                                        // first is "killed"
//   Scheduler second(options, std::make_unique<MemoryJobDb>(store), ...);
//   KILN_RETURN_IF_ERROR(second.recover());
//
// `fail_commits` makes commit() fail with kIo (to test that nothing is
// acknowledged that is not stored).
// Thread safety: as JobDb; the store is guarded by its own mutex.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "scheduler/job_db.h"

namespace kiln::scheduler {

struct MemoryJobStore {
  std::mutex mu;
  std::map<std::uint64_t, std::string> jobs;                           // seq -> encoded record
  std::map<std::uint64_t, std::map<std::uint64_t, std::string>> logs;  // seq -> offset -> chunk
  std::optional<std::uint64_t> next_seq;
  std::map<std::string, std::string> worker_states;
  std::uint64_t commits = 0;  // successful commits that wrote something
  std::atomic<bool> fail_commits{false};
};

class MemoryJobDb final : public JobDb {
 public:
  explicit MemoryJobDb(std::shared_ptr<MemoryJobStore> store);

  Status for_each_job(const std::function<void(std::uint64_t, std::string_view)>& fn) override;
  Result<std::optional<proto::JobInfo>> get_job(std::uint64_t seq) override;
  Result<std::uint64_t> next_seq() override;
  Result<std::uint64_t> log_size(std::uint64_t seq) override;
  Result<std::string> read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes) override;
  Result<std::vector<std::pair<std::string, std::string>>> worker_states() override;
  void put_job(std::uint64_t seq, const proto::JobInfo& job) override;
  void put_next_seq(std::uint64_t seq) override;
  void append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data) override;
  void put_worker_state(const std::string& name, const std::string& state) override;
  Status commit() override;
  bool has_pending() const override;

 private:
  struct Staged {
    std::map<std::uint64_t, std::string> jobs;
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> logs;
    std::optional<std::uint64_t> next_seq;
    std::map<std::string, std::string> worker_states;
    bool empty() const { return jobs.empty() && logs.empty() && !next_seq && worker_states.empty(); }
  };
  std::shared_ptr<MemoryJobStore> store_;
  Staged staged_;
};

}  // namespace kiln::scheduler
