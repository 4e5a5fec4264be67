// How the store conformance suite reaches the trees of builds and results.
// On the snapshot stores a tree is the directory `rootfs/` of the build's
// workspace or of the result; on the docker store it is the build's
// container (made from the workspace's base image, or from `scratch_image`
// for a build from nothing) and the result's image PREFIX:<id>, reached
// through dockerd. The suite's assertions are the same for every backend;
// only the way to the files differs.
//
//   auto trees = directory_trees();
//   store->build(std::nullopt, "a", [&](const Workspace& ws) -> Status {
//     return trees->write(ws, {{"dir/file", "content"}, {"gone", ""}});
//   });
//   std::optional<std::string> content = trees->read(*store->result("a").value(), "a", "dir/file");
//
// Test-only. Thread safety: every method may be called from several threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "tests/support/local_dockerd.h"
#include "worker/store/workspace.h"

namespace kiln::store::testing {

class StoreTrees {
 public:
  virtual ~StoreTrees() = default;
  // Applies `files` to the build's tree: relative path -> content; an empty
  // content removes the path (recursively).
  virtual Status write(const Workspace& ws, const std::map<std::string, std::string>& files) = 0;
  // A file as the build sees it, or nullopt when it does not exist.
  virtual std::optional<std::string> read_in_build(const Workspace& ws, const std::string& path) = 0;
  // A file of result `id` (whose directory is `result_dir`), or nullopt.
  virtual std::optional<std::string> read(const std::string& result_dir, const std::string& id,
                                          const std::string& path) = 0;
  // Whether `path` (a file or a directory) exists in result `id`.
  virtual bool exists(const std::string& result_dir, const std::string& id, const std::string& path) = 0;
  // Whether result `id` has a tree at all.
  virtual bool has_tree(const std::string& result_dir, const std::string& id) = 0;
};

std::unique_ptr<StoreTrees> directory_trees();
// The docker store `prefix` in the dockerd at `host`; `scratch_image` (with
// /bin/busybox) starts the builds from nothing.
std::unique_ptr<StoreTrees> docker_trees(const std::string& host, const std::string& prefix,
                                         const std::string& scratch_image);

// Loads kiln's busybox base image (scripts/make-base-image, its OCI layout
// made in `dir`) into `dockerd` as `name`. "" on success, else why not.
std::string load_scratch_image(kiln::testing::LocalDockerd& dockerd, const std::string& dir,
                               const std::string& name);

}  // namespace kiln::store::testing
