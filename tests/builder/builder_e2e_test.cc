// End-to-end tests of `kiln build` and friends: the real `kiln` binary, runc,
// real stores, and the base image scripts/make-base-image builds (once per
// test process, into the temp KILN_HOME, where `(from busybox)` finds it).
// Needs root (runc, overlay mounts, loop devices for btrfs and xfs).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/spec/spec.h"
#include "tests/store/store_test_util.h"
#include "tests/support/kiln_output.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "worker/builder/builder.h"
#include "worker/fetcher/fetcher.h"
#include "worker/sandbox/runc_sandbox.h"
#include "worker/store/store.h"

namespace kiln {
namespace {

using testing::count_of;
using testing::got_id;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;
using testing::run_process;

void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// Every file under `dir` whose content holds `needle` (a recursive grep).
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  ProcessResult r = run_process({"/bin/grep", "-rlF", "--no-messages", needle, dir});
  std::vector<std::string> out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) out.push_back(line);
  return out;
}

// A KILN_HOME of its own, under /var/tmp (as it always was). Stores mount
// overlays below it: TempDir unmounts them before removing it.
class KilnHome {
 public:
  const std::string& path() const { return dir_.path(); }

 private:
  testing::TempDir dir_{"kiln-builder-e2e", "/var/tmp"};
};

class BuilderE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_ = new KilnHome;
    ProcessResult r = run_process(
        {testing::source_dir() + "/scripts/make-base-image", images_->path() + "/images/busybox"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete images_;
    images_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(images_, nullptr);
    // Each test gets its own KILN_HOME, with the suite's base image linked in.
    std::filesystem::create_directories(home_.path() + "/images");
    std::filesystem::create_directory_symlink(images_->path() + "/images/busybox",
                                              home_.path() + "/images/busybox");
    context_ = home_.path() + "/context";
    std::filesystem::create_directories(context_);
  }

  // Runs `kiln ARGS...` with this test's KILN_HOME, and with `--store store_`
  // for the commands that open a store when a test chose one.
  ProcessResult kiln(std::vector<std::string> args) {
    static const std::vector<std::string> kStoreCommands = {"build", "stats", "prune",      "delete",
                                                            "clean", "df",    "healthcheck"};
    if (!store_.empty() && !args.empty() &&
        std::find(kStoreCommands.begin(), kStoreCommands.end(), args[0]) != kStoreCommands.end())
      args.insert(args.begin() + 1, {"--store", store_});
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path()};
    argv.insert(argv.end(), env_.begin(), env_.end());
    argv.push_back(KILN_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv);
  }

  // The directory the store's files are in (for looking through them).
  std::string store_dir() const { return store_dir_.empty() ? home_.path() + "/store" : store_dir_; }

  std::string spec_file(const std::string& name, const std::string& text) {
    std::string path = home_.path() + "/" + name;
    write_file(path, text);
    return path;
  }

  std::string examples() const { return testing::source_dir() + "/examples"; }

  static KilnHome* images_;
  KilnHome home_;
  std::string context_;
  std::string store_;             // "BACKEND:DIR"; empty: kiln's default (overlayfs in KILN_HOME)
  std::string store_dir_;         // DIR of store_
  std::vector<std::string> env_;  // more NAME=VALUE for kiln's environment
};

// The main end-to-end cases run on every store backend, each on a filesystem
// of its kind (btrfs and xfs on loop devices from tests/store's fixture,
// overlayfs and rsync on ext4).
class BuilderE2eStoreTest : public BuilderE2eTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    BuilderE2eTest::SetUp();
    std::string backend = GetParam();
    std::string fs = backend == "btrfs" || backend == "xfs" ? backend : "ext4";
    store_dir_ = store::testing::TestFilesystems::get().fresh_dir(fs);
    store_ = backend + ":" + store_dir_;
  }
};

KilnHome* BuilderE2eTest::images_ = nullptr;

