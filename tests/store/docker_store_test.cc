// The docker store's own recovery, beyond the conformance suite
// (store_conformance_test.cc runs that on docker too): what a crash leaves in
// dockerd — an image without a result directory, a step container (even a
// running one), a volume no cache names — and a result whose image went
// behind the store's back, all against a private dockerd.
#include <filesystem>

#include <gtest/gtest.h>

#include "common/fs.h"
#include "tests/store/store_test_util.h"
#include "tests/store/store_trees.h"
#include "tests/support/local_dockerd.h"
#include "worker/docker/docker_client.h"
#include "worker/store/store.h"

namespace kiln::store {
namespace {

constexpr const char* kPrefix = "kiln-crash";
constexpr const char* kScratch = "kiln-test/busybox:latest";

class DockerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(dockerd_.start_error(), "");
    home_ = testing::TestFilesystems::get().fresh_dir("ext4");
    ASSERT_EQ(testing::load_scratch_image(dockerd_, home_, kScratch), "");
    root_ = home_ + "/docker-" + kPrefix;
    trees_ = testing::docker_trees(dockerd_.host(), kPrefix, kScratch);
    ASSERT_TRUE(trees_);
    auto client = docker::DockerClient::create({.host = dockerd_.host()});
    ASSERT_TRUE(client) << client.error().to_string();
    client_ = std::move(*client);
    open();
  }

  void open(StoreOpenMode mode = StoreOpenMode::kReadWrite) {
    store_.reset();
    auto store = open_store(std::string("docker:") + kPrefix,
                            {.docker_host = dockerd_.host(), .home = home_, .open_mode = mode});
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
  }

  void must_build(const std::optional<std::string>& base, const std::string& id,
                  const std::map<std::string, std::string>& files) {
    auto s = store_->build(base, id, [&](const Workspace& ws) { return trees_->write(ws, files); });
    ASSERT_TRUE(s) << s.error().to_string();
  }
  std::optional<std::string> file_of(const std::string& id, const std::string& path) {
    auto dir = store_->result(id);
    if (!dir || !*dir) return std::nullopt;
    return trees_->read(**dir, id, path);
  }
  bool image_exists(const std::string& name) { return static_cast<bool>(client_->inspect_image(name)); }
  bool container_exists(const std::string& name) {
    return static_cast<bool>(client_->inspect_container(name));
  }
  bool volume_exists(const std::string& name) { return static_cast<bool>(client_->inspect_volume(name)); }

  kiln::testing::LocalDockerd dockerd_;
  std::string home_, root_;
  std::unique_ptr<testing::StoreTrees> trees_;
  std::unique_ptr<docker::DockerClient> client_;
  std::unique_ptr<Store> store_;
};

TEST_F(DockerStoreTest, ResultsAreLabelledImagesAndDirectoriesPointToThem) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  auto image = client_->inspect_image(std::string(kPrefix) + ":a");
  ASSERT_TRUE(image) << image.error().to_string();
  EXPECT_EQ(image->labels["kiln.store"], kPrefix);
  EXPECT_EQ(image->labels["kiln.kind"], "result");
  EXPECT_EQ(image->labels["kiln.step"], "a");
  EXPECT_EQ(read_file(root_ + "/result/a/docker-image"), std::string(kPrefix) + ":a");
  // The step's container was committed, and is removed after the result is
  // recorded, by the time the store is closed at the latest.
  store_.reset();
  EXPECT_FALSE(container_exists(std::string(kPrefix) + "-step-a"));
  open();
  auto df = store_->df();
  ASSERT_TRUE(df) << df.error().to_string();
  EXPECT_GT(*df, 0.0);
}

