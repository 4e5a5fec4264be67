// write_result_tar (result_tar.h).
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/context/result_tar.h"
#include "common/context/tar_stream.h"
#include "common/format.h"
#include "common/fs.h"
#include "common/path.h"

namespace kiln::context {
namespace {

class TreeWriter {
 public:
  TreeWriter(TarStream& tar, ResultTar& out, std::string container_root)
      : tar_(tar), out_(out), container_root_(std::move(container_root)) {}

  // `name` is the entry's name in the tar ("" for the directory SRC itself, not written).
  Status write(const std::string& host, const std::string& name) {
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return errno_error("cannot stat " + host);
    std::string container = name.empty() ? container_root_ : path::join(container_root_, name);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      out_.skipped.push_back(container);
      return {};
    }
    if (!name.empty()) {
      KILN_RETURN_IF_ERROR(tar_.add(name, host, st));
      ++out_.entries;
    }
    if (!S_ISDIR(st.st_mode)) return {};
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, list_dir(host));
    for (const std::string& child : names)
      KILN_RETURN_IF_ERROR(write(host + "/" + child, name.empty() ? child : name + "/" + child));
    return {};
  }

 private:
  TarStream& tar_;
  ResultTar& out_;
  std::string container_root_;
};

}  // namespace

Result<ResultTar> write_result_tar(const std::string& rootfs, std::string_view src, const TarSink& sink,
                                   std::uint64_t max_bytes) {
  std::string absolute = src.starts_with('/') ? std::string(src) : "/" + std::string(src);
  KILN_ASSIGN_OR_RETURN(std::string container, with_context(path::normalize_absolute(absolute),
                                                            fmt::format("--output source {:?}", src)));
  KILN_ASSIGN_OR_RETURN(std::string host,
                        with_context(path::resolve_beneath(rootfs, container.substr(1),
                                                           path::AbsoluteSymlinks::kRelativeToRoot),
                                     fmt::format("--output source {}", container)));
  struct stat st {};
  if (::lstat(host.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("--output source {} does not exist in the result; check the path (it is "
                                    "a path in the build's filesystem, e.g. /app/bin)",
                                    container));
    return errno_error("cannot stat " + host);
  }
  ResultTar out;
  std::optional<Error> over_cap;
  TarStream tar([&](std::string_view chunk) -> Status {
    if (out.bytes + chunk.size() > max_bytes) {
      over_cap = Error(ErrorKind::kFailedPrecondition,
                       fmt::format("--output {}: the files are over {} ({} bytes), the most an output may "
                                   "hold (kiln-scheduler --max-output-bytes); send a smaller part of the result",
                                   container, human_bytes(max_bytes), max_bytes));
      return std::unexpected(*over_cap);
    }
    out.bytes += chunk.size();
    return sink(chunk);
  });
  TreeWriter writer(tar, out, container);
  std::string base_name = container == "/" ? "" : container.substr(container.rfind('/') + 1);
  if (S_ISDIR(st.st_mode)) {
    KILN_RETURN_IF_ERROR(writer.write(host, ""));
  } else {
    // A file SRC is one entry named after it; its container path is SRC itself.
    TreeWriter single(tar, out, container.substr(0, container.rfind('/')));
    KILN_RETURN_IF_ERROR(single.write(host, base_name));
  }
  KILN_RETURN_IF_ERROR(tar.finish());
  return out;
}

}  // namespace kiln::context
