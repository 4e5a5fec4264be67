#include "worker/fetcher/testing/image_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <clocale>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sha256.h"

namespace kiln::fetcher::testing {
namespace {

la_ssize_t append_callback(archive*, void* data, const void* buffer, size_t size) {
  static_cast<std::string*>(data)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

}  // namespace

void LayerBuilder::add(Entry::Type type, std::string path, std::string content, mode_t mode, uid_t uid,
                       gid_t gid) {
  Entry e;
  e.type = type;
  e.path = std::move(path);
  e.content = std::move(content);
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  entries_.push_back(std::move(e));
}

LayerBuilder& LayerBuilder::dir(std::string path, mode_t mode, uid_t uid, gid_t gid) {
  add(Entry::kDir, std::move(path), "", mode, uid, gid);
  return *this;
}
LayerBuilder& LayerBuilder::file(std::string path, std::string content, mode_t mode, uid_t uid, gid_t gid) {
  add(Entry::kFile, std::move(path), std::move(content), mode, uid, gid);
  return *this;
}
LayerBuilder& LayerBuilder::symlink(std::string path, std::string target) {
  add(Entry::kSymlink, std::move(path), std::move(target), 0777);
  return *this;
}
LayerBuilder& LayerBuilder::hardlink(std::string path, std::string target) {
  add(Entry::kHardlink, std::move(path), std::move(target), 0644);
  return *this;
}
LayerBuilder& LayerBuilder::char_device(std::string path, unsigned major, unsigned minor) {
  add(Entry::kCharDevice, std::move(path), "", 0666);
  entries_.back().major = major;
  entries_.back().minor = minor;
  return *this;
}
LayerBuilder& LayerBuilder::whiteout(const std::string& path) {
  auto slash = path.rfind('/');
  std::string name = slash == std::string::npos ? ".wh." + path
                                                : path.substr(0, slash + 1) + ".wh." + path.substr(slash + 1);
  return file(name, "", 0644);
}
LayerBuilder& LayerBuilder::opaque(const std::string& dir) {
  return file(dir + "/.wh..wh..opq", "", 0644);
}
LayerBuilder& LayerBuilder::mtime(time_t seconds) {
  entries_.back().mtime = seconds;
  return *this;
}
LayerBuilder& LayerBuilder::xattr(std::string name, std::string value) {
  entries_.back().xattrs.emplace_back(std::move(name), std::move(value));
  return *this;
}

std::string LayerBuilder::tar() const {
  // Written as image builders (Go's archive/tar) write them: PAX names in
  // UTF-8. libarchive converts from the locale, so use a UTF-8 one meanwhile.
  locale_t utf8 = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
  EXPECT_NE(utf8, nullptr);
  locale_t previous = ::uselocale(utf8);
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_none(a);
  EXPECT_EQ(archive_write_open(a, &out, nullptr, append_callback, nullptr), ARCHIVE_OK);
  for (const auto& e : entries_) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    archive_entry_set_perm(entry, e.mode);
    for (const auto& [name, value] : e.xattrs)
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    switch (e.type) {
      case Entry::kDir: archive_entry_set_filetype(entry, AE_IFDIR); break;
      case Entry::kFile:
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
        break;
      case Entry::kSymlink:
        archive_entry_set_filetype(entry, AE_IFLNK);
        archive_entry_set_symlink(entry, e.content.c_str());
        break;
      case Entry::kHardlink:
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_hardlink(entry, e.content.c_str());
        break;
      case Entry::kCharDevice:
        archive_entry_set_filetype(entry, AE_IFCHR);
        archive_entry_set_rdev(entry, makedev(e.major, e.minor));
        break;
    }
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == Entry::kFile && !e.content.empty()) {
      EXPECT_EQ(archive_write_data(a, e.content.data(), e.content.size()),
                static_cast<la_ssize_t>(e.content.size()));
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  ::uselocale(previous);
  ::freelocale(utf8);
  return out;
}

std::string compress(const std::string& data, Compression compression) {
  if (compression == Compression::kNone || compression == Compression::kUnknown) return data;
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  if (compression == Compression::kGzip)
    archive_write_add_filter_gzip(a);
  else
    archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  EXPECT_EQ(archive_write_open(a, &out, nullptr, append_callback, nullptr), ARCHIVE_OK);
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, "data");
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_size(entry, static_cast<la_int64_t>(data.size()));
  EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
  EXPECT_EQ(archive_write_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
  archive_entry_free(entry);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string sha256_digest(const std::string& data) {
  return "sha256:" + sha256_hex(data);
}

Layer make_layer(const LayerBuilder& builder, Compression compression) {
  std::string tar = builder.tar();
  Layer layer;
  layer.blob = compress(tar, compression);
  layer.diff_id = sha256_digest(tar);
  switch (compression) {
    case Compression::kGzip: layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip"; break;
    case Compression::kZstd: layer.media_type = "application/vnd.oci.image.layer.v1.tar+zstd"; break;
    default: layer.media_type = "application/vnd.oci.image.layer.v1.tar";
  }
  return layer;
}

nlohmann::json config_with_env(std::vector<std::string> env) {
  return {{"architecture", "amd64"},
          {"os", "linux"},
          {"config", {{"Env", env}}},
          {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}}};
}

OciLayoutWriter::OciLayoutWriter(std::string dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_ + "/blobs/sha256");
}

std::string OciLayoutWriter::add_blob(const std::string& data) {
  std::string digest = sha256_digest(data);
  write_file(dir_ + "/blobs/sha256/" + digest.substr(7), data);
  return digest;
}

nlohmann::json OciLayoutWriter::add_image(const std::vector<Layer>& layers, nlohmann::json config) {
  nlohmann::json layer_descriptors = nlohmann::json::array();
  config["rootfs"]["diff_ids"] = nlohmann::json::array();
  for (const auto& layer : layers) {
    layer_descriptors.push_back(
        {{"mediaType", layer.media_type}, {"digest", add_blob(layer.blob)}, {"size", layer.blob.size()}});
    config["rootfs"]["diff_ids"].push_back(layer.diff_id);
  }
  std::string config_text = config.dump();
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                             {"config",
                              {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                               {"digest", add_blob(config_text)},
                               {"size", config_text.size()}}},
                             {"layers", layer_descriptors}};
  std::string manifest_text = manifest.dump();
  return {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
          {"digest", add_blob(manifest_text)},
          {"size", manifest_text.size()}};
}

