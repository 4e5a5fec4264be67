#include "common/context/tar_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace kiln::context {

TarStream::TarStream(Sink sink) : sink_(std::move(sink)) {
  archive_ = archive_write_new();
  archive_write_set_format_pax_restricted(archive_);
  archive_write_add_filter_none(archive_);
  archive_write_set_bytes_in_last_block(archive_, 1);
  archive_write_open2(archive_, this, nullptr, &TarStream::on_write, nullptr, nullptr);
}

TarStream::~TarStream() {
  if (archive_ != nullptr) archive_write_free(archive_);
}

long TarStream::on_write(struct archive*, void* self, const void* data, std::size_t size) {
  auto* t = static_cast<TarStream*>(self);
  if (t->sink_error_) return -1;
  if (auto s = t->sink_(std::string_view(static_cast<const char*>(data), size)); !s) {
    t->sink_error_ = std::move(s).error();
    return -1;
  }
  t->bytes_ += size;
  return static_cast<long>(size);
}

Status TarStream::check(int code, const std::string& what) {
  if (sink_error_) return std::unexpected(*sink_error_);
  if (code >= ARCHIVE_WARN) return {};
  return make_error(
      ErrorKind::kIo,
      fmt::format("writing a tar: {}: {}", what,
                  archive_error_string(archive_) ? archive_error_string(archive_) : "unknown error"));
}

Status TarStream::add(const std::string& name, const std::string& host_path, const struct stat& st) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(), archive_entry_free);
  archive_entry_copy_stat(entry.get(), &st);
  archive_entry_set_nlink(entry.get(), 1);  // hard links are written as separate files
  archive_entry_set_pathname_utf8(entry.get(), name.c_str());
  UniqueFd fd;
  if (S_ISLNK(st.st_mode)) {
    std::vector<char> target(static_cast<std::size_t>(st.st_size) + 1);
    ssize_t n = ::readlink(host_path.c_str(), target.data(), target.size());
    if (n < 0) return errno_error("cannot read the symlink " + host_path);
    archive_entry_set_symlink_utf8(entry.get(),
                                   std::string(target.data(), static_cast<std::size_t>(n)).c_str());
    archive_entry_set_size(entry.get(), 0);
  } else if (S_ISDIR(st.st_mode)) {
    archive_entry_set_size(entry.get(), 0);
  } else if (S_ISREG(st.st_mode)) {
    fd = UniqueFd(::open(host_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return errno_error("cannot open " + host_path);
  } else {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{}: not a file, directory or symlink; it cannot go into the tar", host_path));
  }
  KILN_RETURN_IF_ERROR(check(archive_write_header(archive_, entry.get()), name));
  if (!fd) return {};
  std::vector<char> buffer(1 << 16);
  std::uint64_t left = static_cast<std::uint64_t>(st.st_size);
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buffer.data(), std::min<std::uint64_t>(buffer.size(), left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read " + host_path);
    if (n == 0)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("{} shrank while it was written into the tar", host_path));
    la_ssize_t written = archive_write_data(archive_, buffer.data(), static_cast<std::size_t>(n));
    if (written < 0) {
      KILN_RETURN_IF_ERROR(check(ARCHIVE_FATAL, name));
    }
    left -= static_cast<std::uint64_t>(n);
  }
  return {};
}

Status TarStream::add_empty_file(const std::string& name, mode_t mode) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname_utf8(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), mode);
  archive_entry_set_size(entry.get(), 0);
  archive_entry_set_mtime(entry.get(), 0, 0);
  return check(archive_write_header(archive_, entry.get()), name);
}

Status TarStream::finish() {
  if (finished_) return {};
  finished_ = true;
  return check(archive_write_close(archive_), "closing it");
}

}  // namespace kiln::context