TEST_P(BuilderE2eStoreTest, SimpleBuildThenEveryStepFromCache) {
  std::string spec = examples() + "/hello.spec";
  ProcessResult first = kiln({"build", "-f", spec, examples() + "/context"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, HasSubstr("hello.sh running as uid 0 in /app"));
  EXPECT_EQ(count_of(first.out, "---> saved as"), 5u) << first.out;
  std::string id = got_id(first);
  ASSERT_FALSE(id.empty()) << first.out;

  ProcessResult ids = kiln({"spec", "ids", "-f", spec, examples() + "/context"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_THAT(ids.out, HasSubstr(id + "  (run (shell \"cat greeting.txt"));

  ProcessResult second = kiln({"build", "-f", spec, examples() + "/context"});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), id);
  EXPECT_EQ(count_of(second.out, " from cache"), 5u) << second.out;
  EXPECT_THAT(second.out, Not(HasSubstr("saved as")));
  // The cached steps' logs are replayed.
  EXPECT_THAT(second.out, HasSubstr("hello.sh running as uid 0 in /app"));

  ProcessResult stats = kiln({"stats"});
  EXPECT_THAT(stats.out, HasSubstr("results: 5"));
  EXPECT_THAT(stats.out, HasSubstr("cache hits: 5"));
}

// A fully cached build starts no runtime process at all: with a `runc` first
// in PATH that only records its calls and fails, it still succeeds and the
// fake was never called; a step that must run then reports the broken runc.
// Nor does it write to the store's metadata database (no file added or
// changed: RocksDB's writable open would add a manifest and an OPTIONS file).
TEST_F(BuilderE2eTest, ACachedBuildStartsNoRuntimeProcess) {
  std::string spec = examples() + "/hello.spec";
  ProcessResult first = kiln({"build", "-f", spec, examples() + "/context"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  auto database_files = [&] {
    std::map<std::string, std::pair<std::uintmax_t, std::filesystem::file_time_type>> files;
    for (const auto& e : std::filesystem::directory_iterator(home_.path() + "/store/state/metadata"))
      files[e.path().filename().string()] = {e.file_size(), e.last_write_time()};
    return files;
  };
  auto database_before = database_files();

  const std::string bin = home_.path() + "/fake-bin", calls = home_.path() + "/runc-calls";
  std::filesystem::create_directories(bin);
  write_file(bin + "/runc", "#!/bin/sh\necho \"$@\" >> " + calls + "\nexit 1\n");
  std::filesystem::permissions(bin + "/runc", std::filesystem::perms::owner_all);
  const char* path = std::getenv("PATH");
  env_ = {"PATH=" + bin + ":" + (path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin")};

  ProcessResult cached = kiln({"build", "-f", spec, examples() + "/context"});
  ASSERT_EQ(cached.exit_code, 0) << cached.out << cached.err;
  EXPECT_EQ(count_of(cached.out, " from cache"), 5u) << cached.out;
  EXPECT_FALSE(std::filesystem::exists(calls)) << "the runtime was started for a fully cached build";
  EXPECT_EQ(database_files(), database_before) << "a fully cached build wrote to the store's database";
  ProcessResult stats = kiln({"stats"});
  EXPECT_THAT(stats.out, HasSubstr("cache hits: 5")) << "the cached build's hits were not counted";

  ProcessResult cold =
      kiln({"build", "-f", spec_file("new.spec", R"(((from busybox) (run (shell "true"))))"), context_});
  EXPECT_NE(cold.exit_code, 0) << cold.out;
  EXPECT_THAT(cold.err, HasSubstr("does not run"));
  EXPECT_TRUE(std::filesystem::exists(calls));
}

TEST_F(BuilderE2eTest, EveryExampleBuilds) {
  write_file(home_.path() + "/token", "example-token");
  int built = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples())) {
    if (entry.path().extension() != ".spec") continue;
    ProcessResult r = kiln({"build", "-f", entry.path().string(), "--secret",
                            "token:" + home_.path() + "/token", examples() + "/context"});
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.out << r.err;
    EXPECT_FALSE(got_id(r).empty()) << entry.path();
    ++built;
  }
  EXPECT_GE(built, 3);
}

TEST_P(BuilderE2eStoreTest, MultiStageCopyTakesOnlyWhatItNames) {
  write_file(context_ + "/src/main.txt", "source\n");
  std::string spec = spec_file("multi.spec", R"(((build dev
        ((from busybox)
         (copy (src src) (dst /src))
         (run (shell "mkdir -p /out && tr a-z A-Z < /src/main.txt > /out/app && echo scratch > /out/junk"))))
 (from busybox)
 (user (uid 1000) (gid 1000))
 (copy (from (build dev)) (src /out/app) (dst /usr/local/bin/app))
 (run (shell "cat /usr/local/bin/app && test ! -e /out && test ! -e /src && stat -c '%u:%g %a' /usr/local/bin/app")))
)");
  ProcessResult r = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SOURCE\n1000:1000 644\n"));
}

TEST_P(BuilderE2eStoreTest, CachesPersistAcrossBuilds) {
  std::string writer = spec_file("writer.spec", R"(((from busybox)
 (run (cache (shared (target /cache))) (shell "echo remembered-$((6*7)) > /cache/note"))))");
  std::string reader = spec_file("reader.spec", R"(((from busybox)
 (run (cache (shared (target /cache))) (shell "cat /cache/note"))))");
  ProcessResult w = kiln({"build", "-f", writer, context_});
  ASSERT_EQ(w.exit_code, 0) << w.out << w.err;
  ProcessResult r = kiln({"build", "-f", reader, context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("remembered-42"));
}