nlohmann::json OciLayoutWriter::add_index(
    const std::vector<std::pair<nlohmann::json, std::string>>& manifests_and_platforms) {
  nlohmann::json manifests = nlohmann::json::array();
  for (auto [descriptor, platform] : manifests_and_platforms) {
    auto slash = platform.find('/');
    descriptor["platform"] = {{"os", platform.substr(0, slash)},
                              {"architecture", platform.substr(slash + 1)}};
    manifests.push_back(descriptor);
  }
  std::string text = nlohmann::json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests",
       manifests}}.dump();
  return {{"mediaType", "application/vnd.oci.image.index.v1+json"},
          {"digest", add_blob(text)},
          {"size", text.size()}};
}

void OciLayoutWriter::write_index(const std::vector<std::pair<nlohmann::json, std::string>>& tagged) {
  nlohmann::json manifests = nlohmann::json::array();
  for (auto [descriptor, tag] : tagged) {
    if (!tag.empty()) descriptor["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
    manifests.push_back(descriptor);
  }
  write_file(dir_ + "/index.json", nlohmann::json{{"schemaVersion", 2}, {"manifests", manifests}}.dump());
  write_file(dir_ + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

void write_tarball(const std::string& file, const std::vector<TarFile>& files) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_none(a);
  ASSERT_EQ(archive_write_open_filename(a, file.c_str()), ARCHIVE_OK);
  for (const auto& f : files) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, f.name.c_str());
    archive_entry_set_perm(entry, 0644);
    if (!f.symlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, f.symlink.c_str());
    } else {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, static_cast<la_int64_t>(f.content.size()));
    }
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK);
    if (f.symlink.empty() && !f.content.empty()) archive_write_data(a, f.content.data(), f.content.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::vector<TarFile> files_of(const std::string& dir) {
  std::vector<TarFile> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out.push_back({e.path().lexically_relative(dir).string(), read_file(e.path().string()), ""});
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

}  // namespace kiln::fetcher::testing
