#include "common/ids/manifest.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "common/path.h"

namespace kiln::ids {

namespace {

constexpr std::string_view kManifestTag = "kiln-manifest-v1";
constexpr std::string_view kContextTag = "kiln-context-v1";

// Below this many bytes of file content, starting threads costs more than
// hashing on the calling thread.
constexpr std::uint64_t kParallelHashThreshold = 1 << 20;

std::string quote(std::string_view s) {
  return fmt::format("{:?}", s);
}

std::string host_path(const std::string& root, std::string_view rel) {
  return rel.empty() ? root : path::join(root, rel);
}

bool is_excluded(std::string_view name, std::span<const std::string> exclude) {
  return std::ranges::find(exclude, name) != exclude.end();
}

std::unexpected<Error> unsupported_type_error(std::string_view source, std::string_view path) {
  return make_error(
      ErrorKind::kInvalidArgument,
      fmt::format("unsupported file type: {} (under source path {}) is a fifo, socket or device; "
                  "kiln copies only files, directories and symlinks: remove it or add its "
                  "name to (exclude ...)",
                  quote(path), quote(source)));
}

// What a source-path check needs to know about one path in a context.
struct Node {
  ManifestEntry::Type type;
  std::string target;  // symlinks
};
using Lookup = std::function<Result<std::optional<Node>>(const std::string& rel)>;

// Resolves a symlink's target lexically against the directory holding the
// link. Returns nullopt when it leaves the context (absolute, or ".." above
// the root): such a link names something on the host, not in the context.
std::optional<std::string> resolve_link_lexically(std::string_view link_path, std::string_view target) {
  if (!target.empty() && target.front() == '/') return std::nullopt;
  std::vector<std::string_view> parts = path::components(link_path);
  parts.pop_back();  // the link itself
  for (std::string_view part : path::components(target)) {
    if (part != "..") {
      parts.push_back(part);
    } else if (parts.empty()) {
      return std::nullopt;
    } else {
      parts.pop_back();
    }
  }
  std::string out;
  for (std::string_view part : parts) out = out.empty() ? std::string(part) : path::join(out, part);
  return out;
}

// Checks every component of the normalised `source` the way OBuilder does:
// each intermediate one must be a real directory (never a symlink, never a
// file). Returns what the final component is. Both context sources share
// this, so that they fail alike.
Result<Node> resolve_source(std::string_view written, const std::string& source, const Lookup& lookup) {
  if (source.empty()) return Node{ManifestEntry::Type::kDirectory, {}};
  std::vector<std::string_view> parts = path::components(source);
  std::string prefix;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    prefix = prefix.empty() ? std::string(parts[i]) : path::join(prefix, parts[i]);
    KILN_ASSIGN_OR_RETURN(std::optional<Node> node, lookup(prefix));
    if (!node)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("source path {} not found in the context; check its "
                                    "spelling and that the context directory is the one you meant",
                                    quote(written)));
    bool last = i + 1 == parts.size();
    if (last) return *node;
    switch (node->type) {
      case ManifestEntry::Type::kDirectory: continue;
      case ManifestEntry::Type::kSymlink: {
        std::string rest;
        for (std::size_t j = i + 1; j < parts.size(); ++j)
          rest = rest.empty() ? std::string(parts[j]) : path::join(rest, parts[j]);
        std::optional<std::string> inside = resolve_link_lexically(prefix, node->target);
        if (!inside)
          return make_error(ErrorKind::kInvalidArgument,
                            fmt::format("source path {} goes through the symlink {} -> {}, which leaves the "
                                        "context; kiln never follows symlinks in source paths: copy files "
                                        "that are inside the context",
                                        quote(written), quote(prefix), quote(node->target)));
        return make_error(
            ErrorKind::kInvalidArgument,
            fmt::format("source path {} goes through the symlink {} -> {} (inside the context); "
                        "kiln never follows symlinks in source paths: write {} instead",
                        quote(written), quote(prefix), quote(node->target),
                        quote(inside->empty() ? rest : path::join(*inside, rest))));
      }
      case ManifestEntry::Type::kFile:
      case ManifestEntry::Type::kSpecial:
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("source path {}: {} is not a directory, so nothing can be below it",
                                      quote(written), quote(prefix)));
    }
  }
  return make_error(ErrorKind::kInternal, "unreachable in resolve_source");
}

