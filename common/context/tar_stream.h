// A tar written entry by entry into a sink, from files on this machine: the
// one libarchive writer behind result tars (result_tar.h) and image layers
// (worker/pusher/layer_diff.h).
//
//   TarStream tar([&](std::string_view bytes) { return out.write(bytes); });
//   KILN_RETURN_IF_ERROR(tar.add("app/bin/tool", "/store/…/rootfs/app/bin/tool", st));
//   KILN_RETURN_IF_ERROR(tar.add_empty_file("app/.wh.old", 0644));   // a whiteout
//   KILN_RETURN_IF_ERROR(tar.finish());
//
// Contract: POSIX pax (libarchive's restricted pax: ustar headers, a pax
// header only when a name, target or number does not fit), no padding after
// the end-of-archive blocks. add() takes the entry's metadata from `st`
// (mode, owner, times, size) and, for a symlink, its target from the file; a
// regular file's content is read from `host_path` opened with O_NOFOLLOW, and
// a file whose size changes while it is read fails the call. Directories and
// symlinks have no content. Other file types are refused (kInvalidArgument).
// A sink error stops the stream and is returned as is. Thread safety: one
// thread per TarStream.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

struct archive;

namespace kiln::context {

class TarStream {
 public:
  using Sink = std::function<Status(std::string_view chunk)>;
  explicit TarStream(Sink sink);
  ~TarStream();
  TarStream(const TarStream&) = delete;
  TarStream& operator=(const TarStream&) = delete;

  Status add(const std::string& name, const std::string& host_path, const struct stat& st);
  // An empty regular file, owner 0:0, mtime 0 (whiteouts).
  Status add_empty_file(const std::string& name, mode_t mode);
  // Writes the end-of-archive blocks. Idempotent.
  Status finish();
  std::uint64_t bytes() const { return bytes_; }

 private:
  static long on_write(struct archive*, void* self, const void* data, std::size_t size);
  Status check(int code, const std::string& what);

  Sink sink_;
  struct archive* archive_ = nullptr;
  std::uint64_t bytes_ = 0;
  std::optional<Error> sink_error_;
  bool finished_ = false;
};

}  // namespace kiln::context
