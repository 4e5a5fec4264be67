// The scheduler's jobs in memory: every queued and running job, and the
// most recently ended ones (older ended jobs are read from the JobDb), with
// each job's state as an enum and the per-state and per-client counts over
// every job in the database.
//
//   JobTable table(1000);                         // keep 1,000 ended jobs
//   Job& job = table.add(std::move(new_job));     // counted
//   table.set_state(job, JobState::kAssigned);    // the one place a state changes
//   if (Job* j = table.find("j42")) ...
//
// A Job's `info.state` (the text clients and the database see) always
// equals state_name(job.state): only set_state() and add() write either.
// Thread safety: one thread (the event loop).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/proto/messages.h"

namespace kiln::scheduler {

enum class JobState : std::uint8_t { kQueued, kAssigned, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view state_name(JobState state);
std::optional<JobState> parse_state(std::string_view text);
inline bool is_ended(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}
inline bool is_active(JobState s) {
  return s == JobState::kAssigned || s == JobState::kRunning;
}

// Job ids are "j" and the job's number in the database.
std::string job_id_of(std::uint64_t seq);
std::optional<std::uint64_t> seq_of(std::string_view id);

struct Job {
  std::uint64_t seq = 0;
  JobState state = JobState::kQueued;
  proto::JobInfo info;                 // what is stored and shown; info.state mirrors `state`
  std::vector<proto::Secret> secrets;  // memory only
  std::int64_t assigned_steady_ms = 0;
  std::int64_t deadline_ms = 0;    // timeout (steady); 0: none
  std::int64_t reclaim_by_ms = 0;  // recovered active job: requeue if no worker claims it by then
};

class JobTable {
 public:
  explicit JobTable(std::size_t keep_ended) : keep_ended_(keep_ended) {}

  Job* find(const std::string& id);
  const Job* find(const std::string& id) const;
  // Takes a job in (its `state` decides info.state). Counted unless
  // `counted` (a recovered job already counted by count_recorded()).
  Job& add(std::unique_ptr<Job> job, bool counted = false);
  void set_state(Job& job, JobState state);
  // Counts a job read from the database without keeping it in memory.
  void count_recorded(JobState state, const std::string& client);

  // An ended job joins the recent-ended window; the oldest beyond the
  // window are dropped from memory unless `keep(id)` says they are still
  // needed (held replies).
  void remember_ended(const std::string& id, const std::function<bool(const std::string&)>& keep);
  const std::deque<std::string>& recent_ended() const { return recent_ended_; }

  template <class Fn>
  void for_each(Fn&& fn) {
    for (auto& [id, job] : jobs_) fn(*job);
  }
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [id, job] : jobs_) fn(static_cast<const Job&>(*job));
  }
  std::size_t size() const { return jobs_.size(); }

  std::map<std::string, std::uint64_t> counts_by_state() const;
  const std::map<std::string, std::uint64_t>& counts_by_client() const { return client_counts_; }

 private:
  std::size_t keep_ended_;
  std::unordered_map<std::string, std::unique_ptr<Job>> jobs_;  // active and recent
  std::deque<std::string> recent_ended_;                        // oldest first
  std::uint64_t state_counts_[6] = {};                          // by JobState, over the database
  std::map<std::string, std::uint64_t> client_counts_;          // jobs submitted, by client, likewise
};

}  // namespace kiln::scheduler
