// The Builder against a real overlayfs store in a temp dir, the FakeSandbox
// and a fake fetcher that writes a tiny rootfs. Needs root (overlay mounts).
#include "worker/builder/builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/ids/step_id.h"
#include "common/ids/temp_tree_for_test.h"
#include "worker/builder/step_environment.h"
#include "worker/sandbox/fake_sandbox.h"

namespace kiln::builder {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes /bin/sh, /etc/os-release and /etc/passwd (root, app, nobody); the
// image's env is PATH and FROM_IMAGE, except for the image "bare", whose
// config sets no Env at all (like a debootstrap tree packed with umoci).
// Reports one layer line and one byte count, as a fetch of a big layer does.
class FakeFetcher final : public fetcher::Fetcher {
 public:
  Result<fetcher::ImageConfig> fetch(const fetcher::Progress& progress, const std::string& rootfs,
                                     std::string_view image,
                                     const fetcher::FetchOptions&) override {
    ++fetches;
    progress(fetcher::ProgressKind::kLayer, fmt::format("unpacking {}", image));
    progress(fetcher::ProgressKind::kBytesRead, "  layer 1/1: 16.0 MiB of 20.0 MiB");
    std::filesystem::create_directories(rootfs + "/bin");
    std::filesystem::create_directories(rootfs + "/etc");
    std::ofstream(rootfs + "/bin/sh") << "#!fake shell\n";
    std::ofstream(rootfs + "/etc/os-release") << "image=" << image << "\n";
    std::ofstream(rootfs + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                             "# a comment, and a line that is no entry\n"
                                             "broken\n"
                                             "app:x:1000:1001:App:/home/app:/bin/sh\n"
                                             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    fetcher::ImageConfig config;
    if (image != "bare") config.env = {{"PATH", "/usr/bin:/bin"}, {"FROM_IMAGE", std::string(image)}};
    return config;
  }
  std::atomic<int> fetches{0};
};

// Collects a build's log (thread-safe: steps log from their own threads).
class LogCollector {
 public:
  LogSink sink() {
    return [this](LogTag tag, std::string_view text) {
      std::lock_guard lock(mu_);
      text_ += text;
      if (tag == LogTag::kNote) notes_ += text;
      cv_.notify_all();
    };
  }
  std::string text() const {
    std::lock_guard lock(mu_);
    return text_;
  }
  std::string notes() const {
    std::lock_guard lock(mu_);
    return notes_;
  }
  void wait_for(std::string_view needle) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return text_.find(needle) != std::string::npos; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::string notes_;
};

// A gate a fake command waits at until the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// FakeSandbox answers, spelled out (designated initialisers would leave
// members unnamed, which -Wextra rejects).
sandbox::FakeSandbox::Answer answer(std::string output, std::function<void(const std::string&)> effect = {},
                                    Status status = {}) {
  sandbox::FakeSandbox::Answer a;
  a.output = std::move(output);
  a.effect = std::move(effect);
  a.status = std::move(status);
  return a;
}
sandbox::FakeSandbox::Answer blocked_until_cancelled() {
  sandbox::FakeSandbox::Answer a;
  a.wait_for_cancel = true;
  return a;
}

spec::Spec parse(std::string_view text) {
  auto s = spec::parse_spec(text, "test.spec");
  if (!s) ADD_FAILURE() << s.error().to_string();
  return s.value_or(spec::Spec{});
}

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::open_store("overlayfs:" + tree_.host("store"));
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    tree_.file("ctx/greeting.txt", "hello\n");
    tree_.file("ctx/scripts/run.sh", "#!/bin/sh\necho hi\n", 0700);
    tree_.symlink("ctx/scripts/link", "run.sh");
    builder_ = std::make_unique<Builder>(*store_, sandbox_, fetcher_);
  }
  void TearDown() override {
    builder_.reset();
    store_.reset();
  }

  BuildRequest request(std::string_view spec_text, LogCollector* log = nullptr,
                       CancelToken* cancel = nullptr) {
    BuildRequest r;
    r.spec = parse(spec_text);
    r.spec_name = "test.spec";
    r.context_dir = tree_.host("ctx");
    if (log) r.log = log->sink();
    r.cancel = cancel;
    return r;
  }

