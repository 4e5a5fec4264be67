// libFuzzer target for the image metadata parsers (worker/fetcher/internal/
// image_manifest.cc): the OCI layout's oci-layout and index.json, image
// indexes (nested, multi-platform), OCI and docker v2 manifests, image
// configs, `docker save`'s manifest.json, and image references
// (fetcher.h's parse_image_reference).
//
// Input: a mode byte, a tag byte, then blobs (u16 length + bytes, see
// fuzz_support.h's ByteReader). Mode 0: the rest is an image config
// (parse_image_config). Mode 1: an OCI layout: blob 0 is `oci-layout`,
// blob 1 `index.json`. Mode 2: a docker archive: blob 0 is `manifest.json`
// (without it the archive is read as an OCI layout in a tar, as the
// fetcher does). Mode 3: the rest is an image reference. Every blob is also
// stored as blobs/sha256/HEX and HEX.json, where HEX is its SHA-256, and
// "@N" in a blob is replaced by blob N's HEX (for N after it), so that the
// fuzzer can build chains whose digests verify: index -> manifest -> config.
// The files live in memory (an ImageFiles of the target's own).
//
// For any input it checks, and aborts when one fails:
//   - no crash, no leak, no exception escapes;
//   - errors are kInvalidArgument, kNotFound or kUnsupported;
//   - a plan names its manifest by a sha256 digest; each layer's path is
//     normalised and relative (OCI: blobs/sha256/ of its digest), its digest
//     and diff_id are empty or sha256 digests, its compression known;
//   - a parsed image reference prints (to_string) to text that parses to the
//     same reference.
// Seeds: `image_manifest_fuzz --write-seeds=tests/fuzz/corpus/image_manifest`.
// Run with scripts/fuzz image_manifest (dictionary image_manifest.dict).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/path.h"
#include "common/sha256.h"
#include "tests/fuzz/fuzz_support.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"

namespace {

using kiln::ErrorKind;
using kiln::Result;
using kiln::fuzz::check;
using kiln::fuzz::fail;
namespace fetcher = kiln::fetcher;
namespace internal = kiln::fetcher::internal;

enum Mode : std::uint8_t { kConfig, kOciLayout, kDockerArchive, kReference, kModes };
constexpr std::size_t kMaxBlobs = 10;

class MemoryBlob final : public internal::BlobReader {
 public:
  explicit MemoryBlob(std::string content) : content_(std::move(content)) {}
  Result<std::size_t> read(std::span<char> buffer) override {
    std::size_t n = std::min(buffer.size(), content_.size() - at_);
    std::copy_n(content_.data() + at_, n, buffer.data());
    at_ += n;
    return n;
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(content_.size()); }