TEST_P(BuilderE2eStoreTest, SecretsStayOutOfSnapshotsIdsAndLogs) {
  const std::string value = "s3cr3t-e2e-value-7f1c";
  write_file(home_.path() + "/secret.txt", value);
  std::string spec = spec_file("secret.spec", R"(((from busybox)
 (run (secrets (token (target /run/secrets/token)))
      (shell "test \"$(rev /run/secrets/token)\" = c1f7-eulav-e2e-t3rc3s && wc -c < /run/secrets/token > /token-size"))
 (run (shell "test ! -e /run/secrets/token && cat /token-size"))))");
  ProcessResult r =
      kiln({"build", "-f", spec, "--secret", "token:" + home_.path() + "/secret.txt", context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("21\n"));  // the next step sees only what the first wrote
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(value)));
  EXPECT_THAT(got_id(r), Not(HasSubstr(value)));
  // Nowhere in the store: no snapshot, log or metadata holds it.
  EXPECT_THAT(files_containing(store_dir(), value), ::testing::IsEmpty());
  // ...while the search does reach the store's logs (they hold the step's command).
  EXPECT_THAT(files_containing(store_dir(), "c1f7-eulav-e2e-t3rc3s"), Not(::testing::IsEmpty()));

  ProcessResult missing = kiln({"build", "-f", spec_file("other.spec", R"(((from busybox)
 (run (secrets (other (target /run/secrets/other))) (shell "true"))))"),
                                context_});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("secret other not provided; pass --secret other:FILE"));
}

TEST_P(BuilderE2eStoreTest, FailingStepIsNotCached) {
  std::string spec = spec_file("fail.spec", R"(((from busybox)
 (run (shell "echo attempt; exit 3"))))");
  ProcessResult first = kiln({"build", "-f", spec, context_});
  EXPECT_EQ(first.exit_code, 1);
  EXPECT_THAT(first.err, HasSubstr("fail.spec:2:2: run: command exited with status 3"));
  EXPECT_THAT(first.err, HasSubstr("attempt"));  // the log's tail
  ProcessResult second = kiln({"build", "-f", spec, context_});
  EXPECT_EQ(second.exit_code, 1);
  // Run again, not served from a cache: the base alone is.
  EXPECT_EQ(count_of(second.out, " from cache"), 1u) << second.out;
  EXPECT_EQ(count_of(second.out, "attempt\n"), 1u);
  ProcessResult stats = kiln({"stats"});
  EXPECT_THAT(stats.out, HasSubstr("results: 1"));
}

