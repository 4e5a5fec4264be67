// What the Builder hands its fetcher for a (from ...) step: the build's
// cancellation (a pull stops with the build) and its pull policy, and what
// the step reports back (StepEvent::image). The fetches against real
// registries: worker/fetcher/registry_token_test.cc (a cancelled download)
// and tests/farm/registry_farm_e2e_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/ids/temp_tree_for_test.h"
#include "common/spec/spec.h"
#include "worker/builder/builder.h"
#include "worker/sandbox/fake_sandbox.h"
#include "worker/store/store.h"

namespace kiln::builder {
namespace {

// A fetch that lasts until it is cancelled (or a minute, when it is not), or a quick one.
class SlowFetcher final : public fetcher::Fetcher {
 public:
  Result<fetcher::ImageConfig> fetch(const fetcher::Progress& progress, const std::string& rootfs,
                                     std::string_view, const fetcher::FetchOptions& options) override {
    pull = options.pull;
    progress(fetcher::ProgressKind::kLayer, "pulling layer 1/1");
    if (slow && options.cancel != nullptr && options.cancel->wait_for(std::chrono::minutes(1)))
      return make_error(ErrorKind::kCancelled, "pull cancelled");
    std::filesystem::create_directories(rootfs + "/bin");
    fetcher::ImageConfig config;
    config.manifest_digest = "sha256:feed";
    config.resolved = "127.0.0.1:5000/team/base@sha256:beef";
    return config;
  }
  std::optional<fetcher::PullPolicy> pull;
  bool slow = true;
};

class BuilderFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::open_store("overlayfs:" + tree_.host("store"));
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    builder_ = std::make_unique<Builder>(*store_, sandbox_, fetcher_);
  }
  void TearDown() override {
    builder_.reset();
    store_.reset();
  }
  BuildRequest request(CancelToken* cancel) {
    BuildRequest r;
    r.spec.from = "127.0.0.1:5000/team/base:1";
    r.cancel = cancel;
    r.log = [this](LogTag, std::string_view text) {
      std::lock_guard lock(mu_);
      log_ += text;
    };
    return r;
  }
  bool logged(std::string_view needle) {
    std::lock_guard lock(mu_);
    return log_.find(needle) != std::string::npos;
  }

  ids::TempTree tree_;
  std::unique_ptr<store::Store> store_;
  sandbox::FakeSandbox sandbox_;
  SlowFetcher fetcher_;
  std::unique_ptr<Builder> builder_;
  std::mutex mu_;
  std::string log_;
};

TEST_F(BuilderFetchTest, CancellingTheBuildCancelsItsPull) {
  CancelToken cancel;
  std::thread canceller([&] {
    while (!logged("pulling layer 1/1")) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.cancel();
  });
  auto r = builder_->build(request(&cancel));
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCancelled);
  EXPECT_TRUE(builder_->list_results()->empty());  // nothing recorded
}

TEST_F(BuilderFetchTest, TheRequestsPullPolicyReachesTheFetchAndTheStepReportsTheResolvedImage) {
  fetcher_.slow = false;
  BuildRequest r = request(nullptr);
  r.pull = fetcher::PullPolicy::kAlways;
  std::vector<StepEvent> steps;
  r.on_step = [&](const StepEvent& e) { steps.push_back(e); };
  ASSERT_TRUE(builder_->build(r));
  ASSERT_EQ(fetcher_.pull, fetcher::PullPolicy::kAlways);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].image, "127.0.0.1:5000/team/base@sha256:beef");
  // Served from the cache, the step still says what its base resolved to.
  steps.clear();
  ASSERT_TRUE(builder_->build(r));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].cached);
  EXPECT_EQ(steps[0].image, "127.0.0.1:5000/team/base@sha256:beef");
}

}  // namespace
}  // namespace kiln::builder