 private:
  std::string content_;
  std::size_t at_ = 0;
};

class MemoryImage final : public internal::ImageFiles {
 public:
  std::map<std::string, std::string> files;

  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override {
    auto it = files.find(path);
    if (it == files.end()) return kiln::make_error(ErrorKind::kNotFound, describe(path) + " is missing");
    if (it->second.size() > max_bytes)
      return kiln::make_error(ErrorKind::kInvalidArgument, describe(path) + " is too large");
    return it->second;
  }
  Result<std::unique_ptr<internal::BlobReader>> open(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return kiln::make_error(ErrorKind::kNotFound, describe(path) + " is missing");
    return std::unique_ptr<internal::BlobReader>(std::make_unique<MemoryBlob>(it->second));
  }
  std::string describe(const std::string& path) const override { return "fuzz-image/" + path; }
};

// Blobs with "@N" replaced by the hex digest of blob N (N > the blob's own index).
std::vector<std::string> resolve(std::vector<std::string> blobs) {
  std::vector<std::string> hex(blobs.size());
  for (std::size_t i = blobs.size(); i-- > 0;) {
    std::string& b = blobs[i];
    std::string out;
    for (std::size_t at = 0; at < b.size(); ++at) {
      if (b[at] == '@' && at + 1 < b.size() && b[at + 1] >= '0' && b[at + 1] <= '9') {
        std::size_t n = static_cast<std::size_t>(b[at + 1] - '0');
        if (n > i && n < blobs.size()) {
          out += hex[n];
          ++at;
          continue;
        }
      }
      out += b[at];
    }
    b = std::move(out);
    hex[i] = kiln::sha256_hex(b);
  }
  return blobs;
}

bool is_digest(const std::string& digest) {
  return digest.starts_with("sha256:") && kiln::is_sha256_hex(std::string_view(digest).substr(7));
}

void check_error(const kiln::Error& error) {
  const ErrorKind kind = error.kind();
  check(
      kind == ErrorKind::kInvalidArgument || kind == ErrorKind::kNotFound || kind == ErrorKind::kUnsupported,
      "an error of an unexpected kind", error.to_string());
}

void check_plan(const internal::ImagePlan& plan, Mode mode) {
  check(is_digest(plan.config.manifest_digest), "a plan without a manifest digest",
        plan.config.manifest_digest);
  for (const internal::LayerDescriptor& layer : plan.layers) {
    auto normal = kiln::path::normalize_relative(layer.path);
    check(normal && *normal == layer.path && !layer.path.empty(), "a layer path that is not normalised",
          layer.path);
    check(layer.digest.empty() || is_digest(layer.digest), "a layer digest that is not sha256", layer.digest);
    check(layer.diff_id.empty() || is_digest(layer.diff_id), "a diff_id that is not sha256", layer.diff_id);
    check(internal::compression_name(layer.compression) != "unknown" || layer.media_type.empty(),
          "a layer of a media type with no compression", layer.media_type);
    if (mode == kOciLayout)
      check(layer.path == "blobs/sha256/" + layer.digest.substr(7),
            "an OCI layer away from its digest's blob", layer.path);
  }
}

void fuzz_reference(std::string_view text) {
  auto ref = fetcher::parse_image_reference(text);
  if (!ref) {
    check(ref.error().kind() == ErrorKind::kInvalidArgument || ref.error().kind() == ErrorKind::kUnsupported,
          "a reference refused with the wrong kind", ref.error().to_string());
    return;
  }
  const std::string printed = fetcher::to_string(*ref);
  auto again = fetcher::parse_image_reference(printed);
  if (!again) fail("a printed reference does not parse", again.error().to_string());
  check(again->source == ref->source && again->path == ref->path && again->tag == ref->tag,
        "a printed reference parses to another", printed);
}

void fuzz_image(kiln::fuzz::ByteReader& in, Mode mode) {
  static const std::string kTags[] = {"latest", "v1", "3.19", ""};
  const std::uint8_t tag = in.u8();
  std::vector<std::string> blobs;
  while (!in.empty() && blobs.size() < kMaxBlobs) blobs.emplace_back(in.blob());
  blobs = resolve(std::move(blobs));

  MemoryImage image;
  for (const std::string& b : blobs) {
    const std::string hex = kiln::sha256_hex(b);
    image.files["blobs/sha256/" + hex] = b;
    image.files[hex + ".json"] = b;
  }
  auto name = [&](std::size_t i, const char* file) {
    if (i < blobs.size() && !blobs[i].empty()) image.files[file] = blobs[i];
  };
  Result<internal::ImagePlan> plan = kiln::make_error(ErrorKind::kInternal, "not run");
  if (mode == kOciLayout) {
    name(0, "oci-layout");
    name(1, "index.json");
    fetcher::ImageReference ref{.source = fetcher::ImageSource::kOciLayout,
                                .path = "/fuzz/image",
                                .tag = kTags[tag % 4].empty() ? "latest" : kTags[tag % 4],
                                .tag_given = !kTags[tag % 4].empty()};
    plan = internal::plan_oci_layout(image, ref);
  } else {
    name(0, "manifest.json");
    fetcher::ImageReference ref{.source = fetcher::ImageSource::kDockerArchive,
                                .path = "/fuzz/image.tar",
                                .tag = (tag & 4) ? "latest" : ""};
    plan = internal::plan_docker_archive(image, ref);
  }
  if (!plan) return check_error(plan.error());
  check_plan(*plan, mode);
}

// ---- seeds ----

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";

std::string config_json(std::string_view diff_ids) {
  return R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/bin:/usr/bin","EMPTY=","NOEQ"],)"
         R"("Entrypoint":["/bin/sh","-c"],"Cmd":["make"],"WorkingDir":"/src","User":"1000:1000"},)"
         R"("rootfs":{"type":"layers","diff_ids":[)" +
         std::string(diff_ids) + "]}}";
}

std::string manifest_json(std::string_view config_ref, std::string_view layers) {
  return R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) +
         R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
         std::string(config_ref) + R"(","size":300},"layers":[)" + std::string(layers) + "]}";
}

std::string layer_json(std::string_view media_type, std::string_view ref) {
  return R"({"mediaType":")" + std::string(media_type) + R"(","digest":"sha256:)" + std::string(ref) +
         R"(","size":1024})";
}