TEST_F(BuilderE2eTest, HealthcheckPruneAndDelete) {
  ProcessResult health = kiln({"healthcheck"});
  ASSERT_EQ(health.exit_code, 0) << health.out << health.err;
  EXPECT_THAT(health.out, HasSubstr("healthy"));
  std::string spec =
      spec_file("two.spec", R"(((from busybox) (run (shell "echo one")) (run (shell "echo two"))))");
  ProcessResult built = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(built.exit_code, 0) << built.err;
  ProcessResult pruned = kiln({"prune", "--limit", "1"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_THAT(pruned.out, HasSubstr("deleting " + got_id(built)));
  EXPECT_THAT(kiln({"stats"}).out, HasSubstr("results: 2"));
  ProcessResult again = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  // Deleting the base removes everything built on it.
  std::string base_line = again.out.substr(again.out.find("---> using ") + 11, 64);
  ProcessResult deleted = kiln({"delete", base_line});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(count_of(deleted.out, "deleting "), 3u) << deleted.out;
  EXPECT_THAT(kiln({"stats"}).out, HasSubstr("results: 0"));
  // clean removes whole chains, leaves first.
  ASSERT_EQ(kiln({"build", "-f", spec, context_}).exit_code, 0);
  ProcessResult cleaned = kiln({"clean"});
  ASSERT_EQ(cleaned.exit_code, 0) << cleaned.err;
  EXPECT_THAT(cleaned.out, HasSubstr("deleted 3 results"));
  EXPECT_THAT(kiln({"stats"}).out, HasSubstr("results: 0"));
}

TEST_F(BuilderE2eTest, OnlyLoopbackUnlessTheStepAsksForHostNetwork) {
  std::string spec = spec_file("net.spec", R"spec(((from busybox)
 (run (shell "echo default: $(ls /sys/class/net) end"))
 (run (network host) (shell "echo host: $(ls /sys/class/net | wc -l) interfaces"))))spec");
  ProcessResult r = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("default: lo end\n"));
  std::size_t host_interfaces = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net")) {
    (void)entry;
    ++host_interfaces;
  }
  EXPECT_THAT(r.out, HasSubstr(fmt::format("host: {} interfaces", host_interfaces)));
}

TEST_F(BuilderE2eTest, CtrlCCancelsCleanlyAndLeavesNoProcess) {
  std::string spec = spec_file("slow.spec", R"(((from busybox) (run (shell "echo started; sleep 4242"))))");
  // Interrupt the build once its step has started, as a user pressing Ctrl-C.
  std::string script = fmt::format(
      "env KILN_HOME={} {} build -f {} {} > {}/out 2> {}/err & pid=$!; "
      "for i in $(seq 100); do grep -q started {}/out && break; sleep 0.1; done; "
      "kill -INT $pid; wait $pid; echo exit=$?; "
      "pgrep -f '[s]leep 4242' > /dev/null && echo left-behind || echo none-left",
      home_.path(), KILN_BINARY, spec, context_, home_.path(), home_.path(), home_.path());
  ProcessResult r = run_process({"/bin/sh", "-c", script});
  EXPECT_THAT(r.out, HasSubstr("exit=130"));
  EXPECT_THAT(r.out, HasSubstr("none-left"));
  std::ifstream err(home_.path() + "/err");
  std::stringstream err_text;
  err_text << err.rdbuf();
  EXPECT_THAT(err_text.str(), HasSubstr("build cancelled"));
  // Nothing was recorded for the cancelled step: only the base is there.
  EXPECT_THAT(kiln({"stats"}).out, HasSubstr("results: 1"));
}

