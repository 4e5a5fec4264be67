#include "common/context/context_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "common/context/internal/utf8_locale.h"
#include "common/sha256.h"

namespace kiln::context {
namespace {

namespace fs = std::filesystem;

bool excluded_name(std::string_view name) {
  return name == ".git" || name == ".kiln";
}

// Every path below `root` that goes into the tar, relative, unsorted.
Result<std::vector<std::string>> list_tree(const std::string& root) {
  std::vector<std::string> paths;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return errno_error("cannot list build context " + root, ec.value());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return errno_error("cannot list build context " + root, ec.value());
    if (excluded_name(it->path().filename().string())) {
      it.disable_recursion_pending();
      continue;
    }
    paths.push_back(it->path().lexically_relative(root).string());
  }
  if (ec) return errno_error("cannot list build context " + root, ec.value());
  return paths;
}

// Output of libarchive: written to a file and hashed on the way.
struct Sink {
  int fd = -1;
  Sha256 hash;
  std::uint64_t size = 0;
  int write_errno = 0;
};

la_ssize_t sink_write(archive*, void* client_data, const void* buffer, size_t length) {
  auto* sink = static_cast<Sink*>(client_data);
  const char* p = static_cast<const char*>(buffer);
  std::size_t left = length;
  while (left > 0) {
    ssize_t n = ::write(sink->fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      sink->write_errno = errno;
      return -1;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  sink->hash.update(std::string_view(static_cast<const char*>(buffer), length));
  sink->size += length;
  return static_cast<la_ssize_t>(length);
}

// Owns the libarchive writer and the entry; names are written in UTF-8.
class TarWriter {
 public:
  TarWriter() : archive_(archive_write_new()), entry_(archive_entry_new()) {}
  ~TarWriter() {
    archive_entry_free(entry_);
    archive_write_free(archive_);
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  archive* get() { return archive_; }
  archive_entry* fresh_entry() { return archive_entry_clear(entry_); }
  std::string error() { return archive_error_string(archive_) ? archive_error_string(archive_) : "unknown"; }

 private:
  internal::Utf8Locale utf8_;
  internal::Utf8Locale::Scope in_utf8_ = utf8_.use();
  archive* archive_;
  archive_entry* entry_;
};

Status write_file_data(TarWriter& tar, const std::string& host_path, std::uint64_t expected_size,
                       const std::string& rel) {
  int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno_error("cannot read " + host_path + " from the build context");
  std::string buffer(1 << 20, '\0');
  std::uint64_t total = 0;
  Status status;
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = errno_error("cannot read " + host_path + " from the build context");
      break;
    }
    if (n == 0) break;
    total += static_cast<std::uint64_t>(n);
    if (total > expected_size) break;
    if (archive_write_data(tar.get(), buffer.data(), static_cast<size_t>(n)) != n) {
      status =
          make_error(ErrorKind::kIo, fmt::format("cannot write {} to the context tar: {}", rel, tar.error()));
      break;
    }
  }
  ::close(fd);
  if (status && total != expected_size)
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("{} changed size while it was packed into the context tar; submit again when "
                    "nothing writes to the build context",
                    host_path));
  return status;
}

Status write_entries(TarWriter& tar, const std::string& root, const std::vector<std::string>& paths,
                     ContextTar& result) {
  for (const std::string& rel : paths) {
    std::string host_path = root + "/" + rel;
    struct stat st {};
    if (::lstat(host_path.c_str(), &st) != 0)
      return errno_error("cannot stat " + host_path + " in the build context");
    archive_entry* entry = tar.fresh_entry();
    archive_entry_set_pathname(entry, rel.c_str());
    archive_entry_set_uid(entry, 0);
    archive_entry_set_gid(entry, 0);
    archive_entry_set_mtime(entry, 0, 0);
    archive_entry_set_perm(entry, st.st_mode & 07777);
    std::uint64_t size = 0;
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(entry, AE_IFDIR);
    } else if (S_ISREG(st.st_mode)) {
      archive_entry_set_filetype(entry, AE_IFREG);
      size = static_cast<std::uint64_t>(st.st_size);
      archive_entry_set_size(entry, static_cast<la_int64_t>(size));
    } else if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      fs::path target = fs::read_symlink(host_path, ec);
      if (ec) return errno_error("cannot read symlink " + host_path + " in the build context", ec.value());
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_perm(entry, 0777);
      archive_entry_set_symlink(entry, target.c_str());
    } else {
      result.skipped.push_back(rel);
      continue;
    }
    if (archive_write_header(tar.get(), entry) < ARCHIVE_WARN)
      return make_error(ErrorKind::kIo,
                        fmt::format("cannot add {} to the context tar: {}", rel, tar.error()));
    if (size > 0) KILN_RETURN_IF_ERROR(write_file_data(tar, host_path, size, rel));
    ++result.entries;
  }
  return {};
}

Result<ContextTar> write_tar(const std::string& root, int fd) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> paths, list_tree(root));
  // Byte order of whole paths puts every directory before what it holds.
  std::sort(paths.begin(), paths.end());

  ContextTar result;
  Sink sink{.fd = fd};
  TarWriter tar;
  archive_write_set_format_pax_restricted(tar.get());
  archive_write_add_filter_none(tar.get());
  // No padding of the last block: the tar ends with its two zero records.
  archive_write_set_bytes_in_last_block(tar.get(), 1);
  if (archive_write_open2(tar.get(), &sink, nullptr, sink_write, nullptr, nullptr) != ARCHIVE_OK)
    return make_error(ErrorKind::kIo, "cannot start the context tar: " + tar.error());
  Status written = write_entries(tar, root, paths, result);
  if (written && archive_write_close(tar.get()) != ARCHIVE_OK)
    written = make_error(ErrorKind::kIo, "cannot finish the context tar: " + tar.error());
  if (!written) {
    if (sink.write_errno != 0) return errno_error("cannot write the context tar", sink.write_errno);
    return std::unexpected(written.error());
  }
  result.size = sink.size;
  result.digest = "sha256:" + sink.hash.hex_digest();
  return result;
}

}  // namespace

Result<ContextTar> write_context_tar(const std::string& dir, const std::string& out_path) {
  std::error_code ec;
  auto status = fs::status(dir, ec);
  if (ec || !fs::exists(status))
    return make_error(ErrorKind::kNotFound,
                      fmt::format("build context {:?} does not exist; pass an existing directory", dir));
  if (!fs::is_directory(status))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("build context {:?} is not a directory; pass the directory the spec's "
                                  "copies read from",
                                  dir));
  int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("cannot create the context tar " + out_path);
  Result<ContextTar> result = write_tar(dir, fd);
  if (::close(fd) != 0 && result) result = errno_error("cannot write the context tar " + out_path);
  if (!result) ::unlink(out_path.c_str());
  return result;
}

}  // namespace kiln::context
