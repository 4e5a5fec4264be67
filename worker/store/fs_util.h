// Filesystem and process helpers shared by every snapshot store backend
// (internal to worker/store: nothing outside the store should include it).
// The general ones (ensure_dir, remove_tree, list_dir, path_exists) are
// common/fs.h's, included here; processes are common/subprocess.h's.
//
//   KILN_RETURN_IF_ERROR(run_command({"cp", "-a", "--reflink=always", src, dst}));
//   KILN_ASSIGN_OR_RETURN(std::uint64_t bytes, disk_usage(result_dir));
//   KILN_RETURN_IF_ERROR(remove_tree(tmp_dir));
//
// Contract: every function returns an Error naming the path and the OS
// reason; none throws. Thread safety: all functions may be called from any
// thread; they act on the paths given and nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace kiln::store {

// Runs a tool (argv[0] looked up in PATH; stdin and stdout /dev/null, in
// kiln's process group with its signal dispositions), waits for it and fails
// unless it exits with status 0. The error carries the command line and the
// last part of its stderr.
Status run_command(const std::vector<std::string>& argv);

// Bytes allocated on disk by the tree (st_blocks * 512, hard links counted once).
Result<std::uint64_t> disk_usage(const std::string& path);

// Renames src to dst (dst must not exist).
Status rename_path(const std::string& src, const std::string& dst);

// Swaps two existing paths atomically (renameat2 RENAME_EXCHANGE).
Status exchange_paths(const std::string& a, const std::string& b);

// The statfs magic of the filesystem holding `path`, and a human name for it
// ("ext4", "btrfs", "xfs", "tmpfs", ... or "filesystem type 0x...").
Result<std::int64_t> filesystem_magic(const std::string& path);
std::string filesystem_name(std::int64_t magic);

// Mount points strictly beneath `dir`, deepest first (from /proc/self/mountinfo).
Result<std::vector<std::string>> mounts_beneath(const std::string& dir);

// Lazily unmounts `path` (MNT_DETACH). Not mounted is fine.
Status unmount(const std::string& path);

// This boot's id (/proc/sys/kernel/random/boot_id without its newline); ""
// when it cannot be read.
std::string this_boot_id();

// syncfs(2) of the filesystem `path` is on: its dirty data and metadata to disk.
Status sync_filesystem(const std::string& path);

// Percent of the filesystem holding `path` that is available to unprivileged users.
Result<double> percent_free(const std::string& path);

// File-name-safe form of a cache name: letters, digits, '-' and '_' kept,
// everything else as %XX. Reversible with unescape_name.
std::string escape_name(std::string_view name);
std::string unescape_name(std::string_view escaped);

}  // namespace kiln::store
