// What a build step works on while the store builds a result (docs/store.md,
// "The builder: a step works on a Workspace"). The snapshot stores give a
// host directory holding the step's root filesystem; the docker store gives
// a host directory for the log and the names of the image the step starts
// from and of the container the store will commit.
//
//   store->build(base, id, [&](const store::Workspace& ws) -> Status {
//     if (ws.has_rootfs()) return run_in(ws.rootfs, ws.dir + "/log");   // snapshot stores
//     return run_in_container(ws.base_image, ws.container, ws.dir + "/log");  // docker
//   });
//
// Plain data, valid for the duration of the build function's call.
#pragma once

#include <string>

namespace kiln::store {

struct Workspace {
  // Host directory of the build: its `log` and other files the builder keeps
  // beside the result (image.json). Becomes the result's directory.
  std::string dir;
  // Snapshot stores: `dir + "/rootfs"`, the tree the step changes (it may
  // not exist yet for a build from nothing). Docker store: empty.
  std::string rootfs;
  // Docker store: the image the step starts from ("" for a build from
  // nothing: the step must make the container from an image of its own, as a
  // fetch does) and the name of the container the step leaves, stopped, for
  // the store to commit. Empty on the snapshot stores.
  std::string base_image;
  std::string container;

  bool has_rootfs() const { return !rootfs.empty(); }
};

}  // namespace kiln::store