TEST_F(BuilderE2eTest, StepLimitsAndBadFlagsAreReported) {
  std::string spec = spec_file("slow.spec", R"(((from busybox) (run (shell "echo begun; sleep 30"))))");
  ProcessResult timed_out = kiln({"build", "-f", spec, "--step-timeout", "1", context_});
  EXPECT_EQ(timed_out.exit_code, 1);
  EXPECT_THAT(timed_out.err, HasSubstr("slow.spec:1:17: run: timed out after 1 s"));
  EXPECT_THAT(timed_out.err, HasSubstr("begun"));

  ProcessResult bad_secret = kiln({"build", "-f", spec, "--secret", "token", context_});
  EXPECT_EQ(bad_secret.exit_code, 2);
  EXPECT_THAT(bad_secret.err, HasSubstr("expected ID:FILE"));
  ProcessResult bad_alias = kiln({"build", "-f", spec, "--image-alias", "busybox", context_});
  EXPECT_EQ(bad_alias.exit_code, 1);
  EXPECT_THAT(bad_alias.err, HasSubstr("expected NAME=REF"));
  ProcessResult bad_before = kiln({"prune", "--before", "yesterday"});
  EXPECT_EQ(bad_before.exit_code, 1);
  EXPECT_THAT(bad_before.err, HasSubstr("expected an age"));
  // Without the default image, (from busybox) cannot be fetched: say how to make it.
  std::filesystem::remove(home_.path() + "/images/busybox");
  ProcessResult no_image = kiln({"build", "-f", spec_file("base.spec", "((from busybox))"), "--store",
                                 "overlayfs:" + home_.path() + "/empty-store", context_});
  EXPECT_EQ(no_image.exit_code, 1);
  EXPECT_THAT(no_image.err, HasSubstr("scripts/make-base-image " + home_.path() + "/images/busybox"));
}

