// rsync backend, for any filesystem: a clone is a full copy made with
// `rsync -aH`. In hardlink mode a committed result shares the files that
// did not change with its base (`rsync --link-dest`, compared by checksum),
// which saves space; results are never written after commit, so sharing
// inodes between them is safe. Builds always write to a private copy.
#include <fmt/format.h>

#include "worker/store/fs_util.h"
#include "worker/store/snapshot_backend.h"

namespace kiln::store {

namespace {

class RsyncBackend final : public SnapshotBackend {
 public:
  explicit RsyncBackend(RsyncMode mode) : mode_(mode) {}

  std::string_view kind() const override { return "rsync"; }

  Status check_filesystem(const std::string& root) override {
    if (auto s = run_command({"rsync", "--version"}); !s) {
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("rsync:{}: cannot run rsync ({}); install rsync or choose another store",
                                    root, s.error().message()));
    }
    return {};
  }

  Result<WorkTree> create_empty(const std::string& dir) override {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    KILN_RETURN_IF_ERROR(ensure_dir(dir + "/tree"));
    return WorkTree{dir, dir + "/tree", "", false};
  }

  Result<WorkTree> clone(const Lineage& base, const std::string& dir, CloneUse use) override {
    KILN_RETURN_IF_ERROR(ensure_dir(dir));
    KILN_RETURN_IF_ERROR(run_command({"rsync", "-aHq", base.layers.front() + "/", dir + "/tree"}));
    bool share = mode_ == RsyncMode::kHardlink && use == CloneUse::kBuild;
    return WorkTree{dir, dir + "/tree", share ? base.layers.front() : "", false};
  }

  Status commit(const WorkTree& work, const std::string& dst) override {
    if (work.link_base.empty()) {
      KILN_RETURN_IF_ERROR(rename_path(work.writable, dst));
    } else {
      // Stage the linked copy inside the work dir so that dst appears whole or not at all.
      std::string linked = work.dir + "/linked";
      KILN_RETURN_IF_ERROR(run_command(
          {"rsync", "-aHq", "--checksum", "--link-dest=" + work.link_base, work.writable + "/", linked}));
      KILN_RETURN_IF_ERROR(rename_path(linked, dst));
    }
    return {};  // the rest of work.dir (the unlinked copy) goes to the store's attic
  }

  Status discard(const std::string& dir) override { return remove_tree(dir); }
  Status remove_snapshot(const std::string&, const std::string& path) override { return remove_tree(path); }

 private:
  const RsyncMode mode_;
};

}  // namespace

std::unique_ptr<SnapshotBackend> make_rsync_backend(RsyncMode mode) {
  return std::make_unique<RsyncBackend>(mode);
}

}  // namespace kiln::store
