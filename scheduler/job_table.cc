#include "scheduler/job_table.h"

#include <fmt/format.h>

#include <array>

namespace kiln::scheduler {
namespace {

constexpr std::array<std::string_view, 6> kStateNames = {"queued",    "assigned", "running",
                                                         "succeeded", "failed",   "cancelled"};

}  // namespace

std::string_view state_name(JobState state) {
  return kStateNames[static_cast<std::size_t>(state)];
}

std::optional<JobState> parse_state(std::string_view text) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == text) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

std::string job_id_of(std::uint64_t seq) {
  return fmt::format("j{}", seq);
}

std::optional<std::uint64_t> seq_of(std::string_view id) {
  if (id.size() < 2 || id.size() > 20 || id[0] != 'j') return std::nullopt;
  std::uint64_t seq = 0;
  for (std::size_t i = 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') return std::nullopt;
    seq = seq * 10 + static_cast<std::uint64_t>(id[i] - '0');
  }
  return seq;
}

Job* JobTable::find(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

const Job* JobTable::find(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

Job& JobTable::add(std::unique_ptr<Job> job, bool counted) {
  job->info.state = std::string(state_name(job->state));
  if (!counted) count_recorded(job->state, job->info.client);
  Job& ref = *job;
  std::string id = job->info.id;
  jobs_.insert_or_assign(std::move(id), std::move(job));
  return ref;
}

void JobTable::count_recorded(JobState state, const std::string& client) {
  state_counts_[static_cast<std::size_t>(state)]++;
  client_counts_[client]++;
}

void JobTable::set_state(Job& job, JobState state) {
  auto& from = state_counts_[static_cast<std::size_t>(job.state)];
  if (from > 0) --from;
  state_counts_[static_cast<std::size_t>(state)]++;
  job.state = state;
  job.info.state = std::string(state_name(state));
}

void JobTable::remember_ended(const std::string& id, const std::function<bool(const std::string&)>& keep) {
  recent_ended_.push_back(id);
  while (recent_ended_.size() > keep_ended_) {
    const std::string& oldest = recent_ended_.front();
    auto it = jobs_.find(oldest);
    if (it != jobs_.end() && is_ended(it->second->state) && !keep(oldest)) jobs_.erase(it);
    recent_ended_.pop_front();
  }
}

std::map<std::string, std::uint64_t> JobTable::counts_by_state() const {
  std::map<std::string, std::uint64_t> out;
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    out[std::string(kStateNames[i])] = state_counts_[i];
  }
  return out;
}

}  // namespace kiln::scheduler
