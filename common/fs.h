// Whole-file reads and writes, directories and trees: the filesystem helpers
// every part of kiln needs (the stores, the sandbox, the builder, the
// fetcher, the CLI), each with one implementation here.
//
//   KILN_ASSIGN_OR_RETURN(std::string json, read_file(path, 1 << 20));  // at most 1 MiB
//   KILN_RETURN_IF_ERROR(write_file(bundle + "/config.json", text, 0600));
//   KILN_RETURN_IF_ERROR(write_file_atomically(dir + "/farm.json", state));
//   KILN_RETURN_IF_ERROR(ensure_dirs(state_dir + "/bundles", 0700));
//   KILN_RETURN_IF_ERROR(remove_tree(tmp_dir));
//   KILN_ASSIGN_OR_RETURN(auto names, list_dir(root + "/result"));
//
// Contract: every function returns an Error naming the path and the OS's
// reason (errno_error: ENOENT is kNotFound, ...); none throws; none follows a
// symlink it creates, replaces or removes. Thread safety: all functions may
// be called from any thread at once; they act on the paths given and
// nothing else (no working directory, umask or other process state changes).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln {

inline constexpr std::size_t kNoSizeLimit = std::numeric_limits<std::size_t>::max();

// The whole content of `path` (a symlink is followed), read to its end, so
// files whose stat size means nothing (procfs, cgroupfs) read whole too.
// kInvalidArgument when it holds more than `max_bytes`.
Result<std::string> read_file(const std::string& path, std::size_t max_bytes = kNoSizeLimit);

// Writes all of `data` to `fd` (retrying short writes and EINTR); errors say
// "cannot write <name>".
Status write_all(int fd, std::string_view data, std::string_view name);

// Creates or truncates `path` and writes `content`. A symlink at `path` is
// refused rather than followed. A new file gets `mode` less the umask, as
// with open(2); an existing file keeps its mode.
Status write_file(const std::string& path, std::string_view content, mode_t mode = 0644);

// Replaces `path` by a file holding `content` and exactly `mode`: written
// beside it under a temporary name, then renamed over it, so a reader sees
// the old content or the new, never a part. (Not fsynced: a power loss may
// lose the new content, not mix the two.)
Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0644);

// Creates the directory `path` with `mode` (less the umask). An existing
// directory is fine; an existing non-directory is an error.
Status ensure_dir(const std::string& path, mode_t mode = 0755);

// ensure_dir for `path` and each missing parent (`mkdir -p`): the parents
// get 0755, `path` itself `mode`.
Status ensure_dirs(const std::string& path, mode_t mode = 0755);

// Removes a file or a whole directory tree, without following symlinks and
// without crossing into other mounts (a mount below `path` makes it fail).
// Removes as much as it can; the error names the first entry that stayed. A
// missing path is fine.
Status remove_tree(const std::string& path);

// Names of the entries in a directory (without "." and ".."), sorted.
Result<std::vector<std::string>> list_dir(const std::string& path);

// True when `path` exists (as anything; a symlink is not followed).
bool path_exists(const std::string& path);

// The directory of the running program (/proc/self/exe), or "." if unknown.
std::string executable_dir();

}  // namespace kiln
