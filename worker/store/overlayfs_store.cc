// overlayfs backend: each result keeps only its own upper layer; a build
// from a base mounts an overlay of the base's layers (lower) with a fresh
// upper, and the upper becomes the new result. result(id) mounts a
// read-only merged view of the layers on demand. When a base already lies
// on `max_layers` layers, the build starts from a full copy of the base's
// merged view instead (flattening), which keeps every mount far from the
// kernel's limits (500 layers; mount options within one 4096-byte page).
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "worker/store/fs_util.h"
#include "worker/store/snapshot_backend.h"

namespace kiln::store {

namespace {

constexpr std::int64_t kOverlayfsMagic = 0x794C7630;

std::string basename_of(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// Mounts an overlay whose lower layers are given relative to `layer_dir`
// (topmost first). The names are resolved relative to the mounting thread's
// working directory, which keeps the option string short however long the
// store's path is; the mount runs on a helper thread that unshares its
// working directory, so the process's own cwd is never touched.
//
// A writable overlay is mounted `volatile` where the kernel has it (5.10):
// every fsync of the step's own processes (dpkg makes one or more per file)
// returns at once instead of reaching the disk, and its unmount at the
// commit does not sync the whole upper filesystem (every other writer's
// dirty pages). The store puts results on disk itself, off the build's path
// (docs/store.md, "Durability"). A step interrupted by a crash is built
// again from a fresh upper, never remounted (overlayfs refuses a volatile
// upper after a crash).
Status mount_overlay(const std::string& layer_dir, const std::vector<std::string>& lower_names,
                     const std::string& upper, const std::string& work, const std::string& target,
                     bool volatile_upper) {
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lower_names.size(); ++i) options += (i ? ":" : "") + lower_names[i];
  if (!upper.empty()) {
    options += ",upperdir=" + upper + ",workdir=" + work + ",index=off,redirect_dir=off";
    if (volatile_upper) options += ",volatile";
  }
  if (options.size() >= 4000) {
    return make_error(ErrorKind::kInternal,
                      fmt::format("overlay mount options for {} are {} bytes, over the kernel's page limit; "
                                  "lower overlay_max_layers",
                                  target, options.size()));
  }
  Status result;
  std::thread helper([&] {
    if (unshare(CLONE_FS) != 0) {
      result = errno_error("unshare(CLONE_FS) for an overlay mount");
      return;
    }
    if (chdir(layer_dir.c_str()) != 0) {
      result = errno_error("chdir " + layer_dir);
      return;
    }
    unsigned long flags = upper.empty() ? MS_RDONLY : 0;
    if (mount("overlay", target.c_str(), "overlay", flags, options.c_str()) != 0)
      result = errno_error(fmt::format("mounting an overlay at {} ({} layers)", target, lower_names.size()));
  });
  helper.join();
  return result;
}

// Unmounts synchronously when possible so that the upper layer is quiescent
// before it is renamed; falls back to a lazy unmount if something holds it.
Status unmount_now(const std::string& path) {
  if (umount2(path.c_str(), 0) == 0 || errno == EINVAL || errno == ENOENT) return {};
  return unmount(path);
}

// What a successful overlay probe of `root` depends on: this boot, the
// filesystem's kind and device. Empty when it cannot be told. The stamp
// file adds whether a `volatile` mount worked (kVolatileYes or kVolatileNo).
std::string probe_stamp(const std::string& root, std::int64_t magic) {
  std::string id = this_boot_id();
  struct stat st {};
  if (id.empty() || ::stat(root.c_str(), &st) != 0) return "";
  return fmt::format("boot {} filesystem {:x} device {}\n", id, magic, static_cast<std::uint64_t>(st.st_dev));
}

constexpr std::string_view kVolatileYes = "volatile yes\n";
constexpr std::string_view kVolatileNo = "volatile no\n";

class OverlayfsBackend final : public SnapshotBackend {
 public:
  OverlayfsBackend(std::string root, int max_layers) : root_(std::move(root)), max_layers_(max_layers) {}

  ~OverlayfsBackend() override {
    std::lock_guard lock(views_mu_);
    for (const auto& id : views_) {
      std::string v = view_path(id);
      if (auto s = unmount(v); !s) spdlog::warn("{}", s.error().to_string());
      rmdir(v.c_str());
    }
  }

  std::string_view kind() const override { return "overlayfs"; }

