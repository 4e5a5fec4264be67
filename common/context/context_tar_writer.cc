#include "common/context/context_tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "common/sha256.h"
#include "common/unique_fd.h"

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

// The tar's bytes: buffered, written to the file and hashed on the way.
class Sink {
 public:
  explicit Sink(int fd) : fd_(fd) { buffer_.reserve(kBufferBytes); }

  Status append(std::string_view data) {
    hash_.update(data);
    size_ += data.size();
    while (!data.empty()) {
      std::size_t take = std::min(data.size(), kBufferBytes - buffer_.size());
      buffer_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (buffer_.size() == kBufferBytes) KILN_RETURN_IF_ERROR(flush());
    }
    return {};
  }
  Status zeros(std::size_t n) {
    static constexpr char kZeros[kBlock] = {};
    while (n > 0) {
      std::size_t take = std::min(n, kBlock);
      KILN_RETURN_IF_ERROR(append(std::string_view(kZeros, take)));
      n -= take;
    }
    return {};
  }
  Status flush() {
    std::string_view left = buffer_;
    while (!left.empty()) {
      ssize_t n = ::write(fd_, left.data(), left.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("cannot write the context tar");
      }
      left.remove_prefix(static_cast<std::size_t>(n));
    }
    buffer_.clear();
    return {};
  }
  std::uint64_t size() const { return size_; }
  std::string digest() { return "sha256:" + hash_.hex_digest(); }

  static constexpr std::size_t kBlock = 512;

 private:
  static constexpr std::size_t kBufferBytes = 1 << 20;
  int fd_;
  std::string buffer_;
  Sha256 hash_;
  std::uint64_t size_ = 0;
};

// POSIX ustar headers (IEEE 1003.1-2001, "pax interchange format"), with a
// pax extended header before an entry whose name or link target does not fit
// a ustar header or is not ASCII, or whose size needs more than 11 octal
// digits. What readers (libarchive, GNU tar) take as the same entries as
// before this writer replaced libarchive's pax_restricted writer.
namespace ustar {

constexpr char kRegular = '0';
constexpr char kSymlink = '2';
constexpr char kDirectory = '5';
constexpr char kPaxHeader = 'x';
constexpr std::uint64_t kMaxOctalSize = 077777777777ULL;  // 11 octal digits

bool ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Splits `path` into ustar's prefix (<= 155 bytes) and name (<= 100) at a
// slash, or returns false.
bool split_name(std::string_view path, std::string_view* prefix, std::string_view* name) {
  if (path.size() <= 100) {
    *prefix = {};
    *name = path;
    return true;
  }
  // The name part must be the last <= 100 bytes after a slash.
  for (std::size_t slash = path.find('/'); slash != std::string_view::npos; slash = path.find('/', slash + 1)) {
    if (slash > 155) break;
    if (path.size() - slash - 1 <= 100 && slash > 0 && slash + 1 < path.size()) {
      *prefix = path.substr(0, slash);
      *name = path.substr(slash + 1);
      return true;
    }
  }
  return false;
}

void put(char* field, std::size_t width, std::string_view text) {
  // An empty view's data() may be null, and memcpy from null is undefined
  // even for 0 bytes (UBSan, in context_tar_fuzz's seed mode).
  if (!text.empty()) std::memcpy(field, text.data(), std::min(width, text.size()));
}

// A number in `width - 1` octal digits and a NUL.
void put_octal(char* field, std::size_t width, std::uint64_t value) {
  std::string digits = fmt::format("{:0{}o}", value, width - 1);
  std::memcpy(field, digits.data(), width - 1);
  field[width - 1] = '\0';
}

struct Header {
  std::string_view path;  // as stored when it fits; else truncated, with the real one in pax
  char type = kRegular;
  unsigned mode = 0;
  std::uint64_t size = 0;
  std::string_view link;
};

std::array<char, Sink::kBlock> block_of(const Header& h) {
  std::array<char, Sink::kBlock> b{};
  std::string_view prefix, name;
  if (!split_name(h.path, &prefix, &name)) {
    prefix = {};
    name = h.path.substr(0, 100);
  }
  put(&b[0], 100, name);
  put_octal(&b[100], 8, h.mode);
  put_octal(&b[108], 8, 0);  // uid
  put_octal(&b[116], 8, 0);  // gid
  put_octal(&b[124], 12, std::min(h.size, kMaxOctalSize));
  put_octal(&b[136], 12, 0);  // mtime
  b[156] = h.type;
  put(&b[157], 100, h.link.substr(0, 100));
  put(&b[257], 6, std::string_view("ustar\0", 6));
  put(&b[263], 2, "00");
  put_octal(&b[329], 8, 0);  // devmajor
  put_octal(&b[337], 8, 0);  // devminor
  put(&b[345], 155, prefix);
  // The checksum: the sum of the header's bytes with its own field as spaces.
  std::memset(&b[148], ' ', 8);
  unsigned sum = 0;
  for (char c : b) sum += static_cast<unsigned char>(c);
  std::string digits = fmt::format("{:06o}", sum);
  std::memcpy(&b[148], digits.data(), 6);
  b[154] = '\0';
  b[155] = ' ';
  return b;
}

// One pax record: "LENGTH KEY=VALUE\n", LENGTH counting itself.
std::string pax_record(std::string_view key, std::string_view value) {
  const std::size_t rest = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  std::size_t length = rest + 1;
  while (std::to_string(length).size() + rest != length) length = std::to_string(length).size() + rest;
  return fmt::format("{} {}={}\n", length, key, value);
}

Status write_entry(Sink& sink, const Header& h) {
  std::string pax;
  std::string_view prefix, name;
  if (!ascii(h.path) || !split_name(h.path, &prefix, &name)) pax += pax_record("path", h.path);
  if (!ascii(h.link) || h.link.size() > 100) pax += pax_record("linkpath", h.link);
  if (h.size > kMaxOctalSize) pax += pax_record("size", std::to_string(h.size));
  if (!pax.empty()) {
    // The extended header's own name is informative only.
    std::string_view trimmed = h.path.ends_with('/') ? h.path.substr(0, h.path.size() - 1) : h.path;
    std::string base = fs::path(std::string(trimmed)).filename().string().substr(0, 80);
    std::string pax_name = "PaxHeader/" + (ascii(base) ? base : std::string("entry"));
    auto header = block_of({.path = pax_name, .type = kPaxHeader, .mode = 0644, .size = pax.size()});
    KILN_RETURN_IF_ERROR(sink.append(std::string_view(header.data(), header.size())));
    KILN_RETURN_IF_ERROR(sink.append(pax));
    KILN_RETURN_IF_ERROR(sink.zeros((Sink::kBlock - pax.size() % Sink::kBlock) % Sink::kBlock));
  }
  auto header = block_of(h);
  return sink.append(std::string_view(header.data(), header.size()));
}

}  // namespace ustar