Result<std::string> read_link(const std::string& host, std::size_t size_hint) {
  std::string target(std::max<std::size_t>(size_hint, 64), '\0');
  for (;;) {
    ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
    if (n < 0) return errno_error("cannot read symlink " + host);
    if (static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);  // possibly truncated: the link changed size
  }
}

Result<std::optional<Node>> lstat_node(const std::string& root, const std::string& rel) {
  std::string host = host_path(root, rel);
  struct stat st {};
  if (::lstat(host.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<Node>();
    return errno_error("cannot inspect " + host);
  }
  Node node{ManifestEntry::Type::kSpecial, {}};
  if (S_ISDIR(st.st_mode)) {
    node.type = ManifestEntry::Type::kDirectory;
  } else if (S_ISREG(st.st_mode)) {
    node.type = ManifestEntry::Type::kFile;
  } else if (S_ISLNK(st.st_mode)) {
    node.type = ManifestEntry::Type::kSymlink;
    KILN_ASSIGN_OR_RETURN(node.target, read_link(host, static_cast<std::size_t>(st.st_size) + 1));
  }
  return node;
}

// What identifies a file's content without reading it, for as long as one
// DirectoryContext lives: a write changes ctime even when mtime is restored.
struct FileStamp {
  std::uint64_t device;
  std::uint64_t inode;
  std::uint64_t size;
  std::int64_t mtime_ns;
  std::int64_t ctime_ns;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const struct stat& st) {
  auto ns = [](const struct timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
  };
  return FileStamp{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                   static_cast<std::uint64_t>(st.st_size), ns(st.st_mtim), ns(st.st_ctim)};
}

// A file changed within this long of being stat'ed may change again without
// its timestamps moving (they tick coarsely): its digest is not remembered.
constexpr std::int64_t kRacyWindowNs = 2'000'000'000;

std::int64_t now_ns() {
  struct timespec t {};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

struct CachedDigest {
  FileStamp stamp;
  Digest digest;
};
using FileDigestCache = std::unordered_map<std::string, CachedDigest>;

// Collects the entries of a directory tree (files not yet hashed).
class TreeWalker {
 public:
  TreeWalker(const std::string& root, std::span<const std::string> exclude, bool record_special,
             std::string_view written_source)
      : root_(root), exclude_(exclude), record_special_(record_special), written_source_(written_source) {}

  // Adds `rel` and, for a directory, everything below it.
  Status visit(const std::string& rel) {
    std::string host = host_path(root_, rel);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return errno_error("cannot inspect " + host);
    ManifestEntry entry;
    entry.path = rel;
    if (S_ISREG(st.st_mode)) {
      entry.type = ManifestEntry::Type::kFile;
      entry.executable = (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
      file_sizes_.push_back({entries_.size(), static_cast<std::uint64_t>(st.st_size), stamp_of(st)});
      entries_.push_back(std::move(entry));
      return {};
    }
    if (S_ISLNK(st.st_mode)) {
      entry.type = ManifestEntry::Type::kSymlink;
      KILN_ASSIGN_OR_RETURN(entry.target, read_link(host, static_cast<std::size_t>(st.st_size) + 1));
      entries_.push_back(std::move(entry));
      return {};
    }
    if (!S_ISDIR(st.st_mode)) {
      if (!record_special_) return unsupported_type_error(written_source_, rel);
      entry.type = ManifestEntry::Type::kSpecial;
      entries_.push_back(std::move(entry));
      return {};
    }
    entries_.push_back(std::move(entry));
    std::vector<std::string> names;
    {
      DIR* dir = ::opendir(host.c_str());
      if (dir == nullptr) return errno_error("cannot list directory " + host);
      for (;;) {
        errno = 0;
        struct dirent* d = ::readdir(dir);
        if (d == nullptr) break;
        std::string_view name = d->d_name;
        if (name == "." || name == "..") continue;
        // OBuilder's exclude: a name matched against each directory entry.
        if (is_excluded(name, exclude_)) continue;
        names.emplace_back(name);
      }
      int err = errno;
      ::closedir(dir);
      if (err != 0) return errno_error("cannot list directory " + host, err);
    }
    for (const std::string& name : names)
      KILN_RETURN_IF_ERROR(visit(rel.empty() ? name : path::join(rel, name)));
    return {};
  }

  // Sorts the entries by path and hashes the files on up to `threads` threads,
  // skipping (and then filling) `cache` when given.
  Result<std::vector<ManifestEntry>> finish(unsigned threads, FileDigestCache* cache) && {
    if (cache != nullptr) take_cached_digests(*cache);
    KILN_RETURN_IF_ERROR(hash_files(threads));
    if (cache != nullptr) {
      const std::int64_t racy_after = started_ns_ - kRacyWindowNs;
      for (const FileJob& job : file_sizes_) {
        if (job.stamp.ctime_ns >= racy_after || job.stamp.mtime_ns >= racy_after) continue;
        const ManifestEntry& entry = entries_[job.index];
        (*cache)[entry.path] = CachedDigest{job.stamp, entry.content};
      }
    }
    std::ranges::sort(entries_, {}, &ManifestEntry::path);
    return std::move(entries_);
  }

 private:
  struct FileJob {
    std::size_t index;
    std::uint64_t size;
    FileStamp stamp;
  };

  // Moves files whose digest `cache` already knows out of the hashing queue.
  void take_cached_digests(const FileDigestCache& cache) {
    std::erase_if(file_sizes_, [&](const FileJob& job) {
      ManifestEntry& entry = entries_[job.index];
      auto it = cache.find(entry.path);
      if (it == cache.end() || !(it->second.stamp == job.stamp)) return false;
      entry.content = it->second.digest;
      return true;
    });
  }

  Status hash_files(unsigned threads) {
    // Largest first, so the last file one thread picks up is a small one and
    // the threads finish together.
    std::ranges::sort(file_sizes_, std::ranges::greater{}, &FileJob::size);
    std::uint64_t total = 0;
    for (const FileJob& job : file_sizes_) total += job.size;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<std::size_t>(threads, file_sizes_.size()));
    if (total < kParallelHashThreshold) threads = 1;

    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::optional<Error> first_error;
    auto work = [&] {
      while (!failed.load(std::memory_order_relaxed)) {
        std::size_t i = next.fetch_add(1);
        if (i >= file_sizes_.size()) return;
        ManifestEntry& entry = entries_[file_sizes_[i].index];
        Result<Digest> digest = sha256_file(host_path(root_, entry.path));
        if (!digest) {
          std::lock_guard lock(error_mutex);
          if (!first_error) first_error = std::move(digest).error();
          failed = true;
          return;
        }
        entry.content = *digest;  // each thread writes distinct entries
      }
    };
    {
      std::vector<std::jthread> helpers;
      for (unsigned t = 1; t < threads; ++t) helpers.emplace_back(work);
      work();
    }
    if (first_error) return std::unexpected(std::move(*first_error));
    return {};
  }

  const std::string& root_;
  const std::int64_t started_ns_ = now_ns();  // before any lstat
  std::span<const std::string> exclude_;
  bool record_special_;
  std::string_view written_source_;
  std::vector<ManifestEntry> entries_;
  std::vector<FileJob> file_sizes_;
};

std::optional<Digest> digest_from_hex(std::string_view hex) {
  if (!is_sha256_hex(hex)) return std::nullopt;
  Digest out{};
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

// True for "" (the root) and for "a/b/c" paths with no empty, ".", ".." or
// NUL components.
bool is_normalised_path(std::string_view p) {
  if (p.empty()) return true;
  if (p.find('\0') != std::string_view::npos) return false;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = p.find('/', start);
    std::string_view part = p.substr(start, end == std::string_view::npos ? end : end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

std::string_view parent_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
}

Result<ManifestEntry> decode_entry(const Csexp& value, std::size_t index) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("context manifest entry {}: {}; regenerate the manifest", index, why));
  };
  if (!value.is_list || value.items.empty() || value.items[0].is_list)
    return bad("expected a list starting with an entry type");
  for (const Csexp& item : value.items)
    if (item.is_list) return bad("expected only atoms in an entry");
  const std::string& type = value.items[0].atom;
  const std::size_t arity = value.items.size();
  ManifestEntry entry;
  if (arity >= 2) entry.path = value.items[1].atom;
  if (type == "dir" && arity == 2) {
    entry.type = ManifestEntry::Type::kDirectory;
  } else if (type == "file" && arity == 4) {
    entry.type = ManifestEntry::Type::kFile;
    std::optional<Digest> digest = digest_from_hex(value.items[2].atom);
    if (!digest) return bad("a file's digest must be 64 lowercase hex characters");
    entry.content = *digest;
    const std::string& mode = value.items[3].atom;
    if (mode != "x" && mode != "-") return bad("a file's mode must be \"x\" or \"-\"");
    entry.executable = mode == "x";
  } else if (type == "symlink" && arity == 3) {
    entry.type = ManifestEntry::Type::kSymlink;
    entry.target = value.items[2].atom;
    if (entry.target.empty() || entry.target.find('\0') != std::string::npos)
      return bad("a symlink target must be non-empty and free of NUL bytes");
  } else if (type == "special" && arity == 2) {
    entry.type = ManifestEntry::Type::kSpecial;
  } else {
    return bad(
        fmt::format("unknown entry (type {} with {} fields); expected (dir PATH), (file PATH HEX x|-), "
                    "(symlink PATH TARGET) or (special PATH)",
                    quote(type), arity - 1));
  }
  if (!is_normalised_path(entry.path))
    return bad(
        fmt::format("path {} is not normalised (no empty, \".\" or \"..\" components)", quote(entry.path)));
  return entry;
}

}  // namespace