TEST_F(DockerStoreTest, OpenRemovesWhatACrashLeftInDockerd) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  auto lease = store_->cache({0, 0}, "c");
  ASSERT_TRUE(lease) << lease.error().to_string();
  ASSERT_TRUE(lease->release());
  store_.reset();

  std::string prefix = kPrefix;
  docker::Labels ours{{"kiln.store", prefix}, {"kiln.kind", "step"}};
  // Committed but never renamed into result/: an image without a directory.
  ASSERT_TRUE(client_->tag_image(prefix + ":a", prefix, "ghost"));
  // A step container still running, as if the worker died mid-step.
  docker::ContainerSpec running{.image = prefix + ":a",
                                .entrypoint = std::vector<std::string>{"/bin/busybox", "sleep", "1000"},
                                .labels = ours};
  ASSERT_TRUE(client_->create_container(running, prefix + "-step-running"));
  ASSERT_TRUE(client_->start_container(prefix + "-step-running"));
  // An unfinished build: tmp/<id> naming its created container.
  ASSERT_TRUE(client_->create_container({.image = prefix + ":b", .labels = ours}, prefix + "-step-half"));
  ASSERT_TRUE(ensure_dir(root_ + "/tmp/half"));
  ASSERT_TRUE(write_file(root_ + "/tmp/half/docker-container", prefix + "-step-half"));
  // A cache copy's volume whose directory is gone.
  ASSERT_TRUE(
      client_->create_volume(prefix + "-cache-lost", {{"kiln.store", prefix}, {"kiln.kind", "cache"}}));
  // Not the store's: no label. Must survive.
  ASSERT_TRUE(client_->create_container({.image = kScratch}, "bystander"));
  ASSERT_TRUE(client_->create_volume("bystander", {}));

  open();
  const RecoveryReport& report = store_->recovery_report();
  EXPECT_EQ(report.orphan_results_removed, 1) << report.to_string();  // the ghost image
  EXPECT_EQ(report.temporaries_removed, 3) << report.to_string();  // tmp/half, the running step, the volume
  EXPECT_FALSE(image_exists(prefix + ":ghost"));
  EXPECT_FALSE(container_exists(prefix + "-step-running"));
  EXPECT_FALSE(container_exists(prefix + "-step-half"));
  EXPECT_FALSE(path_exists(root_ + "/tmp/half"));
  EXPECT_FALSE(volume_exists(prefix + "-cache-lost"));
  EXPECT_TRUE(container_exists("bystander"));
  EXPECT_TRUE(volume_exists("bystander"));
  EXPECT_TRUE(image_exists(kScratch));
  // The results and the cache are intact.
  EXPECT_EQ(file_of("a", "f"), "1");
  EXPECT_EQ(file_of("b", "f"), "1");
  EXPECT_EQ(file_of("b", "g"), "2");
  auto again = store_->cache({0, 0}, "c");
  ASSERT_TRUE(again) << again.error().to_string();
  ASSERT_TRUE(again->release());
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
}

// A user's `docker run PREFIX:<id>` makes a container that inherits the result
// image's labels (kiln.store=PREFIX, kiln.kind=result): it is not a step
// container a crash left, so the store's open leaves it alone, and deleting
// the result only untags the image the container keeps running on.
TEST_F(DockerStoreTest, ContainersRunFromAResultAreLeftAloneAndDoNotBlockItsDeletion) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  store_.reset();
  std::string prefix = kPrefix;
  docker::ContainerSpec run{.image = prefix + ":a",
                            .entrypoint = std::vector<std::string>{"/bin/busybox", "sleep", "1000"}};
  ASSERT_TRUE(client_->create_container(run, "users-running"));
  ASSERT_TRUE(client_->start_container("users-running"));
  ASSERT_TRUE(client_->create_container(run, "users-stopped"));
  auto inherited = client_->inspect_container("users-running");
  ASSERT_TRUE(inherited) << inherited.error().to_string();
  ASSERT_EQ(inherited->labels["kiln.store"], prefix);  // what the store lists its own objects by
  ASSERT_EQ(inherited->labels["kiln.kind"], "result");

  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  auto running = client_->inspect_container("users-running");
  ASSERT_TRUE(running) << running.error().to_string();
  EXPECT_TRUE(running->running);
  EXPECT_TRUE(container_exists("users-stopped"));
  EXPECT_EQ(file_of("a", "f"), "1");

  auto deleted = store_->delete_result("a");
  ASSERT_TRUE(deleted) << deleted.error().to_string();
  EXPECT_FALSE(image_exists(prefix + ":a"));
  running = client_->inspect_container("users-running");
  ASSERT_TRUE(running) << running.error().to_string();
  EXPECT_TRUE(running->running);
  EXPECT_TRUE(container_exists("users-stopped"));
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
  EXPECT_TRUE(container_exists("users-running"));
  EXPECT_TRUE(client_->remove_container("users-running"));
  EXPECT_TRUE(client_->remove_container("users-stopped"));
}

TEST_F(DockerStoreTest, AResultWhoseImageWentIsDropped) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  store_.reset();
  ASSERT_TRUE(client_->remove_image(std::string(kPrefix) + ":b"));
  open();
  const RecoveryReport& report = store_->recovery_report();
  EXPECT_EQ(report.records_dropped, 1) << report.to_string();
  auto b = store_->result("b");
  ASSERT_TRUE(b);
  EXPECT_FALSE(*b);
  EXPECT_FALSE(path_exists(root_ + "/result/b"));
  EXPECT_EQ(store_->info("a")->children, 0u);
  EXPECT_EQ(file_of("a", "f"), "1");
  // It can be built again.
  must_build("a", "b", {{"g", "again"}});
  EXPECT_EQ(file_of("b", "g"), "again");
}

