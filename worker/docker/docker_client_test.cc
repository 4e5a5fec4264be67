// DockerClient against a real, private dockerd (tests/support/local_dockerd.h)
// loaded with kiln's busybox base image. Needs root, docker.io, skopeo and
// busybox-static (scripts/install-deps).
#include "worker/docker/docker_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "tests/support/local_registry.h"
#include "worker/docker/testing/docker_fixture.h"

namespace kiln::docker {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kBusybox;
using testing::make_tar;
using ::testing::Pair;
using testing::read_tar;

class DockerClientTest : public testing::DockerFixture {
 protected:
  // Runs `script` in a new busybox container; returns (exit code, stdout, stderr).
  struct Ran {
    std::int64_t exit_code = -1;
    std::string out, err;
    std::string id;
  };
  Ran run(ContainerSpec spec, const std::string& script, bool remove = true) {
    Ran ran;
    if (spec.image.empty()) spec.image = kBusybox;
    spec.entrypoint = std::vector<std::string>{"/bin/sh", "-c", script};
    auto id = client_->create_container(spec, "");
    EXPECT_TRUE(id) << id.error().to_string();
    if (!id) return ran;
    ran.id = *id;
    std::mutex mu;
    std::condition_variable cv;
    bool attached = false;
    Status streamed;
    std::thread output([&] {
      streamed = client_->attach_output(
          *id,
          [&] {
            std::lock_guard lock(mu);
            attached = true;
            cv.notify_all();
          },
          [&](StreamKind kind, std::string_view bytes) {
            (kind == StreamKind::kStderr ? ran.err : ran.out).append(bytes);
          },
          nullptr);
      std::lock_guard lock(mu);
      attached = true;  // also when attaching failed
      cv.notify_all();
    });
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return attached; });
    }
    EXPECT_TRUE(client_->start_container(*id));
    auto waited = client_->wait_container(*id, nullptr);
    output.join();
    EXPECT_TRUE(streamed) << streamed.error().to_string();
    EXPECT_TRUE(waited) << waited.error().to_string();
    if (waited) ran.exit_code = waited->exit_code;
    if (remove) {
      EXPECT_TRUE(client_->remove_container(*id));
    }
    return ran;
  }
};

TEST_F(DockerClientTest, VersionAndErrorsNameTheCallAndTheDaemonsMessage) {
  auto version = client_->version();
  ASSERT_TRUE(version) << version.error().to_string();
  EXPECT_EQ(version->api_version, "1.41");
  EXPECT_THAT(version->version, HasSubstr("20.10"));

  auto missing = client_->inspect_image("kiln-test/nope:1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().to_string(), HasSubstr("GET /images/kiln-test/nope:1/json: 404"));
  EXPECT_THAT(missing.error().to_string(), HasSubstr("No such image: kiln-test/nope:1"));
  EXPECT_THAT(missing.error().to_string(), HasSubstr(dockerd_.host()));

  auto bad_name = client_->inspect_image("a b");
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().kind(), ErrorKind::kInvalidArgument);

  auto nowhere = DockerClient::create({.host = "unix://" + tmp_.path() + "/none.sock"});
  ASSERT_TRUE(nowhere);
  auto unreachable = (*nowhere)->version();
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().kind(), ErrorKind::kUnavailable);
  EXPECT_THAT(unreachable.error().to_string(), HasSubstr("is dockerd running there?"));

  auto tcp = DockerClient::create({.host = "tcp://127.0.0.1:2375"});
  ASSERT_FALSE(tcp);
  EXPECT_THAT(tcp.error().message(), HasSubstr("use unix:///PATH/TO/docker.sock"));
}