Status write_file_data(Sink& sink, const std::string& host_path, std::uint64_t expected_size) {
  UniqueFd fd(::open(host_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno_error("cannot read " + host_path + " from the build context");
  std::string buffer(1 << 20, '\0');
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read " + host_path + " from the build context");
    }
    if (n == 0) break;
    total += static_cast<std::uint64_t>(n);
    if (total > expected_size) break;
    KILN_RETURN_IF_ERROR(sink.append(std::string_view(buffer.data(), static_cast<std::size_t>(n))));
  }
  if (total != expected_size)
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("{} changed size while it was packed into the context tar; submit again when "
                    "nothing writes to the build context",
                    host_path));
  return sink.zeros((Sink::kBlock - expected_size % Sink::kBlock) % Sink::kBlock);
}

Status write_entries(Sink& sink, const std::string& root, const std::vector<std::string>& paths,
                     ContextTar& result) {
  for (const std::string& rel : paths) {
    std::string host_path = root + "/" + rel;
    struct stat st {};
    if (::lstat(host_path.c_str(), &st) != 0)
      return errno_error("cannot stat " + host_path + " in the build context");
    ustar::Header header{.path = rel, .mode = static_cast<unsigned>(st.st_mode & 07777)};
    std::string dir_path, target;
    if (S_ISDIR(st.st_mode)) {
      dir_path = rel + "/";
      header.path = dir_path;
      header.type = ustar::kDirectory;
    } else if (S_ISREG(st.st_mode)) {
      header.size = static_cast<std::uint64_t>(st.st_size);
    } else if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      target = fs::read_symlink(host_path, ec).string();
      if (ec) return errno_error("cannot read symlink " + host_path + " in the build context", ec.value());
      header.type = ustar::kSymlink;
      header.mode = 0777;
      header.link = target;
    } else {
      result.skipped.push_back(rel);
      continue;
    }
    KILN_RETURN_IF_ERROR_CONTEXT(ustar::write_entry(sink, header), "adding " + rel + " to the context tar");
    if (header.size > 0) KILN_RETURN_IF_ERROR(write_file_data(sink, host_path, header.size));
    ++result.entries;
  }
  return {};
}

Result<ContextTar> write_tar(const std::string& root, int fd) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> paths, list_tree(root));
  // Byte order of whole paths puts every directory before what it holds.
  std::sort(paths.begin(), paths.end());

  ContextTar result;
  Sink sink(fd);
  KILN_RETURN_IF_ERROR(write_entries(sink, root, paths, result));
  // The end: two zero records, no padding to a 10 KiB record.
  KILN_RETURN_IF_ERROR(sink.zeros(2 * Sink::kBlock));
  KILN_RETURN_IF_ERROR(sink.flush());
  result.size = sink.size();
  result.digest = sink.digest();
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