  Status check_filesystem(const std::string& root) override {
    KILN_ASSIGN_OR_RETURN(std::int64_t magic, filesystem_magic(root));
    if (magic == kOverlayfsMagic) {
      return make_error(
          ErrorKind::kFailedPrecondition,
          fmt::format("overlayfs:{}: {} is itself on overlayfs, which cannot hold upper layers; "
                      "choose a directory on ext4, xfs, btrfs or tmpfs",
                      root, root));
    }
    // The only reliable check is to try: mount a tiny overlay here. A
    // success is remembered until the next boot (or until the store moves to
    // another filesystem): the probe's mkdirs and mount are most of what
    // opening the store costs a fully cached `kiln build`.
    const std::string stamp_file = root + "/overlay-probe.ok";
    const std::string stamp = probe_stamp(root, magic);
    if (!stamp.empty()) {
      auto previous = read_file(stamp_file, 4096);
      if (previous && *previous == stamp + std::string(kVolatileYes)) {
        volatile_ = true;
        return {};
      }
      if (previous && *previous == stamp + std::string(kVolatileNo)) {
        volatile_ = false;
        return {};
      }
    }
    std::string probe = root + "/overlay-probe";
    // One probe mount as builds make it (volatile), and without `volatile`
    // when the kernel refuses that option (before 5.10: EINVAL).
    auto try_mount = [&](bool with_volatile) -> Status {
      KILN_RETURN_IF_ERROR(remove_tree(probe));
      KILN_RETURN_IF_ERROR(ensure_dir(probe));
      for (const char* sub : {"/lower", "/upper", "/work", "/merged"})
        KILN_RETURN_IF_ERROR(ensure_dir(probe + sub));
      KILN_RETURN_IF_ERROR(mount_overlay(probe, {"lower"}, probe + "/upper", probe + "/work",
                                         probe + "/merged", with_volatile));
      return unmount_now(probe + "/merged");
    };
    volatile_ = true;
    Status s = try_mount(true);
    if (!s) {
      volatile_ = false;
      Status plain = try_mount(false);
      if (plain)
        spdlog::info(
            "overlayfs:{}: the kernel refuses volatile overlays ({}); each step's commit syncs the "
            "filesystem",
            root, s.error().message());
      s = std::move(plain);
    }
    (void)remove_tree(probe);
    if (!s) {
      return make_error(
          ErrorKind::kFailedPrecondition,
          fmt::format("overlayfs:{}: cannot mount an overlay on {} ({}): run the worker as root, "
                      "on a filesystem that supports overlayfs upper layers (ext4, xfs, btrfs, "
                      "tmpfs), or choose another store",
                      root, filesystem_name(magic), s.error().message()));
    }
    if (!stamp.empty())
      (void)write_file_atomically(stamp_file, stamp + std::string(volatile_ ? kVolatileYes : kVolatileNo),
                                  0644);
    return {};
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    KILN_RETURN_IF_ERROR(ensure_dir(dir + "/upper"));
    return WorkTree{dir, dir + "/upper", "", false};
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse use) override {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    if (use == CloneUse::kCache || static_cast<int>(base.layers.size()) >= max_layers_) {
      // A self-contained copy of the merged tree.
      KILN_ASSIGN_OR_RETURN(std::string source, view(base));
      KILN_RETURN_IF_ERROR(run_command({"cp", "-a", "--reflink=auto", source, dir + "/upper"}));
      return WorkTree{dir, dir + "/upper", "", false};
    }
    for (const char* sub : {"/upper", "/work", "/merged"}) KILN_RETURN_IF_ERROR(ensure_dir(dir + sub));
    KILN_ASSIGN_OR_RETURN(auto names, layer_names(base));
    KILN_RETURN_IF_ERROR(
        mount_overlay(root_ + "/result", names, dir + "/upper", dir + "/work", dir + "/merged", volatile_));
    return WorkTree{dir, dir + "/merged", "", true};
  }

  // The rest of work.dir (its work and merged directories, empty) is left
  // for the store's attic: removing them costs a trim each on a filesystem
  // mounted with `discard`, which the next step need not wait for.
  Status commit(const WorkTree& work, const std::string& dst) override {
    if (work.layered_on_base) KILN_RETURN_IF_ERROR(unmount_now(work.dir + "/merged"));
    return rename_path(work.dir + "/upper", dst);
  }

  Status discard(const std::string& dir) override {
    // A work dir may still have its merged mount; remove_tree never crosses mounts.
    if (path_exists(dir + "/merged")) KILN_RETURN_IF_ERROR(unmount(dir + "/merged"));
    return remove_tree(dir);
  }

  Status remove_snapshot(const std::string& id, const std::string& path) override {
    {
      std::lock_guard lock(views_mu_);
      if (views_.erase(id)) {
        KILN_RETURN_IF_ERROR(unmount(view_path(id)));
        rmdir(view_path(id).c_str());
      }
    }
    return remove_tree(path);
  }

  Result<std::string> view(const Lineage& snapshot) override {
    if (snapshot.layers.size() == 1) return snapshot.layers.front();
    std::lock_guard lock(views_mu_);
    std::string target = view_path(snapshot.id);
    if (views_.contains(snapshot.id)) return target;
    KILN_ASSIGN_OR_RETURN(auto names, layer_names(snapshot));
    KILN_RETURN_IF_ERROR(ensure_dir(target));
    KILN_RETURN_IF_ERROR(mount_overlay(root_ + "/result", names, "", "", target, false));
    views_.insert(snapshot.id);
    return target;
  }

  bool results_depend_on_parents() const override { return true; }

 private:
  std::string view_path(const std::string& id) const { return root_ + "/view/" + id; }

  Result<std::vector<std::string>> layer_names(const Lineage& lineage) const {
    std::vector<std::string> names;
    std::string prefix = root_ + "/result/";
    for (const auto& layer : lineage.layers) {
      if (!layer.starts_with(prefix)) {
        return make_error(ErrorKind::kInternal,
                          fmt::format("overlay layer {} is not under {}", layer, prefix));
      }
      names.push_back(basename_of(layer));
    }
    return names;
  }

  const std::string root_;
  const int max_layers_;
  bool volatile_ = false;  // work overlays are mounted `volatile` (set by check_filesystem)
  std::mutex views_mu_;
  std::set<std::string> views_;  // ids whose merged view is mounted
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_overlayfs_backend(const std::string& root, int max_layers) {
  return std::make_unique<OverlayfsBackend>(root, max_layers);
}

}  // namespace kiln::store