TEST_F(DockerClientTest, OversizedAnswersAreRefused) {
  auto small = DockerClient::create({.host = dockerd_.host(), .max_response_bytes = 64});
  ASSERT_TRUE(small);
  auto images = (*small)->list_images();
  ASSERT_FALSE(images);
  EXPECT_EQ(images.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(images.error().to_string(), HasSubstr("larger than 64 bytes"));
}

TEST_F(DockerClientTest, ImagesAreInspectedTaggedListedAndRemoved) {
  auto busybox = client_->inspect_image(kBusybox);
  ASSERT_TRUE(busybox) << busybox.error().to_string();
  EXPECT_THAT(busybox->id, ::testing::StartsWith("sha256:"));
  EXPECT_THAT(busybox->env, Contains(HasSubstr("PATH=")));

  ASSERT_TRUE(client_->tag_image(kBusybox, "kiln-t/step", "abc"));
  auto listed = client_->list_images({.references = {"kiln-t/step"}});
  ASSERT_TRUE(listed) << listed.error().to_string();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, busybox->id);
  EXPECT_THAT((*listed)[0].repo_tags, Contains("kiln-t/step:abc"));

  ASSERT_TRUE(client_->remove_image("kiln-t/step:abc"));
  EXPECT_TRUE(client_->list_images({.references = {"kiln-t/step"}})->empty());
  auto again = client_->remove_image("kiln-t/step:abc");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kNotFound);
  EXPECT_TRUE(client_->inspect_image(kBusybox));  // the other name keeps the image
}

TEST_F(DockerClientTest, ContainersRunWithLimitsNoNetworkAndSeparateOutputStreams) {
  ContainerSpec spec;
  spec.memory_bytes = 64 << 20;
  spec.pids_limit = 50;
  spec.nano_cpus = 500'000'000;
  spec.ulimits = {{"nofile", 1024, 1024}};
  spec.env = {"GREETING=hi"};
  spec.working_dir = "/tmp";
  spec.labels = {{"kiln.test", "1"}};
  Ran ran = run(spec,
                "echo $GREETING; pwd; echo to-stderr >&2; ls /sys/class/net; "
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
                "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; ulimit -n; exit 3",
                /*remove=*/false);
  EXPECT_EQ(ran.exit_code, 3);
  EXPECT_EQ(ran.out, "hi\n/tmp\nlo\n67108864\n50\n50000\n1024\n");
  EXPECT_EQ(ran.err, "to-stderr\n");

  // The default log driver keeps the output for /logs too.
  std::string logged;
  ASSERT_TRUE(client_->logs(
      ran.id, {}, [&](StreamKind, std::string_view b) { logged.append(b); }, nullptr));
  EXPECT_THAT(logged, HasSubstr("to-stderr\n"));
  EXPECT_THAT(logged, HasSubstr("67108864\n"));

  auto info = client_->inspect_container(ran.id);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, "exited");
  EXPECT_EQ(info->exit_code, 3);
  EXPECT_THAT(info->labels, Contains(Pair("kiln.test", "1")));
  auto listed = client_->list_containers({.labels = {"kiln.test=1"}});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, ran.id);
  EXPECT_TRUE(client_->list_containers({.labels = {"kiln.test=2"}})->empty());

  ASSERT_TRUE(client_->remove_container(ran.id));
  auto gone = client_->inspect_container(ran.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(client_->remove_container(ran.id).error().kind(), ErrorKind::kNotFound);
}

TEST_F(DockerClientTest, HostNetworkSeesTheHostsInterfaces) {
  ContainerSpec spec;
  spec.network_mode = "host";
  Ran ran = run(spec, "ls /sys/class/net | wc -l");
  EXPECT_EQ(ran.exit_code, 0);
  std::size_t host_interfaces = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/sys/class/net"))
    ++host_interfaces;
  EXPECT_EQ(ran.out, std::to_string(host_interfaces) + "\n");

  spec.network_mode = "bridge";
  auto refused = client_->create_container(spec, "");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
}

