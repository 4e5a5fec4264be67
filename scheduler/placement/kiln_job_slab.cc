// The kiln policy's job records (kiln_job_slab.h).
#include "scheduler/placement/kiln_job_slab.h"

namespace kiln::placement::kiln_internal {

JobIndex JobSlab::create(const std::string& id) {
  JobIndex j;
  if (!free_.empty()) {
    j = free_.back();
    free_.pop_back();
  } else {
    jobs_.emplace_back();
    j = static_cast<JobIndex>(jobs_.size() - 1);
  }
  jobs_[j].id = id;
  ids_.emplace(id, j);
  return j;
}

void JobSlab::release(JobIndex j) {
  KilnJob& J = jobs_[j];
  ids_.erase(J.id);
  J.state = JobState::kFree;
  ++J.generation;
  J.worker = kNoWorker;
  J.chain.clear();
  J.chain.shrink_to_fit();
  J.tail.clear();
  free_.push_back(j);
}

}  // namespace kiln::placement::kiln_internal