std::string image(Mode mode, std::uint8_t tag, const std::vector<std::string>& blobs) {
  kiln::fuzz::ByteWriter w;
  w.u8(mode).u8(tag);
  for (const std::string& b : blobs) w.blob(b);
  return w.str();
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  const std::string layout = R"({"imageLayoutVersion":"1.0.0"})";
  const std::string diff_id = "\"sha256:" + std::string(64, 'd') + "\"";
  seeds.add("01-config", std::string(1, kConfig) + config_json(diff_id));
  seeds.add("02-config-null", std::string(1, kConfig) + R"({"config":null})");
  seeds.add("03-config-bad-env", std::string(1, kConfig) + R"({"config":{"Env":[1,2],"Cmd":"sh"}})");
  // oci-layout, index.json -> @2 manifest -> @3 config, @4 layer
  seeds.add(
      "04-oci-tagged",
      image(
          kOciLayout, 0,
          {layout,
           R"({"schemaVersion":2,"manifests":[{"mediaType":")" + std::string(kOciManifest) +
               R"(","digest":"sha256:@2","size":500,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]})",
           manifest_json("@3", layer_json("application/vnd.oci.image.layer.v1.tar+gzip", "@4")),
           config_json(diff_id), "layer bytes"}));
  // index.json -> @2 multi-platform index -> @3 arm64 / @4 amd64 manifest -> @5 config
  seeds.add(
      "05-oci-multi-platform",
      image(kOciLayout, 3,
            {layout,
             R"({"manifests":[{"mediaType":")" + std::string(kOciIndex) + R"(","digest":"sha256:@2"}]})",
             R"({"mediaType":")" + std::string(kOciIndex) +
                 R"(","manifests":[{"digest":"sha256:@3","platform":{"os":"linux","architecture":"arm64"}},)"
                 R"({"digest":"sha256:@4","platform":{"os":"linux","architecture":"amd64"}}]})",
             manifest_json("@5", ""),
             manifest_json("@5", layer_json("application/vnd.oci.image.layer.v1.tar", "@6") + "," +
                                     layer_json("application/vnd.oci.image.layer.v1.tar+zstd", "@6")),
             config_json(diff_id + "," + diff_id), "layer"}));
  seeds.add("06-oci-missing-blob",
            image(kOciLayout, 1,
                  {layout, R"({"manifests":[{"digest":"sha256:)" + std::string(64, 'e') +
                               R"(","annotations":{"org.opencontainers.image.ref.name":"v1"}}]})"}));
  seeds.add("07-oci-bad-version", image(kOciLayout, 0, {R"({"imageLayoutVersion":"2.0"})", "{}"}));
  seeds.add(
      "08-oci-docker-media-types",
      image(
          kOciLayout, 0,
          {layout, R"({"manifests":[{"digest":"sha256:@2"}]})",
           R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:@3"},)"
           R"("layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:@4"}]})",
           R"({"config":{"Env":["A=1"]}})", "layer"}));
  seeds.add(
      "09-oci-encrypted-layer",
      image(kOciLayout, 0,
            {layout, R"({"manifests":[{"digest":"sha256:@2"}]})",
             manifest_json("@3", layer_json("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "@4")),
             R"({})", "x"}));
  // docker save: manifest.json -> @1 config (as HEX.json), layers by path
  seeds.add(
      "10-docker-save",
      image(
          kDockerArchive, 0,
          {R"([{"Config":"@1.json","RepoTags":["app:latest"],"Layers":["@2/layer.tar","blobs/sha256/@2"]}])",
           config_json(diff_id + "," + diff_id), "layer"}));
  seeds.add("11-docker-two-images",
            image(kDockerArchive, 0,
                  {R"([{"Config":"a.json","RepoTags":["a:1"]},{"Config":"b.json","RepoTags":["b:2"]}])"}));
  seeds.add("12-docker-oci-fallback", image(kDockerArchive, 4,
                                            {"", layout, R"({"manifests":[{"digest":"sha256:@3"}]})",
                                             manifest_json("@4", ""), R"({"config":{}})"}));
  seeds.add("13-reference-oci", std::string(1, kReference) + "oci:/images/base:3.19");
  seeds.add("14-reference-archive", std::string(1, kReference) + "docker-archive:/tmp/app.tar");
  seeds.add("15-reference-oci-archive", std::string(1, kReference) + "oci-archive:/tmp/a:b/c.tar");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  kiln::fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kiln::fuzz::ByteReader in(data, size);
  const auto mode = static_cast<Mode>(in.u8() % kModes);
  switch (mode) {
    case kConfig: {
      auto config = internal::parse_image_config(in.rest(), "fuzz-config");
      if (!config) check_error(config.error());
      break;
    }
    case kReference: fuzz_reference(in.rest()); break;
    default: fuzz_image(in, mode); break;
  }
  return 0;
}
