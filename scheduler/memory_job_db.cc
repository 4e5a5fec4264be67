#include "scheduler/memory_job_db.h"

#include <tuple>

namespace kiln::scheduler {

MemoryJobDb::MemoryJobDb(std::shared_ptr<MemoryJobStore> store) : store_(std::move(store)) {}

Status MemoryJobDb::for_each_job(const std::function<void(std::uint64_t, std::string_view)>& fn) {
  std::map<std::uint64_t, std::string> jobs;
  {
    std::lock_guard lock(store_->mu);
    jobs = store_->jobs;
  }
  for (const auto& [seq, record] : jobs) fn(seq, record);
  return {};
}

Result<std::optional<proto::JobInfo>> MemoryJobDb::get_job(std::uint64_t seq) {
  std::string record;
  {
    std::lock_guard lock(store_->mu);
    auto it = store_->jobs.find(seq);
    if (it == store_->jobs.end()) return std::optional<proto::JobInfo>();
    record = it->second;
  }
  KILN_ASSIGN_OR_RETURN(auto job, proto::decode_job_record(record));
  return std::optional<proto::JobInfo>(std::move(job));
}

Result<std::uint64_t> MemoryJobDb::next_seq() {
  std::lock_guard lock(store_->mu);
  return store_->next_seq.value_or(1);
}

Result<std::uint64_t> MemoryJobDb::log_size(std::uint64_t seq) {
  std::lock_guard lock(store_->mu);
  auto it = store_->logs.find(seq);
  if (it == store_->logs.end() || it->second.empty()) return 0;
  const auto& [start, chunk] = *it->second.rbegin();
  return start + chunk.size();
}

Result<std::string> MemoryJobDb::read_log(std::uint64_t seq, std::uint64_t offset, std::size_t max_bytes) {
  std::lock_guard lock(store_->mu);
  std::string out;
  auto it = store_->logs.find(seq);
  if (it == store_->logs.end()) return out;
  for (const auto& [start, chunk] : it->second) {
    if (out.size() >= max_bytes) break;
    if (start + chunk.size() <= offset) continue;
    std::string_view rest(chunk);
    rest.remove_prefix(offset > start ? offset - start : 0);
    out.append(rest.substr(0, max_bytes - out.size()));
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> MemoryJobDb::worker_states() {
  std::lock_guard lock(store_->mu);
  return std::vector<std::pair<std::string, std::string>>(store_->worker_states.begin(),
                                                          store_->worker_states.end());
}

void MemoryJobDb::put_job(std::uint64_t seq, const proto::JobInfo& job) {
  staged_.jobs[seq] = proto::encode_job_record(job);
}

void MemoryJobDb::put_next_seq(std::uint64_t seq) {
  staged_.next_seq = seq;
}

void MemoryJobDb::append_log(std::uint64_t seq, std::uint64_t offset, std::string_view data) {
  staged_.logs.emplace_back(seq, offset, std::string(data));
}

void MemoryJobDb::put_worker_state(const std::string& name, const std::string& state) {
  staged_.worker_states[name] = state;
}

bool MemoryJobDb::has_pending() const {
  return !staged_.empty();
}

Status MemoryJobDb::commit() {
  if (staged_.empty()) return {};
  if (store_->fail_commits.load()) {
    staged_ = {};
    return make_error(ErrorKind::kIo, "scheduler database: writing: injected failure (MemoryJobStore)");
  }
  std::lock_guard lock(store_->mu);
  for (auto& [seq, record] : staged_.jobs) store_->jobs[seq] = std::move(record);
  for (auto& [seq, offset, data] : staged_.logs) store_->logs[seq][offset] = std::move(data);
  if (staged_.next_seq) store_->next_seq = staged_.next_seq;
  for (auto& [name, state] : staged_.worker_states) {
    if (state.empty()) {
      store_->worker_states.erase(name);
    } else {
      store_->worker_states[name] = std::move(state);
    }
  }
  ++store_->commits;
  staged_ = {};
  return {};
}

}  // namespace kiln::scheduler
