#include "scheduler/rocksdb_job_db.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <cstring>
#include <filesystem>

namespace kiln::scheduler {
namespace {

std::string job_key(std::uint64_t seq) {
  return fmt::format("j/{:016x}", seq);
}
std::string log_prefix(std::uint64_t seq) {
  return fmt::format("l/{:016x}/", seq);
}
std::string log_key(std::uint64_t seq, std::uint64_t offset) {
  return fmt::format("l/{:016x}/{:016x}", seq, offset);
}

Error db_error(const rocksdb::Status& s, std::string_view what) {
  return Error(ErrorKind::kIo, fmt::format("scheduler database: {}: {}", what, s.ToString()));
}

class RocksJobDb final : public JobDb {
 public:
  RocksJobDb(std::unique_ptr<rocksdb::DB> db, rocksdb::WriteOptions write_options)
      : db_(std::move(db)), write_options_(write_options) {}

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
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteBatch batch_;
  rocksdb::WriteOptions write_options_;
};

}  // namespace

Result<std::unique_ptr<JobDb>> open_rocksdb_job_db(const std::string& dir, JobDbOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.IncreaseParallelism(2);
  db_options.max_open_files = 256;
  db_options.keep_log_file_num = 3;
  // Job records are small and read back from memory anyway: a small
  // memtable keeps the database's share of the scheduler's memory low
  // (docs/scheduler.md, "Memory").
  db_options.write_buffer_size = 8 << 20;
  db_options.max_write_buffer_number = 2;
  // Records are small and short-lived; compressing them in compactions
  // takes CPU from the event loop on small machines.
  db_options.compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) {
    return make_error(
        ErrorKind::kIo,
        fmt::format("cannot open the scheduler database {}: {} (is another kiln-scheduler using "
                    "this --state-dir?)",
                    dir, s.ToString()));
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options.sync;
  return std::unique_ptr<JobDb>(new RocksJobDb(std::unique_ptr<rocksdb::DB>(raw), write_options));
}

Status RocksJobDb::for_each_job(const std::function<void(std::uint64_t, std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("j/"); it->Valid() && it->key().starts_with("j/"); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    std::uint64_t seq = std::strtoull(std::string(key.substr(2)).c_str(), nullptr, 16);
    fn(seq, std::string_view(it->value().data(), it->value().size()));
  }
  if (!it->status().ok()) return std::unexpected(db_error(it->status(), "reading jobs"));
  return {};
}

Result<std::optional<proto::JobInfo>> RocksJobDb::get_job(std::uint64_t seq) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), job_key(seq), &value);
  if (s.IsNotFound()) return std::optional<proto::JobInfo>();
  if (!s.ok()) return std::unexpected(db_error(s, "reading a job"));
  KILN_ASSIGN_OR_RETURN(auto job, proto::decode_job_record(value));
  return std::optional<proto::JobInfo>(std::move(job));
}

Result<std::uint64_t> RocksJobDb::next_seq() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), "m/next-seq", &value);
  if (s.IsNotFound()) return 1;
  if (!s.ok()) return std::unexpected(db_error(s, "reading the job counter"));
  return std::strtoull(value.c_str(), nullptr, 10);
}

Result<std::uint64_t> RocksJobDb::log_size(std::uint64_t seq) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix = log_prefix(seq);
  it->SeekForPrev(prefix + "~");
  if (!it->Valid() || !it->key().starts_with(prefix)) return 0;
  std::uint64_t start = std::strtoull(it->key().ToString().substr(prefix.size()).c_str(), nullptr, 16);
  return start + it->value().size();
}

Result<std::string> RocksJobDb::read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes) {
  std::string out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix = log_prefix(seq);
  // The chunk holding `offset` starts at or before it.
  it->SeekForPrev(log_key(seq, offset));
  if (!it->Valid() || !it->key().starts_with(prefix)) it->Seek(prefix);
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < max_bytes; it->Next()) {
    std::uint64_t start = std::strtoull(it->key().ToString().substr(prefix.size()).c_str(), nullptr, 16);
    std::string_view chunk(it->value().data(), it->value().size());
    if (start + chunk.size() <= offset) continue;
    std::size_t skip = offset > start ? offset - start : 0;
    chunk.remove_prefix(skip);
    out.append(chunk.substr(0, max_bytes - out.size()));
  }
  if (!it->status().ok()) return std::unexpected(db_error(it->status(), "reading a log"));
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> RocksJobDb::worker_states() {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("w/"); it->Valid() && it->key().starts_with("w/"); it->Next()) {
    out.emplace_back(it->key().ToString().substr(2), it->value().ToString());
  }
  return out;
}

void RocksJobDb::put_job(std::uint64_t seq, const proto::JobInfo& job) {
  batch_.Put(job_key(seq), proto::encode_job_record(job));
}

void RocksJobDb::put_next_seq(std::uint64_t seq) {
  batch_.Put("m/next-seq", std::to_string(seq));
}

void RocksJobDb::append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data) {
  batch_.Put(log_key(seq, offset), rocksdb::Slice(data.data(), data.size()));
}

void RocksJobDb::put_worker_state(const std::string& name, const std::string& state) {
  if (state.empty()) {
    batch_.Delete("w/" + name);
  } else {
    batch_.Put("w/" + name, state);
  }
}

bool RocksJobDb::has_pending() const {
  return batch_.Count() > 0;
}

Status RocksJobDb::commit() {
  if (batch_.Count() == 0) return {};
  rocksdb::Status s = db_->Write(write_options_, &batch_);
  batch_.Clear();
  if (!s.ok()) return std::unexpected(db_error(s, "writing"));
  return {};
}

}  // namespace kiln::scheduler
