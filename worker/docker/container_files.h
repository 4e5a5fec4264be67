// Files between the host and dockerd, for the docker backend's store and
// fetcher (docs/store.md, "The docker backend"): one file read out of a
// container (the store keeps each result's /etc/passwd beside it), and a
// host directory imported as a single-layer image (base images fetched by
// kiln's own fetchers: oci:, docker-archive:, oci-archive:), and a copy
// step's staged files put into its container.
//
//   KILN_ASSIGN_OR_RETURN(std::optional<std::string> passwd,
//                         read_container_file(client, container, "/etc/passwd", 1 << 20));
//   KILN_ASSIGN_OR_RETURN(std::string image_id, import_directory(client, rootfs, "kiln-import", id));
//
// Thread safety: as DockerClient's (calls for different names may run at once).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/error.h"
#include "worker/docker/docker_client.h"

namespace kiln::docker {

// The content of regular file `path` in the container (created or stopped),
// or nullopt when there is none. kFailedPrecondition when it is larger than
// `max_bytes` or not a regular file.
Result<std::optional<std::string>> read_container_file(DockerClient& client, const std::string& container,
                                                       const std::string& path, std::size_t max_bytes);

// Imports the tree `dir` (owners, modes, times and xattrs kept: GNU tar
// with --numeric-owner --xattrs, through a temporary file beside `dir`) as
// the image `repo:tag`. Returns its id.
Result<std::string> import_directory(DockerClient& client, const std::string& dir, const std::string& repo,
                                     const std::string& tag);

// Puts into `container` (created or stopped) what a copy step laid out in
// `staging`, a host directory standing for the container's `/`, holding
// only the path to `dst` (absolute, normalised; a trailing '/' allowed)
// and what was copied there. Asks dockerd (HEAD /archive) for the deepest
// directory of `dst` that exists in the container and sends the staged
// entries below it (GNU tar, --numeric-owner: owners, modes and mtimes as
// staged) with PUT /archive, so the directories the image already has keep
// their own metadata. Symlinks on the way to `dst` are followed inside the
// image (absolute targets from its root, `..` stopping there, at most 40),
// so a copy to /lib/x on an image with /lib -> usr/lib lands in /usr/lib/x
// as on the other stores; kFailedPrecondition when a symlink leads to
// something missing or not a directory.
Status put_staged_tree(DockerClient& client, const std::string& container, const std::string& staging,
                       const std::string& dst);

}  // namespace kiln::docker
