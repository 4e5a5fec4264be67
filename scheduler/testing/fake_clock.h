// A Clock for driving the scheduler's core without waiting: the unit tests'
// fixture (core_fixture.h) and the scheduler_handle fuzz target use it.
//
//   FakeClock clock;
//   Scheduler core(options, std::move(db), std::move(policy), clock);
//   clock.advance(10'000);  // leases run out without sleeping
#pragma once

#include <cstdint>

#include "scheduler/scheduler.h"

namespace kiln::scheduler::testing_support {

class FakeClock final : public Clock {
 public:
  std::int64_t steady_ms() override { return steady_; }
  std::int64_t wall_ms() override { return wall_; }
  void advance(std::int64_t ms) {
    steady_ += ms;
    wall_ += ms;
  }
  // The wall clock is fixed unless set (files the scheduler writes carry real times).
  void set_wall(std::int64_t ms) { wall_ = ms; }
  // A host reboot: the steady clock starts again, the wall clock goes on.
  void reboot() { steady_ = 1'000; }

 private:
  std::int64_t steady_ = 1'000'000;
  std::int64_t wall_ = 1'800'000'000'000;
};

}  // namespace kiln::scheduler::testing_support
