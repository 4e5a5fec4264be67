// The scheduler's durable state behind one small interface: every job
// record, every job's log, the next job number, and the operators'
// pause/drain decisions. Writes are staged and made durable together by
// commit() once per event-loop turn (group commit), before any reply that
// depends on them is sent, so "submitted" means "stored".
//
//   KILN_ASSIGN_OR_RETURN(auto db, open_rocksdb_job_db("/var/lib/kiln-scheduler/db", {}));
//   db->put_job(seq, info);                  // staged
//   db->append_log(seq, offset, "text");
//   KILN_RETURN_IF_ERROR(db->commit());      // durable (and visible to reads)
//
// Implementations: RocksDB (rocksdb_job_db.h, the daemon's) and memory
// (memory_job_db.h, for tests and the simulator: it survives the Scheduler
// that used it, so a test can "restart" a scheduler on the same data, and
// loses what was staged but not committed, like a killed process).
// Reads see committed data only.
// Thread safety: one writer (the event loop); get_job, log_size and read_log
// may be called from any thread at the same time as the writer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/messages.h"

namespace kiln::scheduler {

class JobDb {
 public:
  virtual ~JobDb() = default;

  // Calls `fn(seq, record bytes)` for every job, in job-number order; the
  // record is proto::encode_job_record's encoding.
  virtual Status for_each_job(const std::function<void(std::uint64_t seq, std::string_view record)>& fn) = 0;
  virtual Result<std::optional<proto::JobInfo>> get_job(std::uint64_t seq) = 0;
  // The next job number to use (1 for a new database).
  virtual Result<std::uint64_t> next_seq() = 0;
  // The log's length (end of the last chunk).
  virtual Result<std::uint64_t> log_size(std::uint64_t seq) = 0;
  // Up to max_bytes of job seq's log from offset.
  virtual Result<std::string> read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes) = 0;
  // (worker name, admin state) for every worker an operator paused or drained.
  virtual Result<std::vector<std::pair<std::string, std::string>>> worker_states() = 0;

  // Staged until commit().
  virtual void put_job(std::uint64_t seq, const proto::JobInfo& job) = 0;
  virtual void put_next_seq(std::uint64_t seq) = 0;
  // A chunk of the log starting at byte `offset` (the log's end so far).
  virtual void append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data) = 0;
  virtual void put_worker_state(const std::string& name, const std::string& state) = 0;  // "" deletes
  // Makes everything staged durable at once, or nothing (kIo).
  virtual Status commit() = 0;
  virtual bool has_pending() const = 0;
};

}  // namespace kiln::scheduler
