// The scheduler's durable state in one RocksDB database: every job record,
// every job's log, the next job number, and the operators' pause/drain
// decisions. Writes are gathered in a batch and committed together once per
// event-loop turn (group commit), before any reply that depends on them is
// sent, so "submitted" means "on disk". The write-ahead log is not fsynced
// per batch by default: a killed process (kill -9) loses nothing; a power
// cut may lose the last moments (`sync` makes every commit fsync).
//
//   KILN_ASSIGN_OR_RETURN(auto db, JobDb::open("/var/lib/kiln-scheduler/db", {}));
//   db->put_job(seq, info);          // staged
//   db->append_log(seq, offset, "text");
//   KILN_RETURN_IF_ERROR(db->commit());
//
// Keys: "j/<seq:016x>" job record (proto::encode_job_record), "l/<seq:016x>/<offset:016x>"
// a log chunk starting at that byte offset, "m/next-seq", "w/<name>" a worker's admin state.
// Thread safety: one thread (the event loop); read_log may be called from
// any thread (RocksDB reads are thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/messages.h"

namespace kiln::scheduler {

struct JobDbOptions {
  bool sync = false;  // fsync the WAL on every commit
};

class JobDb {
 public:
  static Result<std::unique_ptr<JobDb>> open(const std::string& dir, JobDbOptions options);
  ~JobDb();
  JobDb(const JobDb&) = delete;
  JobDb& operator=(const JobDb&) = delete;

  // Calls `fn(seq, record bytes)` for every job, in job-number order.
  Status for_each_job(const std::function<void(std::uint64_t seq, std::string_view record)>& fn);
  Result<std::optional<proto::JobInfo>> get_job(std::uint64_t seq);
  Result<std::uint64_t> next_seq();
  // The log's length (end of the last chunk).
  Result<std::uint64_t> log_size(std::uint64_t seq);
  // Up to max_bytes of job seq's log from offset.
  Result<std::string> read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes);
  Result<std::vector<std::pair<std::string, std::string>>> worker_states();

  // Staged until commit().
  void put_job(std::uint64_t seq, const proto::JobInfo& job);
  void put_next_seq(std::uint64_t seq);
  void append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data);
  void put_worker_state(const std::string& name, const std::string& state);  // "" deletes
  Status commit();
  bool has_pending() const;

 private:
  struct Impl;
  explicit JobDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::scheduler
