#include "tests/store/store_trees.h"

#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "common/fs.h"
#include "tests/support/process.h"
#include "worker/docker/docker_client.h"
#include "worker/docker/testing/docker_fixture.h"

namespace kiln::store::testing {
namespace {

namespace fs = std::filesystem;

class DirectoryTrees final : public StoreTrees {
 public:
  Status write(const Workspace& ws, const std::map<std::string, std::string>& files) override {
    std::error_code ec;
    fs::create_directories(ws.rootfs, ec);
    for (const auto& [path, content] : files) {
      std::string full = ws.rootfs + "/" + path;
      if (content.empty()) {
        fs::remove_all(full, ec);
        continue;
      }
      fs::create_directories(fs::path(full).parent_path(), ec);
      KILN_RETURN_IF_ERROR(write_file(full, content));
    }
    return {};
  }
  std::optional<std::string> read_in_build(const Workspace& ws, const std::string& path) override {
    return read(ws.rootfs, path);
  }
  std::optional<std::string> read(const std::string& result_dir, const std::string&,
                                  const std::string& path) override {
    return read(result_dir + "/rootfs", path);
  }
  bool exists(const std::string& result_dir, const std::string&, const std::string& path) override {
    return path_exists(result_dir + "/rootfs/" + path);
  }
  bool has_tree(const std::string& result_dir, const std::string&) override {
    return fs::is_directory(result_dir + "/rootfs");
  }

 private:
  static std::optional<std::string> read(const std::string& rootfs, const std::string& path) {
    if (!path_exists(rootfs + "/" + path)) return std::nullopt;
    auto content = read_file(rootfs + "/" + path);
    if (!content) return std::nullopt;
    return *content;
  }
};

class DockerTrees final : public StoreTrees {
 public:
  DockerTrees(std::unique_ptr<docker::DockerClient> client, std::string prefix, std::string scratch)
      : client_(std::move(client)), prefix_(std::move(prefix)), scratch_(std::move(scratch)) {}

  Status write(const Workspace& ws, const std::map<std::string, std::string>& files) override {
    std::vector<std::string> removals{"/bin/busybox", "rm", "-rf"};
    std::vector<std::pair<std::string, std::string>> writes;
    for (const auto& [path, content] : files) {
      if (content.empty()) {
        removals.push_back("/" + path);
      } else {
        writes.emplace_back(path, content);
      }
    }
    bool removing = removals.size() > 3;
    if (client_->inspect_container(ws.container)) {
      if (removing) return make_error(ErrorKind::kUnsupported, "store_trees: removing in a second write");
    } else {
      // Labelled as a sandbox's step container is.
      docker::ContainerSpec spec{.image = ws.base_image.empty() ? scratch_ : ws.base_image,
                                 .entrypoint = removing ? removals : std::vector<std::string>{"/bin/true"},
                                 .labels = {{"kiln.store", prefix_}, {"kiln.kind", "step"}}};
      KILN_RETURN_IF_ERROR(client_->create_container(spec, ws.container));
      if (removing) {
        KILN_RETURN_IF_ERROR(client_->start_container(ws.container));
        KILN_ASSIGN_OR_RETURN(docker::WaitResult waited, client_->wait_container(ws.container, nullptr));
        if (waited.exit_code != 0)
          return make_error(ErrorKind::kIo, fmt::format("store_trees: rm exited with {}", waited.exit_code));
      }
    }
    if (writes.empty()) return {};
    return client_->put_archive(ws.container, "/", docker::testing::make_tar(writes));
  }

  std::optional<std::string> read_in_build(const Workspace& ws, const std::string& path) override {
    if (client_->inspect_container(ws.container)) return read_from(ws.container, path);
    return read_image(ws.base_image.empty() ? scratch_ : ws.base_image, path);
  }
  std::optional<std::string> read(const std::string&, const std::string& id,
                                  const std::string& path) override {
    return read_image(prefix_ + ":" + id, path);
  }
  bool exists(const std::string&, const std::string& id, const std::string& path) override {
    auto container = client_->create_container({.image = prefix_ + ":" + id}, "");
    if (!container) return false;
    bool found = static_cast<bool>(client_->stat_path(*container, "/" + path));
    (void)client_->remove_container(*container);
    return found;
  }
  bool has_tree(const std::string&, const std::string& id) override {
    return static_cast<bool>(client_->inspect_image(prefix_ + ":" + id));
  }

 private:
  // Through a container of the image, made for the read and removed after
  // (a container left would keep the image from being deleted).
  std::optional<std::string> read_image(const std::string& image, const std::string& path) {
    auto container = client_->create_container({.image = image}, "");
    if (!container) return std::nullopt;
    auto content = read_from(*container, path);
    (void)client_->remove_container(*container);
    return content;
  }
  std::optional<std::string> read_from(const std::string& container, const std::string& path) {
    std::string tar;
    Status got = client_->get_archive(
        container, "/" + path,
        [&](std::string_view bytes) -> Status {
          tar.append(bytes);
          return {};
        },
        nullptr);
    if (!got) return std::nullopt;
    auto files = docker::testing::read_tar(tar);
    auto it = files.find(fs::path(path).filename().string());
    if (it == files.end()) return std::nullopt;
    return it->second;
  }

  std::unique_ptr<docker::DockerClient> client_;
  const std::string prefix_, scratch_;
};

}  // namespace

std::unique_ptr<StoreTrees> directory_trees() {
  return std::make_unique<DirectoryTrees>();
}

std::unique_ptr<StoreTrees> docker_trees(const std::string& host, const std::string& prefix,
                                         const std::string& scratch_image) {
  auto client = docker::DockerClient::create({.host = host});
  if (!client) return nullptr;
  return std::make_unique<DockerTrees>(std::move(*client), prefix, scratch_image);
}

std::string load_scratch_image(kiln::testing::LocalDockerd& dockerd, const std::string& dir,
                               const std::string& name) {
  std::string layout = dir + "/busybox-image";
  auto made = kiln::testing::run_process({kiln::testing::source_dir() + "/scripts/make-base-image", layout});
  if (made.exit_code != 0) return "make-base-image failed: " + made.err;
  return dockerd.load_image("oci:" + layout + ":latest", name);
}

}  // namespace kiln::store::testing