void encode_manifest_entry(CsexpWriter& out, const ManifestEntry& entry) {
  out.open();
  switch (entry.type) {
    case ManifestEntry::Type::kDirectory: out.atom("dir").atom(entry.path); break;
    case ManifestEntry::Type::kFile:
      out.atom("file").atom(entry.path).atom(to_hex(entry.content)).atom(entry.executable ? "x" : "-");
      break;
    case ManifestEntry::Type::kSymlink: out.atom("symlink").atom(entry.path).atom(entry.target); break;
    case ManifestEntry::Type::kSpecial: out.atom("special").atom(entry.path); break;
  }
  out.close();
}

std::string Manifest::encode() const {
  CsexpWriter out;
  out.open().atom(kManifestTag);
  for (const ManifestEntry& entry : entries) encode_manifest_entry(out, entry);
  out.close();
  return out.take();
}

std::string Manifest::digest() const {
  return sha256_hex(encode());
}

Result<std::string> normalize_source_path(std::string_view source) {
  if (source.find('\0') != std::string_view::npos)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("source path {} contains a NUL byte", quote(source)));
  std::string out;
  for (std::string_view part : path::components(source)) {
    if (part == "..")
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("can't use .. in source paths (in {}); name the path from the context "
                                    "root instead",
                                    quote(source)));
    out = out.empty() ? std::string(part) : path::join(out, part);
  }
  return out;
}