TEST_F(DockerClientTest, KillEndsAWaitAndACancelledWaitReturns) {
  ContainerSpec spec{.image = kBusybox, .entrypoint = std::vector<std::string>{"/bin/sleep", "1000"}};
  auto id = client_->create_container(spec, "kiln-sleeper");
  ASSERT_TRUE(id) << id.error().to_string();
  auto duplicate = client_->create_container(spec, "kiln-sleeper");
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(duplicate.error().to_string(), HasSubstr("already in use"));
  ASSERT_TRUE(client_->start_container(*id));

  CancelToken cancel;
  Result<WaitResult> cancelled_wait = WaitResult{};
  std::thread waiter([&] { cancelled_wait = client_->wait_container(*id, &cancel); });
  cancel.cancel();
  waiter.join();
  ASSERT_FALSE(cancelled_wait);
  EXPECT_EQ(cancelled_wait.error().kind(), ErrorKind::kCancelled);
  EXPECT_TRUE(client_->inspect_container(*id)->running);

  Result<WaitResult> waited = WaitResult{};
  std::thread waiter2([&] { waited = client_->wait_container(*id, nullptr); });
  ASSERT_TRUE(client_->kill_container(*id));
  waiter2.join();
  ASSERT_TRUE(waited) << waited.error().to_string();
  EXPECT_EQ(waited->exit_code, 137);
  auto again = client_->kill_container(*id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_TRUE(client_->remove_container(*id));
}

TEST_F(DockerClientTest, VolumesBindsAndTmpfsAreMounted) {
  auto volume = client_->create_volume("kiln-cache-opam", {{"kiln.cache", "opam"}});
  ASSERT_TRUE(volume) << volume.error().to_string();
  EXPECT_EQ(volume->name, "kiln-cache-opam");
  EXPECT_TRUE(std::filesystem::is_directory(volume->mountpoint)) << volume->mountpoint;
  auto listed = client_->list_volumes({.labels = {"kiln.cache=opam"}});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "kiln-cache-opam");
  EXPECT_THAT((*listed)[0].labels, Contains(Pair("kiln.cache", "opam")));
  EXPECT_TRUE(client_->list_volumes({.labels = {"kiln.cache=other"}})->empty());

  std::string host_dir = tmp_.path() + "/bind";
  std::filesystem::create_directories(host_dir);
  std::ofstream(host_dir + "/secret") << "s3cr3t";
  ContainerSpec spec;
  spec.mounts = {{Mount::Type::kVolume, "kiln-cache-opam", "/cache", false},
                 {Mount::Type::kBind, host_dir, "/run/ro", true},
                 {Mount::Type::kTmpfs, "", "/run/tmp", false, 1 << 20, 0700}};
  Ran ran = run(spec,
                "echo kept > /cache/file; cat /run/ro/secret; echo; "
                "touch /run/ro/x 2>/dev/null && echo writable || echo read-only; "
                "stat -c %a /run/tmp; grep ' /run/tmp ' /proc/mounts | cut -d' ' -f3",
                /*remove=*/false);
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "s3cr3t\nread-only\n700\ntmpfs\n");
  std::ifstream kept(volume->mountpoint + "/file");
  std::string line;
  std::getline(kept, line);
  EXPECT_EQ(line, "kept");

  auto in_use = client_->remove_volume("kiln-cache-opam");
  ASSERT_FALSE(in_use);
  EXPECT_EQ(in_use.error().kind(), ErrorKind::kFailedPrecondition);
  ASSERT_TRUE(client_->remove_container(ran.id));
  ASSERT_TRUE(client_->remove_volume("kiln-cache-opam"));
  EXPECT_EQ(client_->inspect_volume("kiln-cache-opam").error().kind(), ErrorKind::kNotFound);
}

