#include "worker/docker/container_files.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/fs.h"
#include "common/subprocess.h"

namespace kiln::docker {

Result<std::optional<std::string>> read_container_file(DockerClient& client, const std::string& container,
                                                       const std::string& path, std::size_t max_bytes) {
  std::string tar;
  Status got = client.get_archive(
      container, path,
      [&](std::string_view bytes) -> Status {
        // The tar adds headers and padding to the file itself.
        if (tar.size() + bytes.size() > max_bytes + 64 * 1024)
          return make_error(ErrorKind::kFailedPrecondition,
                            fmt::format("{} in {} is larger than {} bytes", path, container, max_bytes));
        tar.append(bytes);
        return {};
      },
      nullptr);
  if (!got && got.error().kind() == ErrorKind::kNotFound) return std::optional<std::string>();
  KILN_RETURN_IF_ERROR(got);
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  std::optional<std::string> out;
  Status status;
  if (archive_read_open_memory(a, tar.data(), tar.size()) != ARCHIVE_OK) {
    status = make_error(ErrorKind::kIo,
                        fmt::format("reading {} of {}: {}", path, container, archive_error_string(a)));
  } else {
    archive_entry* e = nullptr;
    if (archive_read_next_header(a, &e) == ARCHIVE_OK) {
      if (archive_entry_filetype(e) != AE_IFREG) {
        status = make_error(ErrorKind::kFailedPrecondition,
                            fmt::format("{} in {} is not a regular file", path, container));
      } else {
        std::string content(static_cast<std::size_t>(archive_entry_size(e)), '\0');
        if (content.size() > max_bytes) {
          status = make_error(ErrorKind::kFailedPrecondition,
                              fmt::format("{} in {} is larger than {} bytes", path, container, max_bytes));
        } else if (!content.empty() && archive_read_data(a, content.data(), content.size()) !=
                                           static_cast<la_ssize_t>(content.size())) {
          status = make_error(ErrorKind::kIo,
                              fmt::format("reading {} of {}: {}", path, container, archive_error_string(a)));
        } else {
          out = std::move(content);
        }
      }
    }
  }
  archive_read_free(a);
  KILN_RETURN_IF_ERROR(status);
  return out;
}

namespace {

// Packs `entries` of `dir` (GNU tar: numeric owners, xattrs) into a file
// beside `dir` and hands `send` a reader of it; the file goes afterwards.
Status send_tar(const std::string& dir, const std::vector<std::string>& entries, const std::string& what,
                const std::function<Status(const BodyReader&)>& send) {
  std::string tar_path = dir + ".tar";
  std::vector<std::string> argv = {"tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir,
                                   "-cf", tar_path,          "--"};
  argv.insert(argv.end(), entries.begin(), entries.end());
  KILN_ASSIGN_OR_RETURN(CommandOutput out, run_command(argv));
  struct RemoveTar {
    std::string path;
    ~RemoveTar() { ::unlink(path.c_str()); }
  } remove_tar{tar_path};
  if (!out.ok())
    return make_error(ErrorKind::kIo,
                      fmt::format("packing {} for dockerd: tar failed: {}", what, out.output));
  int fd = ::open(tar_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("cannot open " + tar_path);
  BodyReader reader = [fd, &tar_path](char* buffer, std::size_t size) -> Result<std::size_t> {
    ssize_t n = ::read(fd, buffer, size);
    if (n < 0) return errno_error("reading " + tar_path);
    return static_cast<std::size_t>(n);
  };
  Status sent = send(reader);
  ::close(fd);
  return sent;
}

}  // namespace

Result<std::string> import_directory(DockerClient& client, const std::string& dir, const std::string& repo,
                                     const std::string& tag) {
  std::string id;
  Status sent = send_tar(dir, {"."}, dir, [&](const BodyReader& reader) -> Status {
    KILN_ASSIGN_OR_RETURN(id, client.import_image(repo, tag, reader));
    return {};
  });
  KILN_RETURN_IF_ERROR_CONTEXT(sent, fmt::format("importing {} into dockerd as {}:{}", dir, repo, tag));
  return id;
}

Status put_staged_tree(DockerClient& client, const std::string& container, const std::string& staging,
                       const std::string& dst) {
  // The deepest directory on the way to dst that the container already has.
  std::string existing = "/";
  std::size_t pos = 1;
  while (pos < dst.size()) {
    std::size_t end = dst.find('/', pos);
    if (end == std::string::npos) end = dst.size();
    std::string candidate = dst.substr(0, end);
    pos = end + 1;
    if (candidate.size() <= existing.size()) continue;
    auto stat = client.stat_path(container, candidate);
    if (!stat && stat.error().kind() == ErrorKind::kNotFound) break;
    KILN_RETURN_IF_ERROR_CONTEXT(stat, "looking up the copy's destination " + dst);
    if (stat->is_symlink())
      return make_error(ErrorKind::kUnsupported,
                        fmt::format("copying to {}: {} is a symlink in the image (to {:?}); the docker store "
                                    "cannot copy through a symlink yet: name the destination without it",
                                    dst, candidate, stat->link_target));
    if (!stat->is_dir()) break;  // a file the copy replaces
    existing = candidate;
  }
  std::string host_dir = existing == "/" ? staging : staging + existing;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> entries, list_dir(host_dir));
  if (entries.empty()) return {};
  return with_context(
      send_tar(host_dir, entries, host_dir,
               [&](const BodyReader& reader) { return client.put_archive(container, existing, reader); }),
      fmt::format("putting the copy to {} into container {}", dst, container));
}

}  // namespace kiln::docker
