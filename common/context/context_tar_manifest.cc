#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/context/context_tar.h"
#include "common/context/context_tar_reader.h"
#include "common/sha256.h"

namespace kiln::context {

Result<ids::ContextManifest> context_tar_manifest(const std::string& tar_path) {
  KILN_ASSIGN_OR_RETURN(ContextTarReader reader, ContextTarReader::open(tar_path));
  std::vector<ids::ManifestEntry> entries;
  std::unordered_map<std::string, Digest> contents;  // of files, for the hard links to them
  for (;;) {
    KILN_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, reader.next());
    if (!entry) break;
    ids::ManifestEntry m{.path = entry->path};
    switch (entry->kind) {
      case TarEntry::Kind::kDirectory: m.type = ids::ManifestEntry::Type::kDirectory; break;
      case TarEntry::Kind::kSymlink:
        m.type = ids::ManifestEntry::Type::kSymlink;
        m.target = entry->target;
        break;
      case TarEntry::Kind::kFile: {
        Sha256 hash;
        KILN_RETURN_IF_ERROR(reader.read_content([&](std::string_view bytes) -> Status {
          hash.update(bytes);
          return {};
        }));
        m.type = ids::ManifestEntry::Type::kFile;
        m.content = hash.digest();
        m.executable = entry->executable();
        contents[m.path] = m.content;
        break;
      }
      case TarEntry::Kind::kHardLink:
        m.type = ids::ManifestEntry::Type::kFile;
        m.content = contents.at(entry->target);  // the reader checked it is an earlier file
        m.executable = entry->executable();
        contents[m.path] = m.content;
        break;
    }
    entries.push_back(std::move(m));
  }
  return ids::ContextManifest::from_entries(std::move(entries));
}

}  // namespace kiln::context