// ---- DirectoryContext ----

struct DirectoryContext::DigestCache {
  FileDigestCache files;
};

DirectoryContext::DirectoryContext(std::string root, unsigned hash_threads)
    : root_(std::move(root)), hash_threads_(hash_threads), digests_(std::make_unique<DigestCache>()) {}
DirectoryContext::~DirectoryContext() = default;
DirectoryContext::DirectoryContext(DirectoryContext&&) noexcept = default;
DirectoryContext& DirectoryContext::operator=(DirectoryContext&&) noexcept = default;

Result<DirectoryContext> DirectoryContext::open(std::string root, unsigned hash_threads) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return errno_error("cannot open the build context " + root);
  if (!S_ISDIR(st.st_mode))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("build context {} is not a directory; pass a directory", quote(root)));
  return DirectoryContext(std::move(root), hash_threads);
}

Result<Manifest> DirectoryContext::manifest(std::string_view source, std::span<const std::string> exclude) {
  KILN_ASSIGN_OR_RETURN(std::string normalised, normalize_source_path(source));
  Lookup lookup = [&](const std::string& rel) { return lstat_node(root_, rel); };
  KILN_ASSIGN_OR_RETURN(Node node, resolve_source(source, normalised, lookup));
  if (node.type == ManifestEntry::Type::kSpecial) return unsupported_type_error(source, normalised);
  TreeWalker walker(root_, exclude, /*record_special=*/false, source);
  KILN_RETURN_IF_ERROR(walker.visit(normalised));
  KILN_ASSIGN_OR_RETURN(std::vector<ManifestEntry> entries,
                        std::move(walker).finish(hash_threads_, &digests_->files));
  return Manifest{std::move(normalised), std::move(entries)};
}

