#include "worker/docker/container_files.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include <fmt/format.h>

#include "common/fs.h"
#include "common/path.h"
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
  // Walks dst's components in the image to the deepest directory that
  // exists: `image_dir` is that directory as the image has it (symlinks on
  // the way resolved, as the other stores resolve them: inside the image,
  // `..` stopping at its root), `staged_dir` the same place in the staging
  // tree, which is laid out along dst as written. A symlink's own components
  // are walked before the rest of dst and advance only `image_dir`.
  struct Part {
    std::string name;
    bool from_dst;  // a component of dst itself (else: of a symlink's target)
  };
  std::deque<Part> todo;
  for (auto part : path::components(dst)) todo.push_back({std::string(part), true});
  std::string image_dir = "/";
  std::string staged_dir;
  int links = 0;
  auto join = [](const std::string& dir, const std::string& name) {
    return dir == "/" ? "/" + name : dir + "/" + name;
  };
  while (!todo.empty()) {
    Part part = std::move(todo.front());
    todo.pop_front();
    if (part.name == "..") {
      // Only a symlink's target has these (dst is normalised).
      if (image_dir != "/") image_dir = image_dir.substr(0, std::max<std::size_t>(1, image_dir.rfind('/')));
      continue;
    }
    std::string candidate = join(image_dir, part.name);
    auto stat = client.stat_path(container, candidate);
    if (!stat && stat.error().kind() == ErrorKind::kNotFound) {
      if (!part.from_dst)
        return make_error(ErrorKind::kFailedPrecondition,
                          fmt::format("copying to {}: {} does not exist in the image (a symlink on the way "
                                      "points to it)",
                                      dst, candidate));
      todo.push_front(std::move(part));
      break;
    }
    KILN_RETURN_IF_ERROR_CONTEXT(stat, "looking up the copy's destination " + dst);
    if (stat->is_symlink()) {
      if (++links > 40)
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("copying to {}: too many levels of symlinks at {}", dst, candidate));
      if (stat->link_target.starts_with("/")) image_dir = "/";
      std::vector<Part> target;
      for (auto t : path::components(stat->link_target)) target.push_back({std::string(t), false});
      todo.insert(todo.begin(), target.begin(), target.end());
      if (part.from_dst) staged_dir += "/" + part.name;
      continue;
    }
    if (!stat->is_dir()) {
      if (!part.from_dst)
        return make_error(ErrorKind::kFailedPrecondition,
                          fmt::format("copying to {}: {} is not a directory in the image", dst, candidate));
      todo.push_front(std::move(part));  // a file the copy replaces
      break;
    }
    image_dir = std::move(candidate);
    if (part.from_dst) staged_dir += "/" + part.name;
  }
  // What is left of the walk is all dst's own (a symlink's parts are walked
  // before dst's next one): the staging tree has those directories.
  std::string host_dir = staging + staged_dir;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> entries, list_dir(host_dir));
  if (entries.empty()) return {};
  return with_context(
      send_tar(host_dir, entries, host_dir,
               [&](const BodyReader& reader) { return client.put_archive(container, image_dir, reader); }),
      fmt::format("putting the copy to {} into container {}", dst, container));
}

}  // namespace kiln::docker
