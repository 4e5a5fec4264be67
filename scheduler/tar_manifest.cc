#include "scheduler/tar_manifest.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <map>
#include <memory>

#include "common/path.h"
#include "common/sha256.h"

namespace kiln::scheduler {

Result<ids::ContextManifest> tar_manifest(const std::string& path) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_none(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return make_error(ErrorKind::kInvalidArgument, fmt::format("context {} is not a readable tar: {}", path,
                                                               archive_error_string(a.get())));
  }
  std::map<std::string, ids::ManifestEntry> entries;
  archive_entry* entry = nullptr;
  while (true) {
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("context {}: bad tar entry: {}", path, archive_error_string(a.get())));
    }
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    if (name.starts_with("./")) name = name.substr(2);
    if (name == "." || name.empty()) continue;
    auto normal = path::normalize_relative(name);
    if (!normal || normal->empty()) {
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("context tar entry {:?} is not a path inside the context", name));
    }
    ids::ManifestEntry m;
    m.path = *normal;
    const char* hardlink = archive_entry_hardlink(entry);
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR: m.type = ids::ManifestEntry::Type::kDirectory; break;
      case AE_IFLNK:
        m.type = ids::ManifestEntry::Type::kSymlink;
        m.target = archive_entry_symlink(entry) ? archive_entry_symlink(entry) : "";
        break;
      case AE_IFREG: {
        m.type = ids::ManifestEntry::Type::kFile;
        m.executable = (archive_entry_perm(entry) & 0111) != 0;
        if (hardlink) {
          auto target = path::normalize_relative(hardlink);
          auto it = target ? entries.find(*target) : entries.end();
          if (it == entries.end() || it->second.type != ids::ManifestEntry::Type::kFile) {
            return make_error(
                ErrorKind::kInvalidArgument,
                fmt::format("context tar entry {:?} links to {:?}, which is not an earlier file", name,
                            hardlink));
          }
          m.content = it->second.content;
          break;
        }
        Sha256 hash;
        const void* buf = nullptr;
        size_t size = 0;
        la_int64_t offset = 0;
        while ((r = archive_read_data_block(a.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
          hash.update(std::string_view(static_cast<const char*>(buf), size));
        }
        if (r != ARCHIVE_EOF) {
          return make_error(ErrorKind::kInvalidArgument, fmt::format("context {}: cannot read {:?}: {}", path,
                                                                     name, archive_error_string(a.get())));
        }
        m.content = hash.digest();
        break;
      }
      default: m.type = ids::ManifestEntry::Type::kSpecial; break;
    }
    if (!entries.emplace(m.path, m).second) {
      return make_error(ErrorKind::kInvalidArgument, fmt::format("context tar holds {:?} twice", m.path));
    }
  }
  std::vector<ids::ManifestEntry> list;
  list.reserve(entries.size());
  for (auto& [p, e] : entries) list.push_back(std::move(e));
  return ids::ContextManifest::from_entries(std::move(list));
}

}  // namespace kiln::scheduler