// `kiln build` blocks SIGINT and SIGTERM in its own threads to turn them into
// a cancel; the step's processes must not inherit that.
TEST_F(BuilderE2eTest, StepsStartWithNoSignalsBlocked) {
  std::string spec = spec_file("signals.spec", R"spec(((from busybox)
 (run (shell "grep SigBlk /proc/self/status; sleep 10 & p=$!; kill -TERM $p; wait $p; echo status=$?"))))spec");
  ProcessResult r = kiln({"build", "-f", spec, context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SigBlk:\t0000000000000000\n"));
  EXPECT_THAT(r.out, HasSubstr("status=143\n"));
}

TEST_F(BuilderE2eTest, BuildsWithCrunToo) {
  std::string spec =
      spec_file("crun.spec", R"(((from busybox) (run (shell "echo runtime-ok > /ok && cat /ok"))))");
  ProcessResult r = kiln({"build", "-f", spec, "--oci-runtime", "crun", context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("runtime-ok\n"));
  // Same ids whatever the runtime: runc finds the step cached.
  ProcessResult again = kiln({"build", "-f", spec, "--oci-runtime", "runc", context_});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(got_id(again), got_id(r));
  EXPECT_EQ(count_of(again.out, " from cache"), 2u);
}

// --userns: the step's root is host uid 1000000000; the default overlayfs
// store cannot be idmapped, so it is refused before anything runs.
TEST_F(BuilderE2eTest, UsernsRunsStepsAsAnUnprivilegedHostUidAndNeedsAnIdmappableStore) {
  std::string spec =
      spec_file("userns.spec", R"(((from busybox) (run (shell "cat /proc/self/uid_map; id -u"))))");
  ProcessResult refused = kiln({"build", "-f", spec, "--userns", "--oci-runtime", "runc", context_});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.err,
              HasSubstr("--userns needs a store the kernel can idmap: --store btrfs:DIR, xfs:DIR"));
  EXPECT_FALSE(std::filesystem::exists(home_.path() + "/store"));

  ProcessResult r =
      kiln({"build", "-f", spec, "--userns", "--store", "rsync:" + home_.path() + "/rsync", context_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("0 +1000000000 +65536\n0\n"));
}

// The builder library in one process with the real runc sandbox and a real
// overlayfs store: what two `kiln build` processes cannot do on one store
// (RocksDB's lock), i.e. concurrent builds and a prune during a build.
//
// The sandbox is wrapped to count runc runs and to bind-mount a host
// directory at /gate in every step, through which a step leaves a host-visible
// mark (`/gate/count`) and waits until the test lets it finish (`/gate/go`).
class GateSandbox final : public sandbox::Sandbox {
 public:
  GateSandbox(sandbox::Sandbox& real, std::string gate_dir) : real_(real), gate_dir_(std::move(gate_dir)) {}
  Status run(const sandbox::RunSpec& spec, const std::string& rootfs, const sandbox::OutputSink& on_output,
             CancelToken& cancel) override {
    runs_.fetch_add(1);
    sandbox::RunSpec with_gate = spec;
    with_gate.mounts.push_back({.source = gate_dir_, .destination = "/gate", .read_only = false});
    return real_.run(with_gate, rootfs, on_output, cancel);
  }
  int runs() const { return runs_.load(); }

 private:
  sandbox::Sandbox& real_;
  std::string gate_dir_;
  std::atomic<int> runs_{0};
};

// A request's log, collected thread-safely, with a wait for some text.
class CollectedLog {
 public:
  builder::LogSink sink() {
    return [this](builder::LogTag, std::string_view text) {
      std::lock_guard lock(mu_);
      text_.append(text);
      changed_.notify_all();
    };
  }
  // Waits (at most a minute, so a broken build fails instead of hanging) until the log holds `needle`.
  bool wait_for(const std::string& needle) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::minutes(1),
                             [&] { return text_.find(needle) != std::string::npos; });
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::string text_;
};

class BuilderE2eInProcessTest : public BuilderE2eTest {
 protected:
  void SetUp() override {
    BuilderE2eTest::SetUp();
    gate_ = home_.path() + "/gate";
    std::filesystem::create_directories(gate_);
    std::filesystem::create_directories(home_.path() + "/store");
    auto store = store::open_store("overlayfs:" + home_.path() + "/store");
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    auto runc = sandbox::RuncSandbox::create({.state_dir = home_.path() + "/sandbox"});
    ASSERT_TRUE(runc) << runc.error().to_string();
    runc_ = std::move(*runc);
    sandbox_ = std::make_unique<GateSandbox>(*runc_, gate_);
    fetcher_ = fetcher::make_fetcher();
    builder::BuilderOptions options;
    options.image_aliases["busybox"] = "oci:" + images_->path() + "/images/busybox:latest";
    builder_ = std::make_unique<builder::Builder>(*store_, *sandbox_, *fetcher_, options);
  }
  void TearDown() override {
    // Let any step still waiting on the gate end, then close in order.
    write_file(gate_ + "/go", "");
    builder_.reset();
    fetcher_.reset();
    sandbox_.reset();
    runc_.reset();
    store_.reset();
  }

  Result<std::string> build(const std::string& text, CollectedLog& log) {
    KILN_ASSIGN_OR_RETURN(spec::Spec spec, spec::parse_spec(text, "inproc.spec"));
    builder::BuildRequest request;
    request.spec = std::move(spec);
    request.spec_name = "inproc.spec";
    request.context_dir = context_;
    request.log = log.sink();
    return builder_->build(request);
  }

  bool stored(const std::string& id) { return store_->info(id).has_value(); }

  std::string gate_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<sandbox::RuncSandbox> runc_;
  std::unique_ptr<GateSandbox> sandbox_;
  std::unique_ptr<fetcher::Fetcher> fetcher_;
  std::unique_ptr<builder::Builder> builder_;
};

// The step runs until the test opens the gate, so the second build is
// known to arrive while the first one's step is running.
constexpr const char* kGatedSpec = R"(((from busybox)
 (run (shell "echo ran >> /gate/count; echo ran; while [ ! -e /gate/go ]; do sleep 0.05; done"))))";

