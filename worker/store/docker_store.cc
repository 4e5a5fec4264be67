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
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

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
    // The storage driver is checked before the first build (docker_root()):
    // GET /info costs dockerd ~10 ms, a fifth of a fully cached build.
    return {};
  }

  ~DockerBackend() override {
    {
      std::lock_guard lock(removal_mu_);
      stopping_ = true;
      removal_cv_.notify_all();
    }
    if (remover_.joinable()) remover_.join();
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    KILN_RETURN_IF_ERROR(docker_root());
    if (is_cache_dir(dir)) return new_cache_volume(dir, nullptr);
    return build_tree(dir, "");
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse use) override {
    KILN_RETURN_IF_ERROR(docker_root());
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
    auto found = client_->inspect_container(work.container);
    if (!found) {
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
    KILN_ASSIGN_OR_RETURN_CONTEXT(std::optional<std::string> passwd,
                                  passwd_of(work, found ? &*found : nullptr),
                                  "saving the /etc/passwd of " + id);
    if (passwd) KILN_RETURN_IF_ERROR(write_file(work.dir + "/passwd", *passwd));
    // From here to the rename, a crash leaves an image without a directory:
    // reconcile() removes it at the next open.
    KILN_RETURN_IF_ERROR(write_file(work.dir + std::string(kImageFile), image_of(id)));
    KILN_RETURN_IF_ERROR(remove_tree(work.dir + std::string(kContainerFile)));
    KILN_RETURN_IF_ERROR(rename_path(work.dir, dst));
    // The container (and the base image the fetcher imported for it) is
    // removed after the result is recorded, off the build's path: a crash
    // before leaves labelled objects that reconcile() removes.
    remove_later(work.container, import_of(id));
    return {};
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
    // A step container still queued for removal may run this image; dockerd
    // would refuse to untag it.
    wait_removed("");
    {
      std::lock_guard lock(listed_mu_);
      listed_images_.reset();  // no longer what dockerd has
    }
    KILN_RETURN_IF_ERROR(remove_image(image_of(id)));
    return remove_tree(path);
  }

  Result<double> df(const std::string& /*root*/) override {
    KILN_ASSIGN_OR_RETURN(std::string root, docker_root());
    return percent_free(root);
  }

  // Asked at open for every result: answered from one list of the store's
  // images (taken at the first call; reconcile(), the last step of the
  // open, uses it and drops it) rather than one inspection per result.
  Result<bool> present(const std::string& id) override {
    std::lock_guard lock(listed_mu_);
    if (!listed_images_) {
      auto images = client_->list_images({.labels = {"kiln.store=" + prefix_}});
      if (!images) return std::unexpected(std::move(images.error()).with_context("checking result " + id));
      listed_images_ = std::move(*images);
    }
    return std::ranges::any_of(*listed_images_, [&](const docker::ImageSummary& image) {
      return std::ranges::find(image.repo_tags, image_of(id)) != image.repo_tags.end();
    });
  }

  Status reconcile(const std::set<std::string>& live_results, RecoveryReport& report) override {
    docker::ListFilter ours{.labels = {"kiln.store=" + prefix_}};
    // Step containers never outlive their step: any left is a crash's. Only
    // kiln's own (kind step or push): a container someone runs from a result
    // image inherits the image's labels, kind "result", and is not ours.
    KILN_ASSIGN_OR_RETURN(auto containers, client_->list_containers(ours));
    for (const auto& c : containers) {
      auto kind = c.labels.find("kiln.kind");
      if (kind == c.labels.end() || (kind->second != "step" && kind->second != "push")) continue;
      spdlog::warn("{}: removing left-over step container {}", where(), c.names.empty() ? c.id : c.names[0]);
      KILN_RETURN_IF_ERROR(ignore_not_found(client_->remove_container(c.id)));
      report.temporaries_removed++;
    }
    // Taken by present() during this open, when there were results to check
    // and none was removed since (remove_snapshot drops it).
    std::optional<std::vector<docker::ImageSummary>> listed;
    {
      std::lock_guard lock(listed_mu_);
      listed = std::exchange(listed_images_, std::nullopt);
    }
    if (!listed) {
      KILN_ASSIGN_OR_RETURN(listed, client_->list_images(ours));
    }
    const std::vector<docker::ImageSummary>& images = *listed;
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
    // A cache's previous snapshot waiting in the store's attic: the attic removes it.
    if (auto retiring = list_dir(root_ + "/attic")) {
      for (const auto& r : *retiring)
        if (auto name = read_pointer(root_ + "/attic/" + r, kVolumeFile)) live_volumes.insert(*name);
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

  // dockerd's DockerRootDir, from GET /info asked once; refuses a storage
  // driver other than overlay2.
  Result<std::string> docker_root() {
    std::lock_guard lock(info_mu_);
    if (!docker_root_.empty()) return docker_root_;
    auto info = client_->info();
    if (!info) return std::unexpected(std::move(info.error()).with_context(where()));
    if (info->storage_driver != "overlay2") {
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("{}: dockerd uses the storage driver \"{}\"; kiln's docker store needs "
                                    "overlay2 (dockerd --storage-driver overlay2)",
                                    where(), info->storage_driver));
    }
    docker_root_ = info->root_dir;
    return docker_root_;
  }

  // Committed step containers and their import images, removed on a thread
  // of its own (started at the first commit), in the order given: dockerd
  // deleting a container's writable layer took 8-85 ms a step here. The
  // destructor finishes what is queued; a crash leaves labelled objects
  // that reconcile() removes at the next open. A failure is logged (the
  // next open removes what is left).
  struct Removal {
    std::string container, image;
  };
  void remove_later(std::string container, std::string image) {
    std::lock_guard lock(removal_mu_);
    removals_.push_back({std::move(container), std::move(image)});
    if (!remover_.joinable()) remover_ = std::thread([this] { run_removals(); });
    removal_cv_.notify_all();
  }
  void run_removals() {
    std::unique_lock lock(removal_mu_);
    for (;;) {
      removal_cv_.wait(lock, [&] { return stopping_ || !removals_.empty(); });
      if (removals_.empty()) return;
      Removal next = removals_.front();  // stays queued until done, for wait_removed()
      lock.unlock();
      Status s = ignore_not_found(client_->remove_container(next.container));
      if (s) s = remove_image(next.image);
      if (!s)
        spdlog::warn("{}: removing step container {}: {}", where(), next.container, s.error().to_string());
      lock.lock();
      removals_.pop_front();
      removal_cv_.notify_all();
    }
  }
  // Until `container` ("": every one) is no longer queued for removal.
  void wait_removed(const std::string& container) {
    std::unique_lock lock(removal_mu_);
    removal_cv_.wait(lock, [&] {
      return std::none_of(removals_.begin(), removals_.end(),
                          [&](const Removal& r) { return container.empty() || r.container == container; });
    });
  }

  // The committed image's /etc/passwd (nullopt: none). A step on a kiln
  // result that left /etc alone (`container`: its inspection; null: no
  // container was made, nothing changed) has its base result's saved copy;
  // otherwise it is read out of the container (GET /archive, which costs
  // dockerd a mount: ~55 ms a step here, against ~0 for the host check).
  Result<std::optional<std::string>> passwd_of(const WorkTree& work, const docker::ContainerInfo* container) {
    std::string tag_prefix = prefix_ + ":";
    std::string base_dir = work.base_image.starts_with(tag_prefix)
                               ? root_ + "/result/" + work.base_image.substr(tag_prefix.size())
                               : "";
    if (!base_dir.empty() && path_exists(base_dir) && (!container || keeps_image_etc(*container))) {
      if (!path_exists(base_dir + "/passwd")) return std::optional<std::string>();
      KILN_ASSIGN_OR_RETURN(std::string text, read_file(base_dir + "/passwd", 1u << 20));
      return std::optional(std::move(text));
    }
    return docker::read_container_file(*client_, work.container, "/etc/passwd", 1u << 20);
  }

  // Whether a container's own layer leaves its image's /etc as it was,
  // looked at on this host (dockerd is local: docs/store.md): overlay2's
  // writable layer has no /etc entry (no file written, deleted or replaced
  // beneath it), and the topmost layer below with an /etc has a directory
  // there, not a symlink that would take the step's writes elsewhere.
  // Anything unexpected (another driver, a layer directory this process
  // cannot see) answers false, and the caller reads the file instead.
  static bool keeps_image_etc(const docker::ContainerInfo& container) {
    if (container.graph_driver != "overlay2" || container.upper_dir.empty()) return false;
    struct stat st {};
    if (::stat(container.upper_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    if (::lstat((container.upper_dir + "/etc").c_str(), &st) == 0 || errno != ENOENT) return false;
    for (const std::string& lower : container.lower_dirs) {
      if (::lstat((lower + "/etc").c_str(), &st) == 0) return S_ISDIR(st.st_mode);
      if (errno != ENOENT) return false;
    }
    return false;
  }

  // An untag; the layers stay while a child image needs them.
  Status remove_image(const std::string& name) {
    Status s = ignore_not_found(client_->remove_image(name));
    if (!s && s.error().kind() == ErrorKind::kFailedPrecondition) {
      // A conflict (a child image, a container) after the tag went is fine.
      auto still = client_->inspect_image(name);
      if (!still && still.error().kind() == ErrorKind::kNotFound) return {};
      // The tag stays when a container someone runs from the result uses
      // it (kiln's own are gone by now): forced, dockerd only untags it and
      // the container keeps its layers.
      s = ignore_not_found(client_->remove_image(name, true));
    }
    return s;
  }

  Result<WorkTree> build_tree(const std::string& dir, const std::string& base_image) {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    WorkTree work{.dir = dir, .writable = dir, .has_rootfs = false, .base_image = base_image};
    work.container = fmt::format("{}-step-{}", prefix_, base_name(dir));
    wait_removed(work.container);  // the same step built again: its old container must be gone
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
  std::mutex info_mu_;
  std::string docker_root_;  // docker_root()'s, under info_mu_
  // present()'s list of the store's images, during the open; under listed_mu_.
  std::mutex listed_mu_;
  std::optional<std::vector<docker::ImageSummary>> listed_images_;
  std::mutex removal_mu_;
  std::condition_variable removal_cv_;
  std::deque<Removal> removals_;  // under removal_mu_, the one being removed first
  bool stopping_ = false;         // under removal_mu_
  std::thread remover_;
  std::uint64_t instance_ = 0;  // volume names stay unique across processes
  std::atomic<std::uint64_t> sequence_{0};
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_docker_backend(const std::string& root, const std::string& prefix,
                                                     const std::string& host) {
  return std::make_unique<DockerBackend>(root, prefix, host);
}

}  // namespace kiln::store
