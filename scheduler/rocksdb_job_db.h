// The scheduler's job database in RocksDB (the JobDb the daemon uses).
//
// Keys: "j/<seq:016x>" job record (proto::encode_job_record), "l/<seq:016x>/<offset:016x>"
// a log chunk starting at that byte offset, "m/next-seq", "w/<name>" a worker's admin state.
// A commit is one WriteBatch. The write-ahead log is not fsynced per batch by
// default: a killed process (kill -9) loses nothing; a power cut may lose
// the last moments (`sync` makes every commit fsync).
// Errors: kIo naming the directory (another scheduler holding its lock, a
// full disk).
#pragma once

#include <memory>
#include <string>

#include "scheduler/job_db.h"

namespace kiln::scheduler {

struct JobDbOptions {
  bool sync = false;  // fsync the WAL on every commit
};

Result<std::unique_ptr<JobDb>> open_rocksdb_job_db(const std::string& dir, JobDbOptions options);

}  // namespace kiln::scheduler
