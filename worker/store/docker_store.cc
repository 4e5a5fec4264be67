// The docker backend (docs/store.md, "The docker backend"): a SnapshotBackend
// whose results are images `PREFIX:<id>` and whose caches are volumes, in a
// dockerd on this host. The store's directories stay the crash-safe
// pointers: a work tree, a result or a cache is a host directory naming the
// docker object it owns in a small file, so the shared SnapshotStore keeps
// doing the bookkeeping (renames, exchanges, recovery) unchanged.
//
// Directory contents (besides the builder's own files, such as `log`):
//   tmp/<id>/docker-container      the container the build leaves for commit (and,
//                                  for a fetched base image, PREFIX-import:<id>)
//   result/<id>/docker-image       the image (PREFIX:<id>)
//   result/<id>/passwd             a copy of the image's /etc/passwd (if any),
//                                  for the builder's (user (name N))
//   cache*/<...>/docker-volume     the volume holding that cache snapshot
// Everything made in dockerd carries the label kiln.store=PREFIX, so that
// reconcile() finds what a crash left behind.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "worker/docker/container_files.h"
#include "worker/docker/docker_client.h"
#include "worker/store/fs_util.h"
#include "worker/store/snapshot_backend.h"

namespace kiln::store {
namespace {

constexpr std::string_view kContainerFile = "/docker-container";
constexpr std::string_view kImageFile = "/docker-image";
constexpr std::string_view kVolumeFile = "/docker-volume";

std::string base_name(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// Not finding what is being removed is success.
Status ignore_not_found(Status s) {
  if (!s && s.error().kind() == ErrorKind::kNotFound) return {};
  return s;
}

class DockerBackend final : public SnapshotBackend {
 public:
  DockerBackend(std::string root, std::string prefix, std::string host)
      : root_(std::move(root)), prefix_(std::move(prefix)), host_(std::move(host)) {
    std::random_device random;
    instance_ = (static_cast<std::uint64_t>(random()) << 32) | random();
  }

  std::string_view kind() const override { return "docker"; }

  Status check_filesystem(const std::string& /*root*/) override {
    auto client = docker::DockerClient::create({.host = host_});
    if (!client) return std::unexpected(std::move(client.error()).with_context(where()));
    client_ = std::move(*client);
    auto version = client_->version();
    if (!version) return std::unexpected(std::move(version.error()).with_context(where()));
    if (!api_at_least(version->api_version, 1, 41)) {
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("{}: dockerd {} speaks API {}, kiln needs 1.41 or later (dockerd 20.10); "
                                    "upgrade docker",
                                    where(), version->version, version->api_version));
    }
    auto info = client_->info();
    if (!info) return std::unexpected(std::move(info.error()).with_context(where()));
    if (info->storage_driver != "overlay2") {
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("{}: dockerd uses the storage driver \"{}\"; kiln's docker store needs "
                                    "overlay2 (dockerd --storage-driver overlay2)",
                                    where(), info->storage_driver));
    }
    docker_root_ = info->root_dir;
    return {};
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    if (is_cache_dir(dir)) return new_cache_volume(dir, nullptr);
    return build_tree(dir, "");
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse use) override {
    if (use == CloneUse::kCache) {
      KILN_ASSIGN_OR_RETURN(std::string from, read_pointer(base.layers.front(), kVolumeFile));
      return new_cache_volume(dir, &from);
    }
    return build_tree(dir, image_of(base.id));
  }