  std::string expected_id(std::string_view spec_text) {
    auto ctx = ids::DirectoryContext::open(tree_.host("ctx"));
    EXPECT_TRUE(ctx);
    auto steps = ids::compute_step_ids(parse(spec_text), &*ctx, "test.spec");
    EXPECT_TRUE(steps) << steps.error().to_string();
    return steps ? steps->back().id : "";
  }

  std::string rootfs_of(const std::string& id) {
    auto dir = store_->result(id);
    EXPECT_TRUE(dir && *dir) << id;
    return dir && *dir ? **dir + "/rootfs" : "";
  }

  bool stored(const std::string& id) { return store_->info(id).has_value(); }

  ids::TempTree tree_;
  std::unique_ptr<store::Store> store_;
  sandbox::FakeSandbox sandbox_;
  FakeFetcher fetcher_;
  std::unique_ptr<Builder> builder_;
};

constexpr std::string_view kSimple = R"(((from busybox)
 (workdir /app)
 (env GREETING hi)
 (env PATH /opt/bin)
 (run (shell "make"))
 (copy (src greeting.txt scripts) (dst ./))))";

TEST_F(BuilderTest, BuildsThenServesEveryStepFromCache) {
  sandbox_.script(answer("compiling\n", [](const std::string& rootfs) {
    std::filesystem::create_directories(rootfs + "/app");
    std::ofstream(rootfs + "/app/built") << "yes";
  }));
  LogCollector first;
  auto id = builder_->build(request(kSimple, &first));
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(*id, expected_id(kSimple));
  EXPECT_EQ(fetcher_.fetches, 1);
  ASSERT_EQ(sandbox_.call_count(), 1u);
  sandbox::RunSpec run = sandbox_.calls()[0].spec;
  EXPECT_EQ(run.argv, (std::vector<std::string>{"/bin/sh", "-c", "make"}));
  EXPECT_EQ(run.cwd, "/app");
  EXPECT_EQ(run.hostname, "builder");
  // The defaults, then the image's env, then the spec's: PATH replaced in
  // place, new names appended; HOME from /etc/passwd for uid 0.
  EXPECT_EQ(run.env, (std::vector<std::string>{"PATH=/opt/bin", "HOSTNAME=builder", "FROM_IMAGE=busybox",
                                               "GREETING=hi", "HOME=/root"}));
  EXPECT_THAT(first.text(), HasSubstr("/app: (run (shell make))\ncompiling\n"));
  EXPECT_THAT(first.notes(), HasSubstr("---> saved as " + *id));
  EXPECT_THAT(first.notes(), Not(HasSubstr("from cache")));

  std::string rootfs = rootfs_of(*id);
  EXPECT_EQ(read_text(rootfs + "/app/built"), "yes");
  EXPECT_EQ(read_text(rootfs + "/app/greeting.txt"), "hello\n");
  EXPECT_EQ(read_text(rootfs + "/app/scripts/run.sh"), "#!/bin/sh\necho hi\n");
  struct stat st {};
  ASSERT_EQ(::stat((rootfs + "/app/scripts/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtime, 0);
  ASSERT_EQ(::stat((rootfs + "/app/greeting.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(std::filesystem::read_symlink(rootfs + "/app/scripts/link"), "run.sh");
  // The step's log is the store's log file.
  EXPECT_THAT(read_text(store_->log_file(*id)),
              HasSubstr("/app: (copy (src greeting.txt scripts) (dst ./))"));

  LogCollector second;
  auto again = builder_->build(request(kSimple, &second));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*again, *id);
  EXPECT_EQ(sandbox_.call_count(), 1u);
  EXPECT_EQ(fetcher_.fetches, 1);
  std::string notes = second.notes();
  std::size_t hits = 0;
  for (std::size_t at = notes.find("from cache"); at != std::string::npos;
       at = notes.find("from cache", at + 1))
    ++hits;
  EXPECT_EQ(hits, 3u) << notes;  // from, run, copy
  EXPECT_THAT(notes, Not(HasSubstr("saved as")));
  // A cached step replays its saved log: the layer line, but not the fetch's
  // byte counts, which only the cold build showed (live).
  EXPECT_THAT(second.text(), HasSubstr("compiling\n"));
  EXPECT_THAT(second.text(), HasSubstr("(from busybox)\nfetching busybox\nunpacking busybox\n"));
  EXPECT_THAT(first.text(), HasSubstr("unpacking busybox\n  layer 1/1: 16.0 MiB of 20.0 MiB\n"));
  EXPECT_THAT(second.text(), Not(HasSubstr("16.0 MiB")));
  EXPECT_THAT(read_text(store_->log_file(expected_id("((from busybox))"))), Not(HasSubstr("16.0 MiB")));
  auto stats = builder_->cache_stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->hits, 3u);
  EXPECT_EQ(stats->misses, 3u);
  EXPECT_EQ(builder_->count().value_or(0), 3u);
}

TEST_F(BuilderTest, FailedStepRecordsNothingAndReportsStatusAndLogTail) {
  constexpr std::string_view kFailing = R"(((from busybox) (run (shell "make"))))";
  sandbox_.script(answer("cc main.c\nmain.c:1: error: boom\n", {},
                         make_error(ErrorKind::kFailedPrecondition, "command exited with status 2")));
  auto id = builder_->build(request(kFailing));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().kind(), ErrorKind::kFailedPrecondition);
  std::string message = id.error().to_string();
  EXPECT_THAT(message, AllOf(HasSubstr("test.spec:1:17"), HasSubstr("command exited with status 2"),
                             HasSubstr("main.c:1: error: boom")));
  std::string run_id = expected_id(kFailing);
  EXPECT_FALSE(stored(run_id));
  // The base stays; the step is tried again next time.
  auto again = builder_->build(request(kFailing));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*again, run_id);
  EXPECT_EQ(sandbox_.call_count(), 2u);
  EXPECT_EQ(fetcher_.fetches, 1);
}

TEST_F(BuilderTest, ConcurrentIdenticalBuildsRunTheStepOnce) {
  constexpr std::string_view kSpec = R"(((from busybox) (run (shell "slow"))))";
  Gate gate;
  sandbox_.script(answer("working\n", [&](const std::string&) { gate.wait(); }));
  LogCollector log_a, log_b;
  std::vector<StepEvent> steps_a, steps_b;
  BuildRequest request_a = request(kSpec, &log_a);
  BuildRequest request_b = request(kSpec, &log_b);
  request_a.on_step = [&steps_a](const StepEvent& e) { steps_a.push_back(e); };
  request_b.on_step = [&steps_b](const StepEvent& e) { steps_b.push_back(e); };
  auto a = std::async(std::launch::async, [&] { return builder_->build(request_a); });
  sandbox_.wait_for_calls(1);
  auto b = std::async(std::launch::async, [&] { return builder_->build(request_b); });
  // B has joined the running step once it follows its log.
  log_b.wait_for("/: (run (shell slow))");
  // The step's log file is readable while it builds.
  EXPECT_THAT(read_text(store_->log_file(expected_id(kSpec))), HasSubstr("/: (run (shell slow))\n"));
  gate.open();
  auto id_a = a.get();
  auto id_b = b.get();
  ASSERT_TRUE(id_a) << id_a.error().to_string();
  ASSERT_TRUE(id_b) << id_b.error().to_string();
  EXPECT_EQ(*id_a, *id_b);
  EXPECT_EQ(sandbox_.call_count(), 1u);
  // Both followed the same live output and both were told it was saved.
  EXPECT_THAT(log_b.text(), HasSubstr("working\n"));
  EXPECT_THAT(log_a.notes(), HasSubstr("saved as " + *id_a));
  EXPECT_THAT(log_b.notes(), HasSubstr("saved as " + *id_a));
  // A built the run step; B shared A's build, so for B it counts as cached:
  // its seconds are a wait, not what building the step costs (placement
  // learns step costs from uncached reports).
  ASSERT_EQ(steps_a.size(), 2u);
  ASSERT_EQ(steps_b.size(), 2u);
  EXPECT_FALSE(steps_a[1].cached);
  EXPECT_TRUE(steps_b[1].cached);
}

TEST_F(BuilderTest, CancelByOneOfTwoRequestersDoesNotCancelTheStep) {
  constexpr std::string_view kSpec = R"(((from busybox) (run (shell "slow"))))";
  Gate gate;
  sandbox_.script(answer("", [&](const std::string&) { gate.wait(); }));
  CancelToken cancel_a;
  LogCollector log_b;
  auto a =
      std::async(std::launch::async, [&] { return builder_->build(request(kSpec, nullptr, &cancel_a)); });
  sandbox_.wait_for_calls(1);
  auto b = std::async(std::launch::async, [&] { return builder_->build(request(kSpec, &log_b)); });
  log_b.wait_for("(run (shell slow))");
  cancel_a.cancel();
  auto id_a = a.get();
  ASSERT_FALSE(id_a);
  EXPECT_EQ(id_a.error().kind(), ErrorKind::kCancelled);
  // The FakeSandbox answers kCancelled if the step's own token fired.
  gate.open();
  auto id_b = b.get();
  ASSERT_TRUE(id_b) << id_b.error().to_string();
  EXPECT_TRUE(stored(*id_b));
}

TEST_F(BuilderTest, CancelByEveryRequesterCancelsTheStep) {
  constexpr std::string_view kSpec = R"(((from busybox) (run (shell "forever"))))";
  sandbox_.script(blocked_until_cancelled());
  CancelToken cancel_a, cancel_b;
  LogCollector log_b;
  auto a =
      std::async(std::launch::async, [&] { return builder_->build(request(kSpec, nullptr, &cancel_a)); });
  sandbox_.wait_for_calls(1);
  auto b = std::async(std::launch::async, [&] { return builder_->build(request(kSpec, &log_b, &cancel_b)); });
  log_b.wait_for("(run (shell forever))");
  cancel_a.cancel();
  EXPECT_EQ(a.get().error().kind(), ErrorKind::kCancelled);
  cancel_b.cancel();
  EXPECT_EQ(b.get().error().kind(), ErrorKind::kCancelled);
  // The step itself ends (the fake only returns once its token fires) and records nothing.
  ASSERT_TRUE(builder_->finish());
  EXPECT_FALSE(stored(expected_id(kSpec)));
}

TEST_F(BuilderTest, MissingSecretIsAnErrorAndValuesStayOutOfIdsAndLogs) {
  constexpr std::string_view kSpec =
      R"(((from busybox) (run (secrets (token (target /run/secrets/token))) (shell "use-token"))))";
  auto missing = builder_->build(request(kSpec));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().to_string(), HasSubstr("secret token not provided; pass --secret token:FILE"));
  EXPECT_EQ(sandbox_.call_count(), 0u);

  BuildRequest with_secret = request(kSpec);
  LogCollector log;
  with_secret.log = log.sink();
  with_secret.secrets = {{"token", "s3cr3t-value"}};
  auto id = builder_->build(with_secret);
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(*id, expected_id(kSpec));
  ASSERT_EQ(sandbox_.call_count(), 1u);
  EXPECT_EQ(sandbox_.calls()[0].spec.secrets,
            (std::vector<sandbox::SecretMount>{{"/run/secrets/token", "s3cr3t-value"}}));
  EXPECT_THAT(log.text(), Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(read_text(store_->log_file(*id)), Not(HasSubstr("s3cr3t")));
}

TEST_F(BuilderTest, CachesAreMountedAndReleased) {
  constexpr std::string_view kSpec =
      R"(((from busybox) (user (uid 1000) (gid 1000)) (run (cache (dl (target /var/cache/dl))) (shell "fetch"))))";
  sandbox_.script(answer("", {}, make_error(ErrorKind::kFailedPrecondition, "command exited with status 1")));
  ASSERT_FALSE(builder_->build(request(kSpec)));
  auto id = builder_->build(request(kSpec));
  ASSERT_TRUE(id) << id.error().to_string();
  auto calls = sandbox_.calls();
  ASSERT_EQ(calls.size(), 2u);
  ASSERT_EQ(calls[1].spec.mounts.size(), 1u);
  EXPECT_EQ(calls[1].spec.mounts[0].destination, "/var/cache/dl");
  EXPECT_EQ(calls[1].spec.uid, 1000u);
  // Released after the failed run too: otherwise deleting it would be refused as busy.
  EXPECT_TRUE(store_->delete_cache("dl"));
}

TEST_F(BuilderTest, MultiStageCopyReadsTheStageResult) {
  constexpr std::string_view kSpec = R"(((build dev ((from busybox) (run (shell "make"))))
 (from other)
 (user (uid 1000) (gid 1000))
 (copy (from (build dev)) (src /out/app) (dst /usr/bin/app))))";
  sandbox_.script(answer("", [](const std::string& rootfs) {
    std::filesystem::create_directories(rootfs + "/out");
    std::ofstream(rootfs + "/out/app") << "binary";
    ::chmod((rootfs + "/out/app").c_str(), 0700);
  }));
  auto id = builder_->build(request(kSpec));
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(*id, expected_id(kSpec));
  std::string rootfs = rootfs_of(*id);
  EXPECT_EQ(read_text(rootfs + "/usr/bin/app"), "binary");
  struct stat st {};
  ASSERT_EQ(::stat((rootfs + "/usr/bin/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(read_text(rootfs + "/etc/os-release"), "image=other\n");
  EXPECT_EQ(fetcher_.fetches, 2);
}

TEST_F(BuilderTest, OnStepReportsEveryStepInOrderBuiltThenCached) {
  constexpr std::string_view kSpec = R"(((build dev ((from busybox) (run (shell "make"))))
 (from other)
 (workdir /app)
 (copy (from (build dev)) (src /out) (dst ./))))";
  sandbox_.script(answer("", [](const std::string& rootfs) {
    std::filesystem::create_directories(rootfs + "/out");
    std::ofstream(rootfs + "/out/app") << "binary";
  }));
  auto ctx = ids::DirectoryContext::open(tree_.host("ctx"));
  ASSERT_TRUE(ctx);
  auto expected = ids::compute_step_ids(parse(kSpec), &*ctx, "test.spec");
  ASSERT_TRUE(expected) << expected.error().to_string();

  std::vector<StepEvent> first;
  BuildRequest r = request(kSpec);
  r.on_step = [&first](const StepEvent& e) { first.push_back(e); };
  auto id = builder_->build(r);
  ASSERT_TRUE(id) << id.error().to_string();
  // Stage dev's from and run, then the main stage's from and copy.
  ASSERT_EQ(first.size(), 4u);
  std::vector<std::string> ids;
  for (const StepEvent& e : first) {
    ids.push_back(e.id);
    EXPECT_FALSE(e.cached) << e.description;
    EXPECT_GE(e.seconds, 0.0);
  }
  std::vector<std::string> expected_ids;
  for (const auto& step : *expected) expected_ids.push_back(step.id);
  EXPECT_EQ(ids, expected_ids);
  EXPECT_EQ(first[0].description, "(from busybox)");
  EXPECT_EQ(first[1].description, "/: (run (shell make))");
  EXPECT_EQ(first[2].description, "(from other)");
  EXPECT_EQ(first[3].description, "/app: (copy (from (build dev)) (src /out) (dst ./))");
  EXPECT_EQ(first.back().id, *id);

  std::vector<StepEvent> second;
  r.on_step = [&second](const StepEvent& e) { second.push_back(e); };
  ASSERT_TRUE(builder_->build(r));
  ASSERT_EQ(second.size(), 4u);
  for (std::size_t i = 0; i < second.size(); ++i) {
    EXPECT_TRUE(second[i].cached) << second[i].description;
    EXPECT_EQ(second[i].id, first[i].id);
    EXPECT_EQ(second[i].description, first[i].description);
  }

  // A failing step is not reported; the steps before it are.
  std::vector<StepEvent> failed;
  BuildRequest failing = request(R"(((from busybox) (run (shell "false"))))");
  failing.on_step = [&failed](const StepEvent& e) { failed.push_back(e); };
  sandbox_.script(answer("", {}, make_error(ErrorKind::kFailedPrecondition, "command exited with status 1")));
  ASSERT_FALSE(builder_->build(failing));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].description, "(from busybox)");
  EXPECT_TRUE(failed[0].cached);
}

