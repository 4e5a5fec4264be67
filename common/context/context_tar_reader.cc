#include "common/context/context_tar_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <deque>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/context/internal/utf8_locale.h"
#include "common/path.h"

namespace kiln::context {
namespace {

// Links followed while resolving one symlink before giving up (the kernel's
// limit, and path::resolve_beneath's).
constexpr int kMaxSymlinkHops = 40;

std::string archive_error(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown error";
}

std::string_view special_type_name(mode_t type) {
  switch (type) {
    case AE_IFCHR: return "is a character device";
    case AE_IFBLK: return "is a block device";
    case AE_IFIFO: return "is a fifo";
    case AE_IFSOCK: return "is a socket";
    default: return "is of an unknown file type";
  }
}

// What the tar has put at a path so far.
struct Known {
  enum class Type { kImpliedDirectory, kDirectory, kFile, kSymlink };
  Type type = Type::kImpliedDirectory;
  mode_t permissions = 0755;
  std::string target;  // kSymlink

  bool is_directory() const { return type == Type::kImpliedDirectory || type == Type::kDirectory; }
};

}  // namespace

std::unexpected<Error> refused_entry(std::string_view name, std::string_view why) {
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("the build context holds {:?}, which {}; kiln refuses to unpack it "
                                "(fix the context and resubmit)",
                                name, why));
}

struct ContextTarReader::State {
  std::string tar_path;
  std::unique_ptr<archive, decltype(&archive_read_free)> in{archive_read_new(), archive_read_free};
  internal::Utf8Locale utf8;
  std::unordered_map<std::string, Known> known;  // by normalised path; the root is not in it
  std::vector<std::string> symlinks;             // their paths, in tar order
  std::string current_name;                      // of the kFile entry whose content may be read
  bool failed = false;

  Result<std::optional<TarEntry>> next();
  Result<std::optional<TarEntry>> check(archive_entry* e);
  Status place(const TarEntry& entry);
  bool stays_inside(const std::string& link) const;
  Status check_symlinks() const;
  Status read_content(const std::function<Status(std::string_view)>& sink);
};

ContextTarReader::ContextTarReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
ContextTarReader::~ContextTarReader() = default;
ContextTarReader::ContextTarReader(ContextTarReader&&) noexcept = default;
ContextTarReader& ContextTarReader::operator=(ContextTarReader&&) noexcept = default;

Result<ContextTarReader> ContextTarReader::open(const std::string& tar_path) {
  auto state = std::make_unique<State>();
  state->tar_path = tar_path;
  archive* in = state->in.get();
  if (in == nullptr) return make_error(ErrorKind::kInternal, "archive_read_new failed");
  // Uncompressed tar only: the format `kiln submit` writes and the protocol
  // documents; no decompressor runs on a client's bytes.
  archive_read_support_format_tar(in);
  archive_read_support_filter_none(in);
  auto in_utf8 = state->utf8.use();
  if (archive_read_open_filename(in, tar_path.c_str(), 1 << 20) != ARCHIVE_OK)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("context {} is not a readable tar: {}", tar_path, archive_error(in)));
  return ContextTarReader(std::move(state));
}

Result<std::optional<TarEntry>> ContextTarReader::next() {
  if (state_->failed) return make_error(ErrorKind::kInternal, "ContextTarReader::next after an error");
  auto in_utf8 = state_->utf8.use();
  auto entry = state_->next();
  if (!entry) state_->failed = true;
  return entry;
}

Status ContextTarReader::read_content(const std::function<Status(std::string_view)>& sink) {
  if (state_->failed)
    return make_error(ErrorKind::kInternal, "ContextTarReader::read_content after an error");
  auto in_utf8 = state_->utf8.use();
  Status read = state_->read_content(sink);
  if (!read) state_->failed = true;
  return read;
}

Result<std::optional<TarEntry>> ContextTarReader::State::next() {
  current_name.clear();
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) {
      // Where a link leads depends on the links listed after it too.
      KILN_RETURN_IF_ERROR(check_symlinks());
      return std::nullopt;
    }
    if (r < ARCHIVE_WARN)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("the context tar {} is damaged: {}", tar_path, archive_error(in.get())));
    KILN_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, check(e));
    if (!entry) continue;  // the root
    if (entry->kind == TarEntry::Kind::kFile) current_name = entry->name;
    return entry;
  }
}