  Status commit(const WorkTree& work, const std::string& dst) override {
    if (work.container.empty()) return rename_path(work.dir, dst);  // a cache snapshot: its pointer moves
    std::string id = base_name(dst);
    // A step that changed nothing made no container: the result is its base.
    if (auto found = client_->inspect_container(work.container); !found) {
      if (found.error().kind() != ErrorKind::kNotFound || work.base_image.empty())
        return std::unexpected(std::move(found.error()).with_context("committing " + id));
      docker::ContainerSpec spec{.image = work.base_image, .labels = labels("step", id)};
      KILN_RETURN_IF_ERROR_CONTEXT(client_->create_container(spec, work.container), "committing " + id);
    }
    docker::CommitOptions options{.repo = prefix_, .tag = id, .labels = labels("result", id)};
    if (!work.base_image.empty()) {
      // A run step's container has the step's argv as its Entrypoint: the
      // result keeps its base's instead (as OBuilder's docker backend does).
      KILN_ASSIGN_OR_RETURN_CONTEXT(docker::ImageInfo base, client_->inspect_image(work.base_image),
                                    "committing " + id);
      options.entrypoint = base.entrypoint;
      options.cmd = base.cmd;
    }
    KILN_RETURN_IF_ERROR_CONTEXT(client_->commit(work.container, options), "committing " + id);
    KILN_ASSIGN_OR_RETURN_CONTEXT(
        std::optional<std::string> passwd,
        docker::read_container_file(*client_, work.container, "/etc/passwd", 1u << 20),
        "saving the /etc/passwd of " + id);
    if (passwd) KILN_RETURN_IF_ERROR(write_file(work.dir + "/passwd", *passwd));
    // From here to the rename, a crash leaves an image without a directory:
    // reconcile() removes it at the next open.
    KILN_RETURN_IF_ERROR(write_file(work.dir + std::string(kImageFile), image_of(id)));
    KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_container(work.container)));
    KILN_RETURN_IF_ERROR(remove_image(import_of(id)));
    KILN_RETURN_IF_ERROR(remove_tree(work.dir + std::string(kContainerFile)));
    return rename_path(work.dir, dst);
  }

  Status discard(const std::string& dir) override {
    if (auto name = read_pointer(dir, kContainerFile)) {
      KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_container(*name)));
      std::string step_prefix = prefix_ + "-step-";
      if (name->starts_with(step_prefix))
        KILN_RETURN_IF_ERROR(remove_image(import_of(name->substr(step_prefix.size()))));
    }
    if (auto name = read_pointer(dir, kVolumeFile))
      KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_volume(*name, true)));
    if (auto name = read_pointer(dir, kImageFile)) KILN_RETURN_IF_ERROR(remove_image(*name));
    return remove_tree(dir);
  }

  Status remove_snapshot(const std::string& id, const std::string& path) override {
    KILN_RETURN_IF_ERROR(remove_image(image_of(id)));
    return remove_tree(path);
  }

  Result<double> df(const std::string& /*root*/) override { return percent_free(docker_root_); }

  Result<bool> present(const std::string& id) override {
    auto image = client_->inspect_image(image_of(id));
    if (image) return true;
    if (image.error().kind() == ErrorKind::kNotFound) return false;
    return std::unexpected(std::move(image.error()).with_context("checking result " + id));
  }

  Status reconcile(const std::set<std::string>& live_results, RecoveryReport& report) override {
    docker::ListFilter ours{.labels = {"kiln.store=" + prefix_}};
    // Step containers never outlive their step: any left is a crash's.
    KILN_ASSIGN_OR_RETURN(auto containers, client_->list_containers(ours));
    for (const auto& c : containers) {
      spdlog::warn("{}: removing left-over step container {}", where(), c.names.empty() ? c.id : c.names[0]);
      KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_container(c.id)));
      report.temporaries_removed++;
    }
    KILN_ASSIGN_OR_RETURN(auto images, client_->list_images(ours));
    std::string tag_prefix = prefix_ + ":";
    for (const auto& image : images) {
      for (const std::string& tag : image.repo_tags) {
        if (!tag.starts_with(tag_prefix) || live_results.contains(tag.substr(tag_prefix.size()))) continue;
        spdlog::warn("{}: removing image {} (no result directory)", where(), tag);
        KILN_RETURN_IF_ERROR(remove_image(tag));
        report.orphan_results_removed++;
      }
    }
    // The docker fetcher's import names, used only until a from step's container exists.
    KILN_ASSIGN_OR_RETURN(auto imports, client_->list_images({.references = {prefix_ + "-import"}}));
    for (const auto& image : imports) {
      for (const std::string& tag : image.repo_tags) {
        spdlog::warn("{}: removing left-over import {}", where(), tag);
        KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_image(tag, true)));
        report.temporaries_removed++;
      }
    }
    // Volumes: those the cache directories name are the live ones (the
    // store's recovery has already discarded the temporaries').
    std::set<std::string> live_volumes;
    KILN_ASSIGN_OR_RETURN(auto caches, list_dir(root_ + "/cache"));
    for (const auto& c : caches) {
      if (auto name = read_pointer(root_ + "/cache/" + c, kVolumeFile)) live_volumes.insert(*name);
    }
    KILN_ASSIGN_OR_RETURN(auto volumes, client_->list_volumes(ours));
    for (const auto& v : volumes) {
      if (live_volumes.contains(v.name)) continue;
      spdlog::warn("{}: removing volume {} (no cache names it)", where(), v.name);
      KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_volume(v.name, true)));
      report.temporaries_removed++;
    }
    return {};
  }

  // docker's image sizes are cumulative: a result's own bytes are its
  // image's size less its parent's.
  Result<std::uint64_t> size_of(const std::string& id, const std::string& /*path*/,
                                const std::optional<std::string>& parent) override {
    KILN_ASSIGN_OR_RETURN(auto image, client_->inspect_image(image_of(id)));
    std::int64_t below = 0;
    if (parent) {
      if (auto p = client_->inspect_image(image_of(*parent))) below = p->size;
    }
    return static_cast<std::uint64_t>(std::max<std::int64_t>(image.size - below, 0));
  }

 private:
  std::string where() const { return fmt::format("docker:{} (dockerd {})", prefix_, host_); }
  std::string image_of(const std::string& id) const { return prefix_ + ":" + id; }
  // The docker fetcher's name for a base image it imported for step `id`
  // (docker_fetcher.h); it goes with the step's container.
  std::string import_of(const std::string& id) const { return prefix_ + "-import:" + id; }
  bool is_cache_dir(const std::string& dir) const { return dir.starts_with(root_ + "/cache"); }

  docker::Labels labels(std::string_view kind, const std::string& step) const {
    docker::Labels l{{"kiln.store", prefix_}, {"kiln.kind", std::string(kind)}};
    if (!step.empty()) l["kiln.step"] = step;
    return l;
  }

  static bool api_at_least(const std::string& version, int major, int minor) {
    int got_major = 0, got_minor = 0;
    if (std::sscanf(version.c_str(), "%d.%d", &got_major, &got_minor) != 2) return false;
    return got_major > major || (got_major == major && got_minor >= minor);
  }

  static Result<std::string> read_pointer(const std::string& dir, std::string_view file) {
    std::string path = dir + std::string(file);
    if (!path_exists(path)) return make_error(ErrorKind::kNotFound, path + " does not exist");
    return read_file(path, 4096);
  }

  // An untag; the layers stay while a child image needs them.
  Status remove_image(const std::string& name) {
    Status s = ignore_not_found(client_->remove_image(name));
    if (!s && s.error().kind() == ErrorKind::kFailedPrecondition) {
      // A conflict (a child image, a container) after the tag went is fine.
      if (auto still = client_->inspect_image(name); !still && still.error().kind() == ErrorKind::kNotFound)
        return {};
    }
    return s;
  }

  Result<WorkTree> build_tree(const std::string& dir, const std::string& base_image) {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    WorkTree work{.dir = dir, .writable = dir, .has_rootfs = false, .base_image = base_image};
    work.container = fmt::format("{}-step-{}", prefix_, base_name(dir));
    KILN_RETURN_IF_ERROR(write_file(dir + std::string(kContainerFile), work.container));
    return work;
  }

  // A new volume, empty or a copy of volume `from`, owned by directory `dir`.
  Result<WorkTree> new_cache_volume(const std::string& dir, const std::string* from) {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    std::string name = fmt::format("{}-cache-{:016x}-{}", prefix_, instance_, sequence_++);
    docker::Labels l = labels("cache", "");
    // Written first: a crash after the create leaves a volume the directory names.
    KILN_RETURN_IF_ERROR(write_file(dir + std::string(kVolumeFile), name));
    KILN_ASSIGN_OR_RETURN(docker::VolumeInfo volume, client_->create_volume(name, l));
    if (from) {
      KILN_ASSIGN_OR_RETURN(docker::VolumeInfo source, client_->inspect_volume(*from));
      // dockerd is local and its volumes are host directories (driver "local").
      KILN_RETURN_IF_ERROR(
          run_command({"cp", "-a", "--reflink=auto", source.mountpoint + "/.", volume.mountpoint}));
    }
    return WorkTree{.dir = dir, .writable = volume.mountpoint};
  }

  const std::string root_, prefix_, host_;
  std::unique_ptr<docker::DockerClient> client_;  // set by check_filesystem, the first call
  std::string docker_root_;
  std::uint64_t instance_ = 0;  // volume names stay unique across processes
  std::atomic<std::uint64_t> sequence_{0};
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_docker_backend(const std::string& root, const std::string& prefix,
                                                     const std::string& host) {
  return std::make_unique<DockerBackend>(root, prefix, host);
}

}  // namespace kiln::store