TEST_F(DockerClientTest, ArchivesGoIntoACreatedContainerWhichIsCommittedAsALabelledImage) {
  ContainerSpec spec{.image = kBusybox, .entrypoint = std::vector<std::string>{"/bin/true"}};
  auto id = client_->create_container(spec, "");
  ASSERT_TRUE(id) << id.error().to_string();
  // Never started: the archive lands in the container's writable layer.
  ASSERT_TRUE(client_->put_archive(*id, "/tmp", make_tar({{"app/hello.txt", "hello\n"}, {"app/b", "b"}})));
  std::string tar;
  ASSERT_TRUE(client_->get_archive(
      *id, "/tmp/app/hello.txt",
      [&](std::string_view bytes) -> Status {
        tar.append(bytes);
        return {};
      },
      nullptr));
  EXPECT_THAT(read_tar(tar), ElementsAre(Pair("hello.txt", "hello\n")));
  // The writable layer and the image's layers, as overlay2 keeps them on this host.
  auto container = client_->inspect_container(*id);
  ASSERT_TRUE(container) << container.error().to_string();
  EXPECT_EQ(container->graph_driver, "overlay2");
  EXPECT_EQ(read_file(container->upper_dir + "/tmp/app/hello.txt"), "hello\n");
  ASSERT_FALSE(container->lower_dirs.empty());
  for (const std::string& lower : container->lower_dirs) {
    EXPECT_TRUE(lower.starts_with(dockerd_.dir() + "/data/overlay2/")) << lower;
    EXPECT_TRUE(path_exists(lower)) << lower;
  }
  EXPECT_TRUE(path_exists(container->lower_dirs.back() + "/bin/busybox"));  // the image's one layer
  auto missing = client_->put_archive(*id, "/no/such/dir", make_tar({{"x", "x"}}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);

  auto image = client_->commit(*id, {.repo = "kiln-t/step", .tag = "s1", .labels = {{"kiln.step", "s1"}}});
  ASSERT_TRUE(image) << image.error().to_string();
  ASSERT_TRUE(client_->remove_container(*id));
  auto info = client_->inspect_image("kiln-t/step:s1");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->id, *image);
  EXPECT_THAT(info->labels, Contains(Pair("kiln.step", "s1")));
  auto by_label = client_->list_images({.labels = {"kiln.step=s1"}});
  ASSERT_TRUE(by_label);
  ASSERT_EQ(by_label->size(), 1u);

  // A streamed upload, into a container of the new image.
  ContainerSpec next{.image = "kiln-t/step:s1"};
  std::string second = make_tar({{"c.txt", std::string(200000, 'c')}});
  std::size_t offset = 0;
  Ran ran;
  {
    next.entrypoint = std::vector<std::string>{"/bin/true"};
    auto id2 = client_->create_container(next, "");
    ASSERT_TRUE(id2);
    ASSERT_TRUE(
        client_->put_archive(*id2, "/tmp/app", [&](char* buffer, std::size_t size) -> Result<std::size_t> {
          std::size_t n = std::min(size, second.size() - offset);
          std::copy_n(second.data() + offset, n, buffer);
          offset += n;
          return n;
        }));
    ASSERT_TRUE(client_->commit(*id2, {.repo = "kiln-t/step", .tag = "s2"}));
    ASSERT_TRUE(client_->remove_container(*id2));
  }
  ran = run({.image = "kiln-t/step:s2"}, "cat /tmp/app/hello.txt; wc -c < /tmp/app/c.txt");
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "hello\n200000\n");
}

TEST_F(DockerClientTest, InfoNamesTheDaemonsStorage) {
  auto info = client_->info();
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->root_dir, dockerd_.dir() + "/data");
  EXPECT_EQ(info->storage_driver, "overlay2");
  EXPECT_EQ(info->cgroup_driver, "cgroupfs");
  EXPECT_THAT(info->server_version, HasSubstr("20.10"));
}

