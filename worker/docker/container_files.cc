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

Result<std::string> import_directory(DockerClient& client, const std::string& dir, const std::string& repo,
                                     const std::string& tag) {
  std::string tar_path = dir + ".tar";
  KILN_ASSIGN_OR_RETURN(CommandOutput out,
                        run_command({"tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir,
                                     "-cf", tar_path, "."}));
  struct RemoveTar {
    std::string path;
    ~RemoveTar() { ::unlink(path.c_str()); }
  } remove_tar{tar_path};
  if (!out.ok())
    return make_error(ErrorKind::kIo, fmt::format("packing {} for dockerd: tar failed: {}", dir, out.output));
  int fd = ::open(tar_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("cannot open " + tar_path);
  BodyReader reader = [fd, &tar_path](char* buffer, std::size_t size) -> Result<std::size_t> {
    ssize_t n = ::read(fd, buffer, size);
    if (n < 0) return errno_error("reading " + tar_path);
    return static_cast<std::size_t>(n);
  };
  auto id = client.import_image(repo, tag, reader);
  ::close(fd);
  return with_context(std::move(id), fmt::format("importing {} into dockerd as {}:{}", dir, repo, tag));
}

}  // namespace kiln::docker
