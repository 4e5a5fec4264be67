// xfs (or any reflink filesystem) backend: a clone is a reflink copy of the
// tree (`cp -a --reflink=always`: extents are shared until written), a
// commit is a rename. Reflink support is checked at open with FICLONE.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "worker/store/fs_util.h"
#include "worker/store/snapshot_backend.h"

namespace kiln::store {

namespace {

class XfsBackend final : public SnapshotBackend {
 public:
  std::string_view kind() const override { return "xfs"; }

  Status check_filesystem(const std::string& root) override {
    KILN_ASSIGN_OR_RETURN(std::int64_t magic, filesystem_magic(root));
    std::string a = root + "/reflink-probe-a", b = root + "/reflink-probe-b";
    int err = 0;
    {
      UniqueFd fa(open(a.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      UniqueFd fb(open(b.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!fa || !fb) {
        err = errno;
      } else if (write(fa.get(), "kiln", 4) != 4 || fsync(fa.get()) != 0 ||
                 ioctl(fb.get(), FICLONE, fa.get()) != 0) {
        err = errno;
      }
    }
    unlink(a.c_str());
    unlink(b.c_str());
    if (err != 0) {
      return make_error(
          ErrorKind::kFailedPrecondition,
          fmt::format("xfs:{}: {} is on {}, which cannot make reflink copies (FICLONE: {}); make "
                      "an xfs filesystem with reflink there (mkfs.xfs -m reflink=1) or choose "
                      "another store",
                      root, root, filesystem_name(magic), std::strerror(err)));
    }
    return {};
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    return WorkTree{dir, dir, "", false};
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse) override {
    KILN_RETURN_IF_ERROR(run_command({"cp", "-a", "--reflink=always", base.layers.front(), dir}));
    return WorkTree{dir, dir, "", false};
  }

  Status commit(const WorkTree& work, const std::string& dst) override { return rename_path(work.dir, dst); }
  Status discard(const std::string& dir) override { return remove_tree(dir); }
  Status remove_snapshot(const std::string&, const std::string& path) override { return remove_tree(path); }
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_xfs_backend() {
  return std::make_unique<XfsBackend>();
}

}  // namespace kiln::store
