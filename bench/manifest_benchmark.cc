// Context manifest throughput: walking and hashing a generated tree, and the
// whole-context manifest operations the scheduler performs.
//
//   build/bench/manifest_benchmark                    # Google Benchmark suite
//   build/bench/manifest_benchmark --tree DIR [--threads N]
//       one manifest of all of DIR, printed as "<entries> entries, <bytes>
//       bytes, digest <hex>"; bench/manifest-vs-sha256sum times this mode
//       against sha256sum.
//
// The suite generates its tree (1,000 files, about 23 MB, nested directories,
// executables and symlinks) in a temporary directory and removes it on exit.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/ids/manifest.h"

namespace {

using kiln::ids::ContextManifest;
using kiln::ids::DirectoryContext;
using kiln::ids::Manifest;

struct GeneratedTree {
  std::string root;
  std::uint64_t bytes = 0;
  std::size_t files = 0;
};

// A deterministic tree: sizes mostly small with a long tail, as in source trees.
GeneratedTree& generated_tree() {
  static GeneratedTree* tree = [] {
    auto* t = new GeneratedTree;
    std::string pattern = (std::filesystem::temp_directory_path() / "kiln-manifest-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    t->root = pattern;
    std::mt19937_64 rng(42);
    std::string block(2 << 20, '\0');
    for (char& c : block) c = static_cast<char>(rng());
    for (int i = 0; i < 1000; ++i) {
      std::string dir = fmt::format("{}/d{}/e{}", t->root, i % 10, i % 37);
      std::filesystem::create_directories(dir);
      std::size_t size = i % 100 == 0 ? 1 << 20 : (rng() % 16384) + (i % 7 == 0 ? 32768 : 0);
      std::string path = fmt::format("{}/f{}.dat", dir, i);
      std::ofstream(path, std::ios::binary)
          .write(block.data() + (i * 4099) % (block.size() - size), static_cast<std::streamsize>(size));
      if (i % 13 == 0) ::chmod(path.c_str(), 0755);
      if (i % 50 == 0)
        std::filesystem::create_symlink(fmt::format("f{}.dat", i), fmt::format("{}/l{}", dir, i));
      t->bytes += size;
      ++t->files;
    }
    std::atexit([] { std::filesystem::remove_all(generated_tree().root); });
    return t;
  }();
  return *tree;
}

void BM_DirectoryManifest(benchmark::State& state) {
  GeneratedTree& tree = generated_tree();
  for (auto _ : state) {
    // A fresh context each time: one that lives on remembers file digests.
    auto dir = DirectoryContext::open(tree.root, static_cast<unsigned>(state.range(0)));
    if (!dir) std::abort();
    auto m = dir->manifest(".", {});
    if (!m) state.SkipWithError(m.error().to_string().c_str());
    benchmark::DoNotOptimize(m->digest());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * tree.bytes));
  state.counters["files/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * tree.files), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DirectoryManifest)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();

void BM_ContextManifestFromDirectory(benchmark::State& state) {
  GeneratedTree& tree = generated_tree();
  for (auto _ : state) {
    auto m = ContextManifest::from_directory(tree.root);
    if (!m) state.SkipWithError(m.error().to_string().c_str());
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * tree.bytes));
}
BENCHMARK(BM_ContextManifestFromDirectory)->UseRealTime();

void BM_ContextManifestSerializeAndParse(benchmark::State& state) {
  auto whole = ContextManifest::from_directory(generated_tree().root);
  if (!whole) std::abort();
  for (auto _ : state) {
    auto parsed = ContextManifest::parse(whole->serialize());
    if (!parsed) state.SkipWithError(parsed.error().to_string().c_str());
    benchmark::DoNotOptimize(parsed);
  }
  state.counters["entries/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * whole->entries().size()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ContextManifestSerializeAndParse);

void BM_SelectFromContextManifest(benchmark::State& state) {
  auto whole = ContextManifest::from_directory(generated_tree().root);
  if (!whole) std::abort();
  std::vector<std::string> exclude{"e3", ".git"};
  for (auto _ : state) {
    auto m = whole->select("d1", exclude);
    if (!m) state.SkipWithError(m.error().to_string().c_str());
    benchmark::DoNotOptimize(m->digest());
  }
}
BENCHMARK(BM_SelectFromContextManifest);

// --tree DIR [--threads N]
int manifest_of_tree(int argc, char** argv) {
  std::string root = argv[2];
  unsigned threads = 0;
  if (argc == 5 && std::string_view(argv[3]) == "--threads")
    threads = static_cast<unsigned>(std::atoi(argv[4]));
  auto dir = DirectoryContext::open(root, threads);
  if (!dir) {
    std::fprintf(stderr, "manifest_benchmark: %s\n", dir.error().to_string().c_str());
    return 1;
  }
  auto m = dir->manifest(".", {});
  if (!m) {
    std::fprintf(stderr, "manifest_benchmark: %s\n", m.error().to_string().c_str());
    return 1;
  }
  std::uint64_t bytes = 0;
  for (const auto& entry : m->entries) {
    if (entry.type != kiln::ids::ManifestEntry::Type::kFile) continue;
    struct stat st {};
    if (::lstat((root + "/" + entry.path).c_str(), &st) == 0) bytes += static_cast<std::uint64_t>(st.st_size);
  }
  std::printf("%zu entries, %llu bytes, digest %s\n", m->entries.size(),
              static_cast<unsigned long long>(bytes), m->digest().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string_view(argv[1]) == "--tree") return manifest_of_tree(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