// ---- ContextManifest ----

Result<ContextManifest> ContextManifest::from_directory(const std::string& root, unsigned hash_threads) {
  // Opening through DirectoryContext gives the same "not a directory" errors.
  KILN_ASSIGN_OR_RETURN(DirectoryContext dir, DirectoryContext::open(root, hash_threads));
  TreeWalker walker(dir.root(), {}, /*record_special=*/true, "");
  KILN_RETURN_IF_ERROR(walker.visit(""));
  KILN_ASSIGN_OR_RETURN(std::vector<ManifestEntry> entries, std::move(walker).finish(hash_threads, nullptr));
  return ContextManifest(std::move(entries));
}

std::string ContextManifest::serialize() const {
  CsexpWriter out;
  out.open().atom(kContextTag);
  for (const ManifestEntry& entry : entries_) encode_manifest_entry(out, entry);
  out.close();
  return out.take();
}

Result<ContextManifest> ContextManifest::parse(std::string_view bytes) {
  Result<Csexp> value = parse_csexp(bytes);
  if (!value)
    return std::unexpected(std::move(value).error().with_context("while reading a context manifest"));
  if (!value->is_list || value->items.empty() || !value->items[0].is_atom(kContextTag))
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("not a kiln context manifest: expected a list starting with the version tag "
                    "{}; regenerate it with this version of kiln",
                    quote(kContextTag)));
  std::vector<ManifestEntry> entries;
  entries.reserve(value->items.size() - 1);
  for (std::size_t i = 1; i < value->items.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(ManifestEntry entry, decode_entry(value->items[i], i - 1));
    entries.push_back(std::move(entry));
  }
  return checked(std::move(entries));
}