TEST_F(BuilderTest, IdsEqualComputeStepIdsForTheExamples) {
  const char* source = std::getenv("KILN_SOURCE_DIR");
  if (source == nullptr) source = KILN_SOURCE_DIR_DEFAULT;
  std::string examples = std::string(source) + "/examples";
  int built = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples)) {
    if (entry.path().extension() != ".spec") continue;
    auto spec = spec::load_spec_file(entry.path());
    ASSERT_TRUE(spec) << spec.error().to_string();
    auto ctx = ids::DirectoryContext::open(examples + "/context");
    ASSERT_TRUE(ctx);
    auto steps = ids::compute_step_ids(*spec, &*ctx, entry.path().string());
    ASSERT_TRUE(steps) << steps.error().to_string();
    // The first stage of multistage.spec writes what the main stage copies.
    sandbox_.script(answer("", [](const std::string& rootfs) {
      std::filesystem::create_directories(rootfs + "/work");
      std::ofstream(rootfs + "/work/report.txt") << "report\n";
      std::ofstream(rootfs + "/work/report.sha256") << "sum\n";
    }));
    BuildRequest r;
    r.spec = *spec;
    r.spec_name = entry.path().string();
    r.context = &*ctx;
    r.context_dir = examples + "/context";
    r.secrets = {{"token", "x"}};
    auto id = builder_->build(r);
    ASSERT_TRUE(id) << entry.path() << ": " << id.error().to_string();
    EXPECT_EQ(*id, steps->back().id) << entry.path();
    // Every intermediate step exists too, under the id compute_step_ids gives it.
    for (const ids::Step& step : *steps)
      EXPECT_TRUE(stored(step.id)) << entry.path() << " " << step.description;
    ++built;
  }
  EXPECT_GE(built, 3);
}