TEST_F(DockerClientTest, StatPathSaysWhatAPathIsInAContainer) {
  auto id =
      client_->create_container({.image = kBusybox, .entrypoint = std::vector<std::string>{"/bin/true"}}, "");
  ASSERT_TRUE(id) << id.error().to_string();
  auto dir = client_->stat_path(*id, "/bin");
  ASSERT_TRUE(dir) << dir.error().to_string();
  EXPECT_EQ(dir->name, "bin");
  EXPECT_TRUE(dir->is_dir());
  EXPECT_EQ(dir->mode & 0777, 0755u);
  auto sh = client_->stat_path(*id, "/bin/sh");
  ASSERT_TRUE(sh) << sh.error().to_string();
  EXPECT_TRUE(sh->is_symlink());
  EXPECT_FALSE(sh->is_dir());
  EXPECT_THAT(sh->link_target, HasSubstr("busybox"));
  auto passwd = client_->stat_path(*id, "/etc/passwd");
  ASSERT_TRUE(passwd);
  EXPECT_FALSE(passwd->is_dir() || passwd->is_symlink());
  EXPECT_GT(passwd->size, 0);
  auto missing = client_->stat_path(*id, "/no/such/path");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().to_string(),
              HasSubstr("HEAD /containers/" + *id + "/archive?path=/no/such/path: 404"));
  EXPECT_TRUE(client_->remove_container(*id));
}

TEST_F(DockerClientTest, ImportMakesAnImageFromARootfsTarStream) {
  std::string tar = make_tar({{"hello.txt", "imported\n"}, {"etc/kiln", "k"}});
  std::size_t offset = 0;
  auto image = client_->import_image("kiln-t/imported", "one",
                                     [&](char* buffer, std::size_t size) -> Result<std::size_t> {
                                       std::size_t n = std::min(size, tar.size() - offset);
                                       std::copy_n(tar.data() + offset, n, buffer);
                                       offset += n;
                                       return n;
                                     });
  ASSERT_TRUE(image) << image.error().to_string();
  EXPECT_THAT(*image, ::testing::StartsWith("sha256:"));
  auto info = client_->inspect_image("kiln-t/imported:one");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->id, *image);

  // Nothing in it can run; its files are read through a created container.
  auto id = client_->create_container(
      {.image = "kiln-t/imported:one", .entrypoint = std::vector<std::string>{"/x"}}, "");
  ASSERT_TRUE(id) << id.error().to_string();
  std::string out;
  ASSERT_TRUE(client_->get_archive(
      *id, "/hello.txt",
      [&](std::string_view bytes) -> Status {
        out.append(bytes);
        return {};
      },
      nullptr));
  EXPECT_THAT(read_tar(out), ElementsAre(Pair("hello.txt", "imported\n")));
  EXPECT_TRUE(client_->remove_container(*id));

  auto garbage = std::string(1000, 'x');
  std::size_t sent = 0;
  auto refused = client_->import_image("kiln-t/imported", "bad",
                                       [&](char* buffer, std::size_t size) -> Result<std::size_t> {
                                         std::size_t n = std::min(size, garbage.size() - sent);
                                         std::copy_n(garbage.data() + sent, n, buffer);
                                         sent += n;
                                         return n;
                                       });
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().to_string(), HasSubstr("importing kiln-t/imported:bad"));
}

TEST_F(DockerClientTest, PullsFromARegistryWithProgress) {
  kiln::testing::LocalRegistry registry(tmp_.path() + "/registry");
  ASSERT_EQ(registry.push("oci:" + image_dir_ + ":latest", "team/busybox:1"), "");
  std::vector<PullProgress> progress;
  std::string reference = registry.host() + "/team/busybox:1";
  auto pulled = client_->pull_image(
      reference, [&](const PullProgress& p) { progress.push_back(p); }, nullptr);
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  EXPECT_FALSE(progress.empty());
  bool saw_digest = false;
  for (const PullProgress& p : progress) saw_digest = saw_digest || p.status.starts_with("Digest: sha256:");
  EXPECT_TRUE(saw_digest);
  EXPECT_TRUE(client_->inspect_image(reference));

  auto missing = client_->pull_image(registry.host() + "/team/busybox:2", nullptr, nullptr);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound) << missing.error().to_string();
  EXPECT_THAT(missing.error().to_string(), HasSubstr("pulling " + registry.host() + "/team/busybox:2"));
}

}  // namespace
}  // namespace kiln::docker
