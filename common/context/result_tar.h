// Files out of a build result (`--output SRC:DESTDIR`, docs/images.md
// "Results out"): the tar that carries the file or directory SRC of a
// result's rootfs to a host directory. `kiln build` writes and unpacks it on
// one machine; for `kiln submit` the worker writes it, the scheduler relays
// it, and the client unpacks it. One format, one set of rules, both ways.
//
//   KILN_ASSIGN_OR_RETURN(ResultTar tar, write_result_tar(result + "/rootfs", "/app/bin",
//                                                       [&](std::string_view b) { return send(b); },
//                                                       256 << 20));
//   KILN_RETURN_IF_ERROR(unpack_result_tar(tar_fd, "/home/me/out"));
//
// The tar (POSIX pax, written by libarchive): SRC is a container path,
// resolved inside the rootfs as the container would see it (every symlink on
// the way, the last component's included, is followed beneath the rootfs; an
// absolute target means a path below it; nothing leads out). A directory SRC
// gives its content, entries relative to it, parents before children; a file
// SRC gives one entry named by SRC's last component. Entries keep their
// permission bits, mtime, owner and symlink targets (symlinks inside the tree
// are stored, never followed); hard links are stored as separate files;
// sockets, fifos and devices are left out and listed in `skipped`.
//
// Unpacking writes below `dest_dir` only (created if missing): names with
// "..", absolute names, hard links and special files are refused; parents are
// opened one component at a time without following symlinks, so a symlink in
// the tar or already in `dest_dir` is never written through (an entry's own
// place is replaced: an existing file or symlink there is removed first; an
// existing directory is kept when the entry is a directory). Files and
// directories get the entry's rwx and sticky bits (setuid and setgid are
// dropped) and mtime; owners are not restored (the caller's user owns
// everything). Symlinks are created as stored, whatever they point at: they
// are links on the host, never followed here.
// Errors: kNotFound when SRC does not exist in the rootfs, kInvalidArgument
// for a SRC that leaves it or a refused entry (naming it), kFailedPrecondition
// for an output over `max_bytes` (naming the cap), kIo from the OS. Thread safety: functions
// with no shared state.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln::context {

struct ResultTar {
  std::uint64_t bytes = 0;           // of the tar
  std::uint64_t entries = 0;         // written
  std::vector<std::string> skipped;  // container paths of special files left out
};

// Receives the tar's bytes in order, in chunks of any size.
using TarSink = std::function<Status(std::string_view chunk)>;

// Splits a `--output` value "SRC:DESTDIR" at its first ':' (kInvalidArgument
// naming the flag when either side is empty).
Result<std::pair<std::string, std::string>> parse_output_flag(std::string_view value);

// Writes SRC of `rootfs` as a tar into `sink`. More than `max_bytes` of tar
// fails the call (what was already sunk is then to be thrown away).
Result<ResultTar> write_result_tar(const std::string& rootfs, std::string_view src, const TarSink& sink,
                                   std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max());

// Unpacks the tar read from `fd` (to its end) into `dest_dir`. Returns the
// number of entries written. On error `dest_dir` may hold part of the tree.
Result<std::uint64_t> unpack_result_tar(int fd, const std::string& dest_dir);

}  // namespace kiln::context