TEST_F(BuilderTest, PruneNeverRemovesTheBaseOfARunningBuild) {
  constexpr std::string_view kDone = R"(((from busybox) (run (shell "a"))))";
  constexpr std::string_view kRunning = R"(((from other) (run (shell "b"))))";
  auto done = builder_->build(request(kDone));
  ASSERT_TRUE(done);
  Gate gate;
  sandbox_.script(answer("", [&](const std::string&) { gate.wait(); }));
  auto running = std::async(std::launch::async, [&] { return builder_->build(request(kRunning)); });
  sandbox_.wait_for_calls(2);
  std::string running_base = ids::step_id_of(ids::encode_from_step("other"));
  std::string done_base = ids::step_id_of(ids::encode_from_step("busybox"));
  std::vector<std::string> deleted;
  auto done_used = store_->info(*done)->last_used, base_used = store_->info(done_base)->last_used;
  // No limit (as `kiln clean`): every unpinned leaf, round after round.
  PruneReport report;
  auto removed = builder_->prune(
      std::chrono::system_clock::now() + std::chrono::hours(1), std::numeric_limits<std::size_t>::max(),
      [&](const std::string& id) { deleted.push_back(id); }, &report);
  ASSERT_TRUE(removed) << removed.error().to_string();
  // The finished chain goes (its leaf, then its base once that became a leaf);
  // the running build's base is a leaf too but stays.
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ(deleted, (std::vector<std::string>{*done, done_base}));
  EXPECT_TRUE(stored(running_base));
  // The report says as much, with when the removed ones were last used.
  EXPECT_EQ(report.removed, 2u);
  EXPECT_EQ(report.kept_in_use, 1u);
  EXPECT_EQ(report.oldest_last_used, std::min(done_used, base_used));
  EXPECT_EQ(report.newest_last_used, std::max(done_used, base_used));
  gate.open();
  auto id = running.get();
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_TRUE(stored(*id));
}

