// Spec parsing and step id computation throughput for a typical 20-op spec:
// how many specs (and ops) per second the scheduler can turn into id chains.
//
//   build/bench/spec_ids_benchmark
//
// Reported counters: specs/s and ops/s. The context is a ContextManifest
// (what the scheduler holds), so no filesystem work is timed.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "common/ids/manifest.h"
#include "common/ids/step_id.h"
#include "common/spec/spec.h"

namespace {

using kiln::ids::ContextManifest;

// 20 ops: a child build and a main stage, with every kind of op.
constexpr const char* kTypicalSpec = R"(
((build deps
  ((from ocaml/opam:debian-12-ocaml-5.1)
   (workdir /src)
   (user (uid 1000) (gid 1000))
   (env OPAMYES 1)
   (env DUNE_CACHE disabled)
   (copy (src app.opam) (dst ./))
   (run (cache (opam-archives (target /home/opam/.opam/download-cache)))
        (network host)
        (shell "opam install --deps-only ."))
   (copy (src .) (dst /src/) (exclude .git _build))
   (run (shell "opam exec -- dune build @install --profile=release"))))
 (from debian:12-slim)
 (comment "runtime image")
 (shell /bin/bash -c)
 (env LANG C.UTF-8)
 (env APP_HOME /srv/app)
 (workdir /srv)
 (run (network host) (shell "apt-get update && apt-get install -y --no-install-recommends libev4"))
 (copy (from (build deps)) (src /src/_build/default/bin/main.exe) (dst /usr/local/bin/app))
 (copy (src config/app.conf) (dst app/))
 (user (uid 1000) (gid 1000))
 (run (secrets (token (target /run/secrets/token))) (shell "app --check-config app/app.conf"))
 (workdir app)
 (run (shell "app --selftest")))
)";
constexpr int kOpsPerSpec = 20;  // 8 in the child build, 12 in the main stage

ContextManifest& typical_context() {
  // A small context with the paths the spec copies, as the scheduler would hold it.
  static ContextManifest* context = [] {
    std::string hex(64, '0');
    auto file = [&](const char* path) {
      return "(4:file" + std::to_string(std::string(path).size()) + ":" + path + "64:" + hex + "1:-)";
    };
    auto dir = [](const char* path) {
      return "(3:dir" + std::to_string(std::string(path).size()) + ":" + path + ")";
    };
    std::string bytes = "(15:kiln-context-v1(3:dir0:)" + dir(".git") + file(".git/HEAD") + file("app.opam") +
                        dir("bin") + file("bin/dune") + file("bin/main.ml") + dir("config") +
                        file("config/app.conf") + file("dune-project") + dir("lib") + file("lib/dune");
    for (int i = 0; i < 40; ++i) bytes += file(("lib/m" + std::to_string(100 + i) + ".ml").c_str());
    bytes += ")";
    auto parsed = ContextManifest::parse(bytes);
    if (!parsed) std::abort();
    return new ContextManifest(std::move(*parsed));
  }();
  return *context;
}

void report(benchmark::State& state) {
  state.counters["specs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kOpsPerSpec, benchmark::Counter::kIsRate);
}

void BM_ParseSpec(benchmark::State& state) {
  for (auto _ : state) {
    auto spec = kiln::spec::parse_spec(kTypicalSpec, "typical.spec");
    if (!spec) state.SkipWithError(spec.error().to_string().c_str());
    benchmark::DoNotOptimize(spec);
  }
  report(state);
}
BENCHMARK(BM_ParseSpec);

void BM_ComputeStepIds(benchmark::State& state) {
  auto spec = kiln::spec::parse_spec(kTypicalSpec, "typical.spec");
  if (!spec) std::abort();
  ContextManifest& context = typical_context();
  for (auto _ : state) {
    auto steps = kiln::ids::compute_step_ids(*spec, &context, "typical.spec");
    if (!steps) state.SkipWithError(steps.error().to_string().c_str());
    benchmark::DoNotOptimize(steps);
  }
  report(state);
}
BENCHMARK(BM_ComputeStepIds);

void BM_ParseAndComputeStepIds(benchmark::State& state) {
  ContextManifest& context = typical_context();
  for (auto _ : state) {
    auto spec = kiln::spec::parse_spec(kTypicalSpec, "typical.spec");
    if (!spec) state.SkipWithError(spec.error().to_string().c_str());
    auto steps = kiln::ids::compute_step_ids(*spec, &context, "typical.spec");
    if (!steps) state.SkipWithError(steps.error().to_string().c_str());
    benchmark::DoNotOptimize(steps);
  }
  report(state);
}
BENCHMARK(BM_ParseAndComputeStepIds);

}  // namespace

BENCHMARK_MAIN();
