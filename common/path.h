// Safe path handling for paths that come from specs, contexts and peers.
//
// Paths inside a build context or a snapshot are always relative to a root
// that the caller owns. These helpers make sure such a path cannot reach
// outside that root: `..` components, absolute paths where a relative one is
// required, NUL bytes, and symlinks whose target leaves the root are errors.
//
//   auto rel = normalize_relative("./src//main.c");   // "src/main.c"
//   auto host = resolve_beneath("/ctx", "lib/link");   // follows lib/link only
//                                                       // while it stays in /ctx
// Thread safety: pure functions, except resolve_beneath which reads the
// filesystem (and is as racy as any lstat/readlink walk).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln::path {

// Splits on '/', dropping empty and "." components.
std::vector<std::string_view> components(std::string_view path);

// Normalises a relative path: drops "." and empty components; rejects "..",
// a leading '/', and NUL bytes. Returns "" for the root itself.
Result<std::string> normalize_relative(std::string_view path);

// Normalises an absolute path lexically ("/a/./b/" -> "/a/b"); rejects ".."
// and NUL bytes. Returns "/" for the root.
Result<std::string> normalize_absolute(std::string_view path);

// Joins two paths with exactly one '/' between them. `b` must be relative.
std::string join(std::string_view a, std::string_view b);

// Resolves `rel` (relative to `root`, which must be an existing directory)
// component by component, following symlinks, and fails if any step would
// leave `root` (a ".." above it, or a symlink target outside it). What an
// absolute symlink target means depends on what `root` is: inside a snapshot's
// rootfs it is relative to `root`, as the container sees it; inside a build
// context it points at the host and is refused. Returns the host path of the
// final object, which need not exist (the missing tail is appended lexically).
enum class AbsoluteSymlinks { kRelativeToRoot, kReject };
Result<std::string> resolve_beneath(const std::string& root, std::string_view rel,
                                    AbsoluteSymlinks absolute = AbsoluteSymlinks::kReject);

}  // namespace kiln::path
