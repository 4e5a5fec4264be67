// Test helpers for worker/fetcher: craft image layers and whole images (OCI
// layouts, `docker save` tarballs) with libarchive's writer, so the tests
// exercise real files rather than mocks.
//
//   LayerBuilder layer;
//   layer.dir("etc").file("etc/motd", "hi\n", 0644).whiteout("etc/old");
//   OciLayoutWriter oci(dir);
//   auto manifest = oci.add_image({make_layer(layer, Compression::kGzip)}, config_with_env({"PATH=/bin"}));
//   oci.write_index({{manifest, "latest"}});
//
// Contract: test-only; failures abort the test through GoogleTest assertions
// (ADD_FAILURE) and return empty results. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "worker/fetcher/internal/image_manifest.h"

namespace kiln::fetcher::testing {

using internal::Compression;

class LayerBuilder {
 public:
  LayerBuilder& dir(std::string path, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0);
  LayerBuilder& file(std::string path, std::string content, mode_t mode = 0644, uid_t uid = 0, gid_t gid = 0);
  LayerBuilder& symlink(std::string path, std::string target);
  LayerBuilder& hardlink(std::string path, std::string target);
  LayerBuilder& char_device(std::string path, unsigned major, unsigned minor);
  // An empty file named DIR/.wh.NAME for path DIR/NAME.
  LayerBuilder& whiteout(const std::string& path);
  // DIR/.wh..wh..opq.
  LayerBuilder& opaque(const std::string& dir);
  // Applies to the entry added last.
  LayerBuilder& mtime(time_t seconds);
  LayerBuilder& xattr(std::string name, std::string value);

  // The uncompressed tar (PAX format).
  std::string tar() const;

 private:
  struct Entry {
    enum Type { kDir, kFile, kSymlink, kHardlink, kCharDevice } type = kFile;
    std::string path;
    std::string content;  // file data or link target
    mode_t mode = 0644;
    uid_t uid = 0;
    gid_t gid = 0;
    time_t mtime = 1000000000;
    unsigned major = 0, minor = 0;
    std::vector<std::pair<std::string, std::string>> xattrs;
  };
  void add(Entry::Type type, std::string path, std::string content, mode_t mode, uid_t uid = 0,
           gid_t gid = 0);
  std::vector<Entry> entries_;
};

// Compresses bytes (gzip or zstd through libarchive; kNone returns them as is).
std::string compress(const std::string& data, Compression compression);

std::string sha256_digest(const std::string& data);  // "sha256:HEX"

struct Layer {
  std::string blob;
  std::string media_type;
  std::string diff_id;
};
Layer make_layer(const LayerBuilder& builder, Compression compression);

// A minimal OCI image config with these Env entries and diff_ids filled in later.
nlohmann::json config_with_env(std::vector<std::string> env);

class OciLayoutWriter {
 public:
  explicit OciLayoutWriter(std::string dir);
  // Stores a blob, returns its digest.
  std::string add_blob(const std::string& data);
  // Stores the layers, a config (diff_ids set from the layers) and a manifest;
  // returns the manifest's descriptor.
  nlohmann::json add_image(const std::vector<Layer>& layers, nlohmann::json config);
  // An image index blob over these manifests (with platforms); returns its descriptor.
  nlohmann::json add_index(
      const std::vector<std::pair<nlohmann::json, std::string>>& manifests_and_platforms);
  // Writes index.json and oci-layout: each descriptor tagged (ref.name) unless the tag is "".
  void write_index(const std::vector<std::pair<nlohmann::json, std::string>>& tagged);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

struct TarFile {
  std::string name;
  std::string content;
  std::string symlink;  // when not empty, a symlink entry with this target
};
// Writes a tarball of these entries, in this order.
void write_tarball(const std::string& file, const std::vector<TarFile>& files);

// Every file under `dir` as a tar entry named relative to it.
std::vector<TarFile> files_of(const std::string& dir);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

}  // namespace kiln::fetcher::testing