Result<std::optional<TarEntry>> ContextTarReader::State::check(archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  std::string name = raw != nullptr ? raw : "";
  if (!name.empty() && name.front() == '/') return refused_entry(name, "is an absolute path");
  auto rel = path::normalize_relative(name);
  if (!rel) return refused_entry(name, "contains \"..\" or a NUL byte");
  TarEntry entry{.name = name, .path = *rel, .permissions = archive_entry_perm(e) & 0777};

  if (const char* link = archive_entry_hardlink(e)) {
    auto target = path::normalize_relative(link);
    if (!target || target->empty() || link[0] == '/')
      return refused_entry(name, fmt::format("is a hard link to {:?}, outside the context", link));
    if (rel->empty()) return refused_entry(name, "is a hard link in place of the context's root");
    auto it = known.find(*target);
    if (it == known.end() || it->second.type != Known::Type::kFile)
      return refused_entry(
          name, fmt::format("is a hard link to {:?}, which is not a file unpacked before it", link));
    entry.kind = TarEntry::Kind::kHardLink;
    entry.target = *target;
    entry.permissions = it->second.permissions;  // one inode: its target's mode
  } else {
    const mode_t type = archive_entry_filetype(e);
    if (rel->empty()) {
      if (type == AE_IFDIR) return std::nullopt;  // "./": the context's root itself
      return refused_entry(name, "replaces the context's root");
    }
    switch (type) {
      case AE_IFDIR: entry.kind = TarEntry::Kind::kDirectory; break;
      case AE_IFREG:
        // A sparse entry's holes would make the content a reader sees
        // depend on how it fills them; `kiln submit` never writes one.
        if (archive_entry_sparse_count(e) > 0) return refused_entry(name, "is a sparse file");
        entry.kind = TarEntry::Kind::kFile;
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        entry.kind = TarEntry::Kind::kSymlink;
        entry.target = target != nullptr ? target : "";
        if (entry.target.empty()) return refused_entry(name, "is a symlink with no target");
        if (entry.target.front() == '/')
          return refused_entry(name, fmt::format("is a symlink to the absolute path {:?}", entry.target));
        break;
      }
      default: return refused_entry(name, special_type_name(type));
    }
  }
  KILN_RETURN_IF_ERROR(place(entry));
  return entry;
}

// Records `entry` at its path: its parents must be directories (listed or
// implied), and the path must be new (or a directory so far only implied).
Status ContextTarReader::State::place(const TarEntry& entry) {
  std::vector<std::string_view> parts = path::components(entry.path);
  std::string parent;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!parent.empty()) parent += '/';
    parent += parts[i];
    auto [it, implied] = known.try_emplace(parent);
    if (!implied && !it->second.is_directory())
      return refused_entry(entry.name, fmt::format("goes through {:?}, a symlink or a file", parts[i]));
  }
  Known here{.permissions = entry.permissions, .target = entry.target};
  switch (entry.kind) {
    case TarEntry::Kind::kDirectory: here.type = Known::Type::kDirectory; break;
    case TarEntry::Kind::kFile:
    case TarEntry::Kind::kHardLink: here.type = Known::Type::kFile; break;
    case TarEntry::Kind::kSymlink: here.type = Known::Type::kSymlink; break;
  }
  auto [it, inserted] = known.try_emplace(entry.path, here);
  if (!inserted) {
    if (it->second.type != Known::Type::kImpliedDirectory)
      return refused_entry(entry.name, "is listed twice");
    if (entry.kind != TarEntry::Kind::kDirectory)
      return refused_entry(entry.name, "replaces a directory that entries listed earlier are in");
    it->second = here;
  }
  if (entry.kind == TarEntry::Kind::kSymlink) symlinks.push_back(entry.path);
  return {};
}

// Follows `link` component by component through the entries, exactly as
// path::resolve_beneath(root, link, kReject) follows it on the unpacked tree:
// false when a ".." climbs above the root, a link is absolute, a file is
// used as a directory, or more than kMaxSymlinkHops links are followed.
bool ContextTarReader::State::stays_inside(const std::string& link) const {
  std::deque<std::string> pending;
  for (std::string_view part : path::components(link)) pending.emplace_back(part);
  std::string at;  // where the walk is: real directories below the root (or, last, a file)
  int hops = 0;
  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == "..") {
      if (at.empty()) return false;
      std::size_t slash = at.rfind('/');
      at.resize(slash == std::string::npos ? 0 : slash);
      continue;
    }
    if (!at.empty() && !known.at(at).is_directory()) return false;  // lstat: ENOTDIR
    std::string here = at.empty() ? part : at + "/" + part;
    auto it = known.find(here);
    if (it == known.end()) {
      // Missing: the rest is taken lexically, still refusing "..".
      for (const std::string& p : pending)
        if (p == "..") return false;
      return true;
    }
    if (it->second.type != Known::Type::kSymlink) {
      at = std::move(here);
      continue;
    }
    if (++hops > kMaxSymlinkHops || it->second.target.front() == '/') return false;
    std::vector<std::string_view> target = path::components(it->second.target);
    for (auto t = target.rbegin(); t != target.rend(); ++t) pending.emplace_front(*t);
  }
  return true;
}

Status ContextTarReader::State::check_symlinks() const {
  for (const std::string& link : symlinks) {
    if (!stays_inside(link))
      return refused_entry(
          link, fmt::format("is a symlink to {:?}, which leads outside the context", known.at(link).target));
  }
  return {};
}

Status ContextTarReader::State::read_content(const std::function<Status(std::string_view)>& sink) {
  if (current_name.empty())
    return make_error(ErrorKind::kInternal, "ContextTarReader::read_content without a file entry");
  const std::string name = std::exchange(current_name, "");
  la_int64_t expected = 0;
  for (;;) {
    const void* block = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(in.get(), &block, &size, &offset);
    if (r == ARCHIVE_EOF) return {};
    if (r < ARCHIVE_WARN)
      return make_error(ErrorKind::kInvalidArgument, fmt::format("cannot read {:?} from the context tar: {}",
                                                                 name, archive_error(in.get())));
    if (offset != expected)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("cannot read {:?} from the context tar: its content has a hole", name));
    expected += static_cast<la_int64_t>(size);
    KILN_RETURN_IF_ERROR(sink(std::string_view(static_cast<const char*>(block), size)));
  }
}

}  // namespace kiln::context
