// btrfs backend: every tree is a subvolume. A build from scratch creates
// one, a clone is a writable snapshot of the base, a commit makes the
// subvolume read-only and renames it into place, a delete destroys the
// subvolume. All through ioctls (no `btrfs` process per operation); only
// complete_deletes runs `btrfs subvolume sync` to wait for the cleaner.
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "worker/store/fs_util.h"
#include "worker/store/snapshot_backend.h"

namespace kiln::store {

namespace {

constexpr ino_t kSubvolumeRootInode = 256;  // BTRFS_FIRST_FREE_OBJECTID

Result<UniqueFd> open_dir(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  return fd;
}

std::pair<std::string, std::string> split(const std::string& path) {
  size_t slash = path.rfind('/');
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

template <typename Args>
Status set_name(Args& args, const std::string& name, const std::string& path) {
  if (name.size() >= sizeof(args.name))
    return make_error(ErrorKind::kInvalidArgument, fmt::format("btrfs: name of {} is too long", path));
  std::memcpy(args.name, name.c_str(), name.size() + 1);
  return {};
}

Status create_subvolume(const std::string& path) {
  auto [parent, name] = split(path);
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_dir(parent));
  btrfs_ioctl_vol_args args{};
  KILN_RETURN_IF_ERROR(set_name(args, name, path));
  if (ioctl(dir.get(), BTRFS_IOC_SUBVOL_CREATE, &args) != 0)
    return errno_error("creating btrfs subvolume " + path);
  return {};
}

Status snapshot(const std::string& src, const std::string& dst, bool read_only) {
  KILN_ASSIGN_OR_RETURN(UniqueFd source, open_dir(src));
  auto [parent, name] = split(dst);
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_dir(parent));
  btrfs_ioctl_vol_args_v2 args{};
  args.fd = source.get();
  args.flags = read_only ? BTRFS_SUBVOL_RDONLY : 0;
  KILN_RETURN_IF_ERROR(set_name(args, name, dst));
  if (ioctl(dir.get(), BTRFS_IOC_SNAP_CREATE_V2, &args) != 0)
    return errno_error(fmt::format("snapshotting btrfs subvolume {} to {}", src, dst));
  return {};
}

Status make_read_only(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(UniqueFd subvolume, open_dir(path));
  std::uint64_t flags = 0;
  if (ioctl(subvolume.get(), BTRFS_IOC_SUBVOL_GETFLAGS, &flags) != 0)
    return errno_error("reading the flags of btrfs subvolume " + path);
  flags |= BTRFS_SUBVOL_RDONLY;
  if (ioctl(subvolume.get(), BTRFS_IOC_SUBVOL_SETFLAGS, &flags) != 0)
    return errno_error("making btrfs subvolume " + path + " read-only");
  return {};
}

bool is_subvolume(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_ino == kSubvolumeRootInode;
}

Status delete_subvolume(const std::string& path) {
  auto [parent, name] = split(path);
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, open_dir(parent));
  btrfs_ioctl_vol_args args{};
  KILN_RETURN_IF_ERROR(set_name(args, name, path));
  if (ioctl(dir.get(), BTRFS_IOC_SNAP_DESTROY, &args) != 0)
    return errno_error("deleting btrfs subvolume " + path);
  return {};
}

class BtrfsBackend final : public SnapshotBackend {
 public:
  std::string_view kind() const override { return "btrfs"; }

  Status check_filesystem(const std::string& root) override {
    KILN_ASSIGN_OR_RETURN(std::int64_t magic, filesystem_magic(root));
    if (magic != static_cast<std::int64_t>(BTRFS_SUPER_MAGIC))
      return wrong_filesystem_error("btrfs", root, magic, "btrfs");
    root_ = root;
    return {};
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    KILN_RETURN_IF_ERROR(create_subvolume(dir));
    return WorkTree{dir, dir, "", false};
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse) override {
    KILN_RETURN_IF_ERROR(snapshot(base.layers.front(), dir, /*read_only=*/false));
    return WorkTree{dir, dir, "", false};
  }

  Status commit(const WorkTree& work, const std::string& dst) override {
    // Rename, then set the read-only flag: measured 2.3 ms against 3.4 ms
    // for a read-only snapshot plus deleting the work subvolume. (btrfs
    // refuses to move an already read-only subvolume to another directory.)
    // dst has no metadata until this returns, so nobody uses it while it is
    // still writable; after a crash in between, recovery removes it.
    KILN_RETURN_IF_ERROR(rename_path(work.dir, dst));
    if (auto s = make_read_only(dst); !s) {
      (void)delete_subvolume(dst);
      return s;
    }
    return {};
  }

  Status discard(const std::string& dir) override {
    if (is_subvolume(dir)) return delete_subvolume(dir);
    return remove_tree(dir);
  }

  Status remove_snapshot(const std::string&, const std::string& path) override { return discard(path); }

  Status complete_deletes() override {
    if (root_.empty()) return {};
    // Deleted subvolumes are cleaned by a kernel thread that otherwise waits
    // for the next transaction commit (30 s by default); a sync commits now
    // and wakes it, then `subvolume sync` waits until it has finished.
    KILN_ASSIGN_OR_RETURN(UniqueFd root, open_dir(root_));
    if (ioctl(root.get(), BTRFS_IOC_SYNC) != 0) return errno_error("syncing btrfs filesystem at " + root_);
    return run_command({"btrfs", "subvolume", "sync", root_});
  }

 private:
  std::string root_;
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_btrfs_backend() {
  return std::make_unique<BtrfsBackend>();
}

}  // namespace kiln::store