// Step containers are removed after their results are recorded; a step
// deleted and built again at once (its name reused) or a base result deleted
// right after its child was built does not trip over a container still
// queued for removal.
TEST_F(DockerStoreTest, StepContainersQueuedForRemovalDoNotGetInTheWay) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  for (int i = 0; i < 3; ++i) {
    must_build("a", "b", {{"g", std::to_string(i)}});
    EXPECT_EQ(file_of("b", "g"), std::to_string(i));
    ASSERT_TRUE(store_->delete_result("b"));
    ASSERT_TRUE(store_->complete_deletes());
  }
  must_build("a", "b", {{"g", "last"}});
  ASSERT_TRUE(store_->delete_result("b"));
  ASSERT_TRUE(store_->delete_result("a"));
  ASSERT_TRUE(store_->complete_deletes());
  EXPECT_FALSE(image_exists(std::string(kPrefix) + ":a"));
  EXPECT_FALSE(image_exists(std::string(kPrefix) + ":b"));
  store_.reset();
  auto left = client_->list_containers({.labels = {std::string("kiln.store=") + kPrefix}});
  ASSERT_TRUE(left) << left.error().to_string();
  EXPECT_TRUE(left->empty());
  open();
  EXPECT_FALSE(store_->recovery_report().repaired_anything()) << store_->recovery_report().to_string();
}

// Each result keeps a copy of its image's /etc/passwd beside it (the
// builder reads a run step's user there). A step that leaves /etc alone
// takes its base result's copy instead of reading the file out of dockerd.
TEST_F(DockerStoreTest, EachResultKeepsACopyOfItsImagesEtcPasswd) {
  const std::string root_only = "root:x:0:0:root:/root:/bin/sh\n";
  const std::string builder = "builder:x:7:7::/home/builder:/bin/sh\n";
  auto saved = [&](const std::string& id) -> std::optional<std::string> {
    std::string path = root_ + "/result/" + id + "/passwd";
    if (!path_exists(path)) return std::nullopt;
    return read_file(path).value();
  };
  must_build(std::nullopt, "a", {{"etc/passwd", root_only}});
  EXPECT_EQ(saved("a"), root_only);
  must_build("a", "b", {{"f", "1"}});
  EXPECT_EQ(saved("b"), root_only);
  must_build("b", "c", {{"etc/passwd", builder}});
  EXPECT_EQ(saved("c"), builder);
  must_build("c", "d", {{"etc/group", "builder:x:7:\n"}});  // /etc changed, not passwd: read again
  EXPECT_EQ(saved("d"), builder);
  must_build("d", "e", {{"etc/passwd", ""}});
  EXPECT_EQ(saved("e"), std::nullopt);
  must_build("e", "f", {{"g", "2"}});
  EXPECT_EQ(saved("f"), std::nullopt);
  for (const char* id : {"a", "b", "c", "d", "e", "f"}) EXPECT_EQ(saved(id), file_of(id, "etc/passwd")) << id;
  // Where the copy of a step that left /etc alone comes from: its base's
  // saved file (marked here), not dockerd.
  ASSERT_TRUE(write_file(root_ + "/result/c/passwd", "marked\n"));
  must_build("c", "h", {{"g", "3"}});
  EXPECT_EQ(saved("h"), "marked\n");
}

// Opened read-only (what `kiln` does), a result whose image went behind the
// store's back is not a cache hit: the first lookup of it makes the store
// writable, whose recovery drops it.
TEST_F(DockerStoreTest, OpenedReadOnlyAResultWhoseImageWentIsNotACacheHit) {
  must_build(std::nullopt, "a", {{"f", "1"}});
  must_build("a", "b", {{"g", "2"}});
  store_.reset();
  ASSERT_TRUE(client_->remove_image(std::string(kPrefix) + ":b"));
  open(StoreOpenMode::kReadOnlyUntilWrite);
  EXPECT_TRUE(store_->info("a"));
  EXPECT_EQ(store_->recovery_report().records_dropped, 0) << "repaired while only reading";
  auto b = store_->info("b");
  ASSERT_FALSE(b) << "a record without its image was reported as a result";
  EXPECT_EQ(b.error().kind(), ErrorKind::kNotFound) << b.error().to_string();
  EXPECT_EQ(store_->recovery_report().records_dropped, 1) << store_->recovery_report().to_string();
  must_build("a", "b", {{"g", "3"}});
  EXPECT_EQ(file_of("b", "g"), "3");
}

TEST_F(DockerStoreTest, ExplainsAnUnreachableDaemonAndABadPrefix) {
  store_.reset();
  auto none = open_store("docker:kiln", {.docker_host = "unix://" + home_ + "/no.sock", .home = home_});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), ErrorKind::kUnavailable) << none.error().to_string();
  EXPECT_NE(none.error().to_string().find("is dockerd running there?"), std::string::npos)
      << none.error().to_string();
  for (const char* bad : {"docker:", "docker:Kiln", "docker:a/b"}) {
    auto s = open_store(bad, {.docker_host = dockerd_.host(), .home = home_});
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().kind(), ErrorKind::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace kiln::store