Result<ContextManifest> ContextManifest::from_entries(std::vector<ManifestEntry> entries) {
  for (const ManifestEntry& entry : entries) {
    if (!is_normalised_path(entry.path))
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("context entry path {} is not normalised (no leading or trailing '/', "
                                    "no empty, \".\" or \"..\" components)",
                                    quote(entry.path)));
  }
  std::ranges::sort(entries, {}, &ManifestEntry::path);
  // Archives may leave out directories that deeper paths imply.
  std::vector<ManifestEntry> implied;
  std::unordered_set<std::string> implied_paths;
  auto present = [&](const std::string& p) {
    return std::ranges::binary_search(entries, p, {}, &ManifestEntry::path) || implied_paths.contains(p);
  };
  auto imply = [&](std::string p) {
    implied_paths.insert(p);
    implied.push_back(ManifestEntry{ManifestEntry::Type::kDirectory, std::move(p), {}, false, {}});
  };
  if (!present("")) imply("");
  for (const ManifestEntry& entry : entries) {
    for (std::string p(parent_of(entry.path)); !p.empty() && !present(p); p = std::string(parent_of(p)))
      imply(p);
  }
  if (!implied.empty()) {
    entries.insert(entries.end(), std::make_move_iterator(implied.begin()),
                   std::make_move_iterator(implied.end()));
    std::ranges::sort(entries, {}, &ManifestEntry::path);
  }
  return checked(std::move(entries));
}

Result<ContextManifest> ContextManifest::checked(std::vector<ManifestEntry> entries) {
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (!(entries[i - 1].path < entries[i].path))
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("context manifest entry {}: path {} is not after {} in byte order; entries "
                      "must be sorted and unique",
                      i, quote(entries[i].path), quote(entries[i - 1].path)));
  }
  if (entries.empty() || !entries[0].path.empty() || entries[0].type != ManifestEntry::Type::kDirectory)
    return make_error(ErrorKind::kInvalidArgument,
                      "context manifest: the first entry must be the root directory (dir \"\")");
  ContextManifest manifest(std::move(entries));
  for (const ManifestEntry& entry : manifest.entries_) {
    if (entry.path.empty()) continue;
    const ManifestEntry* parent = manifest.find(parent_of(entry.path));
    if (parent == nullptr || parent->type != ManifestEntry::Type::kDirectory)
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("context manifest: the parent of {} is not a directory entry", quote(entry.path)));
  }
  return manifest;
}

const ManifestEntry* ContextManifest::find(std::string_view p) const {
  auto it = std::ranges::lower_bound(entries_, p, {}, &ManifestEntry::path);
  if (it == entries_.end() || it->path != p) return nullptr;
  return &*it;
}

Result<Manifest> ContextManifest::select(std::string_view source,
                                         std::span<const std::string> exclude) const {
  KILN_ASSIGN_OR_RETURN(std::string normalised, normalize_source_path(source));
  Lookup lookup = [&](const std::string& rel) -> Result<std::optional<Node>> {
    const ManifestEntry* entry = find(rel);
    if (entry == nullptr) return std::optional<Node>();
    return Node{entry->type, entry->target};
  };
  KILN_ASSIGN_OR_RETURN(Node node, resolve_source(source, normalised, lookup));
  if (node.type == ManifestEntry::Type::kSpecial) return unsupported_type_error(source, normalised);
  const ManifestEntry* top = find(normalised);
  Manifest out{normalised, {*top}};
  if (top->type != ManifestEntry::Type::kDirectory) return out;

  // Everything below a directory shares the prefix "S/" and so is one
  // contiguous run in byte order (for the root, everything after it).
  std::string prefix = normalised.empty() ? std::string() : normalised + "/";
  auto it = normalised.empty() ? entries_.begin() + 1
                               : std::ranges::lower_bound(entries_, prefix, {}, &ManifestEntry::path);
  for (; it != entries_.end() && it->path.starts_with(prefix); ++it) {
    std::string_view below = std::string_view(it->path).substr(prefix.size());
    bool excluded = std::ranges::any_of(path::components(below),
                                        [&](std::string_view name) { return is_excluded(name, exclude); });
    if (excluded) continue;
    if (it->type == ManifestEntry::Type::kSpecial) return unsupported_type_error(source, it->path);
    out.entries.push_back(*it);
  }
  return out;
}

}  // namespace kiln::ids