TEST_F(BuilderTest, DeleteRemovesDependents) {
  ASSERT_TRUE(builder_->build(request(R"(((from busybox) (run (shell "a")) (run (shell "b"))))")));
  auto other = builder_->build(request(R"(((from busybox) (run (shell "c"))))"));
  ASSERT_TRUE(other);
  auto unrelated = builder_->build(request(R"(((from other)))"));
  ASSERT_TRUE(unrelated);
  std::vector<std::string> deleted;
  std::string base = ids::step_id_of(ids::encode_from_step("busybox"));
  ASSERT_TRUE(builder_->delete_result(base, [&](const std::string& id) { deleted.push_back(id); }));
  EXPECT_EQ(deleted.size(), 4u);
  EXPECT_EQ(deleted.back(), base);
  EXPECT_FALSE(stored(base));
  EXPECT_FALSE(stored(*other));
  EXPECT_TRUE(stored(*unrelated));
  EXPECT_EQ(builder_->count().value_or(0), 1u);
}

TEST_F(BuilderTest, HealthcheckRunsAStepAndCleansUp) {
  sandbox_.script(answer("healthcheck\n"));
  ASSERT_TRUE(builder_->healthcheck(std::chrono::seconds(30)));
  EXPECT_EQ(sandbox_.calls()[0].spec.argv.back(), "echo healthcheck");
  // Only the base image remains.
  EXPECT_EQ(builder_->count().value_or(0), 1u);
  sandbox_.script(blocked_until_cancelled());
  auto timed_out = builder_->healthcheck(std::chrono::milliseconds(100));
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().kind(), ErrorKind::kTimeout);
}

