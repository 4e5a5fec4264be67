#include "scheduler/job_db.h"

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

}  // namespace

struct JobDb::Impl {
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::WriteBatch batch;
  rocksdb::WriteOptions write_options;
};

JobDb::JobDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobDb::~JobDb() = default;

Result<std::unique_ptr<JobDb>> JobDb::open(const std::string& dir, JobDbOptions options) {
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
  auto impl = std::make_unique<Impl>();
  impl->db.reset(raw);
  impl->write_options.sync = options.sync;
  return std::unique_ptr<JobDb>(new JobDb(std::move(impl)));
}

Status JobDb::for_each_job(const std::function<void(std::uint64_t, std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("j/"); it->Valid() && it->key().starts_with("j/"); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    std::uint64_t seq = std::strtoull(std::string(key.substr(2)).c_str(), nullptr, 16);
    fn(seq, std::string_view(it->value().data(), it->value().size()));
  }
  if (!it->status().ok()) return std::unexpected(db_error(it->status(), "reading jobs"));
  return {};
}

Result<std::optional<proto::JobInfo>> JobDb::get_job(std::uint64_t seq) {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), job_key(seq), &value);
  if (s.IsNotFound()) return std::optional<proto::JobInfo>();
  if (!s.ok()) return std::unexpected(db_error(s, "reading a job"));
  KILN_ASSIGN_OR_RETURN(auto job, proto::decode_job_record(value));
  return std::optional<proto::JobInfo>(std::move(job));
}

Result<std::uint64_t> JobDb::next_seq() {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), "m/next-seq", &value);
  if (s.IsNotFound()) return 1;
  if (!s.ok()) return std::unexpected(db_error(s, "reading the job counter"));
  return std::strtoull(value.c_str(), nullptr, 10);
}

Result<std::uint64_t> JobDb::log_size(std::uint64_t seq) {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix = log_prefix(seq);
  it->SeekForPrev(prefix + "~");
  if (!it->Valid() || !it->key().starts_with(prefix)) return 0;
  std::uint64_t start = std::strtoull(it->key().ToString().substr(prefix.size()).c_str(), nullptr, 16);
  return start + it->value().size();
}

Result<std::string> JobDb::read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes) {
  std::string out;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
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

Result<std::vector<std::pair<std::string, std::string>>> JobDb::worker_states() {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("w/"); it->Valid() && it->key().starts_with("w/"); it->Next()) {
    out.emplace_back(it->key().ToString().substr(2), it->value().ToString());
  }
  return out;
}

void JobDb::put_job(std::uint64_t seq, const proto::JobInfo& job) {
  impl_->batch.Put(job_key(seq), proto::encode_job_record(job));
}

void JobDb::put_next_seq(std::uint64_t seq) {
  impl_->batch.Put("m/next-seq", std::to_string(seq));
}

void JobDb::append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data) {
  impl_->batch.Put(log_key(seq, offset), rocksdb::Slice(data.data(), data.size()));
}

void JobDb::put_worker_state(const std::string& name, const std::string& state) {
  if (state.empty()) {
    impl_->batch.Delete("w/" + name);
  } else {
    impl_->batch.Put("w/" + name, state);
  }
}

bool JobDb::has_pending() const {
  return impl_->batch.Count() > 0;
}

Status JobDb::commit() {
  if (impl_->batch.Count() == 0) return {};
  rocksdb::Status s = impl_->db->Write(impl_->write_options, &impl_->batch);
  impl_->batch.Clear();
  if (!s.ok()) return std::unexpected(db_error(s, "writing"));
  return {};
}

}  // namespace kiln::scheduler
