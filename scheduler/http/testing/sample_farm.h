// A hand-made FarmView of a small farm, shared by the http unit tests, the
// HTTP server tests (tests/http) and docs/api.md's examples, so that all
// three show the same figures.
//
//   std::shared_ptr<const FarmView> view = kiln::http::testing::sample_farm();
//
// Two pools: linux-x86_64 (target wait 300 s; workers builder-a active,
// builder-b paused and low on disk, old-box disconnected) and linux-arm64
// (target 120 s; worker arm-1). Jobs j101..j108 in every state; the exact
// values, and the figures they lead to, are commented in sample_farm.cc.
// Thread safety: values.
#pragma once

#include <memory>

#include "scheduler/http/farm_view.h"

namespace kiln::http::testing {

// The log text sample_farm()'s running job j103 has produced so far.
inline constexpr const char* kSampleRunningLog =
    "step 1/3: (from busybox) cached\nstep 2/3: (run (shell \"make -j4\")) building...\ncompiling kiln.cc\n";

std::shared_ptr<const FarmView> sample_farm();

}  // namespace kiln::http::testing