TEST_F(BuilderTest, AnswersForItsStoreSoCallersNeedNotOpenIt) {
  EXPECT_EQ(builder_->root(), store_->root());
  auto space = builder_->disk_space();
  ASSERT_TRUE(space) << space.error().to_string();
  EXPECT_GT(space->total_bytes, 0u);
  EXPECT_LE(space->free_bytes, space->total_bytes);
  auto none = builder_->list_results();
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  sandbox_.script(answer("made\n", [](const std::string& rootfs) {
    std::ofstream(rootfs + "/made") << std::string(4096, 'x');
  }));
  auto id = builder_->build(request(R"(((from busybox) (run (shell "make"))))"));
  ASSERT_TRUE(id) << id.error().to_string();
  auto listed = builder_->list_results();
  ASSERT_TRUE(listed);
  std::string base = ids::step_id_of(ids::encode_from_step("busybox"));
  EXPECT_EQ(*listed, (std::vector<std::string>{std::min(base, *id), std::max(base, *id)}));  // sorted
  // Sizes are measured in the background after each build.
  std::uint64_t bytes = 0;
  for (int i = 0; i < 200 && bytes == 0; ++i) {
    auto total = builder_->total_size();
    ASSERT_TRUE(total) << total.error().to_string();
    bytes = *total;
    if (bytes == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(bytes, 0u);

  auto pruned = builder_->prune(std::chrono::system_clock::now() + std::chrono::hours(1), 10);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 2u);
  EXPECT_TRUE(builder_->complete_deletes());
  EXPECT_TRUE(builder_->list_results().value_or(std::vector<std::string>{"?"}).empty());
  EXPECT_EQ(builder_->total_size().value_or(1), 0u);
}

TEST(DiskSpaceTest, APathNotCreatedYetIsMeasuredWhereItWouldBe) {
  auto here = disk_space("/");
  ASSERT_TRUE(here) << here.error().to_string();
  auto missing = disk_space("/no/such/dir/yet");
  ASSERT_TRUE(missing) << missing.error().to_string();
  EXPECT_EQ(missing->total_bytes, here->total_bytes);
}

TEST_F(BuilderTest, ImageWithoutEnvGetsDockersDefaults) {
  auto id = builder_->build(request(R"(((from bare) (run (shell "make"))))"));
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_EQ(sandbox_.call_count(), 1u);
  sandbox::RunSpec run = sandbox_.calls()[0].spec;
  EXPECT_EQ(run.env, (std::vector<std::string>{"PATH=" + std::string(kDefaultPath),
                                               "HOSTNAME=" + run.hostname, "HOME=/root"}));
  EXPECT_EQ(run.uid, 0u);
}

TEST_F(BuilderTest, NamedUserComesFromTheImagesPasswdAndSetsHome) {
  constexpr std::string_view kSpec = R"(((from bare)
 (user (name app))
 (run (shell "id"))
 (user (name nobody))
 (env HOSTNAME custom)
 (run (shell "id"))
 (user (uid 4242) (gid 7))
 (run (shell "id"))
 (user (uid 1000) (gid 5))
 (env HOME /work)
 (run (shell "id"))
 (user (name app))
 (copy (src greeting.txt) (dst /home/app/))))";
  auto id = builder_->build(request(kSpec));
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(*id, expected_id(kSpec));  // ids name the user as written, not as resolved
  auto calls = sandbox_.calls();
  ASSERT_EQ(calls.size(), 4u);
  auto env_of = [](const sandbox::RunSpec& run, const std::string& name) {
    for (const std::string& e : run.env)
      if (e.starts_with(name + "=")) return e.substr(name.size() + 1);
    return std::string("(unset)");
  };
  // (name app): uid and primary gid from its entry, HOME its home.
  EXPECT_EQ(calls[0].spec.uid, 1000u);
  EXPECT_EQ(calls[0].spec.gid, 1001u);
  EXPECT_EQ(env_of(calls[0].spec, "HOME"), "/home/app");
  EXPECT_EQ(env_of(calls[0].spec, "PATH"), kDefaultPath);
  // (name nobody); the spec's HOSTNAME replaces the default.
  EXPECT_EQ(calls[1].spec.uid, 65534u);
  EXPECT_EQ(calls[1].spec.gid, 65534u);
  EXPECT_EQ(env_of(calls[1].spec, "HOME"), "/nonexistent");
  EXPECT_EQ(env_of(calls[1].spec, "HOSTNAME"), "custom");
  // A uid with no entry: HOME is /, as docker does.
  EXPECT_EQ(calls[2].spec.uid, 4242u);
  EXPECT_EQ(calls[2].spec.gid, 7u);
  EXPECT_EQ(env_of(calls[2].spec, "HOME"), "/");
  // uid 1000 is app's: its HOME, unless the spec sets one.
  EXPECT_EQ(calls[3].spec.gid, 5u);
  EXPECT_EQ(env_of(calls[3].spec, "HOME"), "/work");
  // A copy under (user (name app)) is owned by app's uid and gid.
  struct stat st {};
  ASSERT_EQ(::stat((rootfs_of(*id) + "/home/app/greeting.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
}

TEST_F(BuilderTest, UnknownUserNameFailsTheStepAtItsOp) {
  auto run = builder_->build(request("((from bare)\n (user (name ghost))\n (run (shell id)))"));
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(run.error().to_string(),
              AllOf(HasSubstr("test.spec:3:2: run"), HasSubstr("has no user \"ghost\""),
                    HasSubstr("(user (uid N) (gid N))")));
  EXPECT_EQ(sandbox_.call_count(), 0u);
  auto copy =
      builder_->build(request("((from bare)\n (user (name ghost))\n (copy (src greeting.txt) (dst /g)))"));
  ASSERT_FALSE(copy);
  EXPECT_THAT(copy.error().to_string(), AllOf(HasSubstr("test.spec:3:2: copy"), HasSubstr("ghost")));
}

TEST_F(BuilderTest, CopyErrorsPointAtTheOp) {
  auto missing = builder_->build(request("((from busybox)\n (copy (src nope.txt) (dst /x)))"));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().to_string(), AllOf(HasSubstr("test.spec:2:2: copy"), HasSubstr("nope.txt")));
}

}  // namespace
}  // namespace kiln::builder