TEST_F(BuilderE2eInProcessTest, ConcurrentIdenticalBuildsExecuteOnce) {
  CollectedLog first_log, second_log;
  auto first = std::async(std::launch::async, [&] { return build(kGatedSpec, first_log); });
  ASSERT_TRUE(first_log.wait_for("ran\n")) << first_log.text();
  auto second = std::async(std::launch::async, [&] { return build(kGatedSpec, second_log); });
  // The second request follows the running step: it is sent the log so far.
  ASSERT_TRUE(second_log.wait_for("ran\n")) << second_log.text();
  write_file(gate_ + "/go", "");
  auto first_id = first.get();
  auto second_id = second.get();
  ASSERT_TRUE(first_id) << first_id.error().to_string();
  ASSERT_TRUE(second_id) << second_id.error().to_string();
  EXPECT_EQ(*first_id, *second_id);
  // One execution: one runc run, one line in the host file the step appends to.
  EXPECT_EQ(sandbox_->runs(), 1);
  EXPECT_EQ(store::testing::read_file(gate_ + "/count"), "ran\n");
  EXPECT_EQ(count_of(first_log.text(), "ran\n"), 1u) << first_log.text();
  EXPECT_EQ(count_of(second_log.text(), "ran\n"), 1u) << second_log.text();
  EXPECT_EQ(count_of(first_log.text() + second_log.text(), "---> saved as " + *first_id), 2u);
  EXPECT_TRUE(stored(*first_id));
}

TEST_F(BuilderE2eInProcessTest, PruneUnderARunningBuildKeepsItsBase) {
  CollectedLog done_log;
  auto done = build(R"(((from busybox) (run (shell "echo finished"))))", done_log);
  ASSERT_TRUE(done) << done.error().to_string();
  // The running build shares the busybox base with the finished one.
  std::string base = done_log.text().substr(done_log.text().find("---> saved as ") + 14, 64);
  ASSERT_TRUE(stored(base));
  CollectedLog running_log;
  auto running = std::async(std::launch::async, [&] { return build(kGatedSpec, running_log); });
  ASSERT_TRUE(running_log.wait_for("ran\n")) << running_log.text();

  std::vector<std::string> deleted;
  auto removed = builder_->prune(std::chrono::system_clock::now() + std::chrono::hours(1),
                                 std::numeric_limits<std::size_t>::max(),
                                 [&](const std::string& id) { deleted.push_back(id); });
  ASSERT_TRUE(removed) << removed.error().to_string();
  // Only the finished build's leaf goes; the base, now a leaf too, is pinned.
  EXPECT_EQ(deleted, std::vector<std::string>{*done});
  EXPECT_FALSE(stored(*done));
  EXPECT_TRUE(stored(base));

  write_file(gate_ + "/go", "");
  auto id = running.get();
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_TRUE(stored(*id));
  ASSERT_TRUE(store_->info(*id)->parent.has_value());
  EXPECT_EQ(*store_->info(*id)->parent, base);
  // Nothing pins them any more: a second prune removes the chain.
  auto later = builder_->prune(std::chrono::system_clock::now() + std::chrono::hours(1),
                               std::numeric_limits<std::size_t>::max());
  ASSERT_TRUE(later) << later.error().to_string();
  EXPECT_EQ(*later, 2u);
  EXPECT_FALSE(stored(base));
}

INSTANTIATE_TEST_SUITE_P(Backends, BuilderE2eStoreTest,
                         ::testing::Values("overlayfs", "rsync", "btrfs", "xfs"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace kiln
