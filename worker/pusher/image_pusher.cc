#include "worker/pusher/image_pusher.h"

#include <unistd.h>

#include <algorithm>
#include <variant>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/format.h"
#include "common/fs.h"
#include "common/ids/step_id.h"
#include "common/sha256.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/internal/registry_client.h"
#include "worker/fetcher/registry_reference.h"
#include "worker/pusher/base_layers.h"
#include "worker/pusher/docker_push.h"
#include "worker/pusher/layer_diff.h"

namespace kiln::pusher {
namespace {

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

struct Layer {
  std::string digest, diff_id, media_type, host_path;
  std::uint64_t size = 0;
  bool from_base = false;
  std::string created_by;  // history; empty for base layers
};

// The result's chain, base image step first.
Result<std::vector<std::string>> chain_of(store::Store& store, const std::string& id) {
  std::vector<std::string> chain{id};
  for (;;) {
    KILN_ASSIGN_OR_RETURN(store::ResultInfo info,
                          with_context(store.info(chain.back()), "finding result " + chain.back()));
    if (!info.parent) break;
    chain.push_back(*info.parent);
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

Result<std::string> rootfs_of(store::Store& store, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(auto dir, store.result(id));
  if (!dir) return make_error(ErrorKind::kNotFound, fmt::format("result {} disappeared from the store", id));
  // The docker store keeps results as images, not directories.
  if (::access((*dir + "/rootfs").c_str(), F_OK) != 0)
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("result {} has no rootfs directory (a docker store's results are images, "
                                  "which dockerd pushes; is this store's directory damaged?)",
                                  id));
  return *dir;
}

// What the spec's main stage leaves set: env bindings, and workdir and user if it sets them.
struct FinalContext {
  ids::StageContext context;
  bool workdir_set = false;
  bool user_set = false;
};

FinalContext final_context(const spec::Spec& spec) {
  FinalContext out;
  for (const spec::Op& op : spec.ops) {
    out.context.apply(op.kind);
    if (std::holds_alternative<spec::Workdir>(op.kind)) out.workdir_set = true;
    if (std::holds_alternative<spec::SetUser>(op.kind)) out.user_set = true;
  }
  return out;
}

std::string user_text(const spec::User& user) {
  if (const auto* unix_user = std::get_if<spec::UnixUser>(&user))
    return fmt::format("{}:{}", unix_user->uid, unix_user->gid);
  return std::get<spec::WindowsUser>(user).name;
}

// The config: the base's (or one made from image.json), with the spec applied.
std::string make_config(const std::optional<BaseImage>& base, const ImageJson& image, const FinalContext& fc,
                        const std::vector<Layer>& layers) {
  nlohmann::json config = nlohmann::json::object();
  if (base) config = nlohmann::json::parse(base->config_json, nullptr, false);
  if (!config.is_object()) config = nlohmann::json::object();
  if (!base) {
    config["architecture"] = std::string(fetcher::internal::host_architecture());
    config["os"] = "linux";
    nlohmann::json c = nlohmann::json::object();
    if (!image.env.empty()) c["Env"] = image.env;
    if (!image.working_dir.empty()) c["WorkingDir"] = image.working_dir;
    if (!image.user.empty()) c["User"] = image.user;
    if (!image.entrypoint.empty()) c["Entrypoint"] = image.entrypoint;
    if (!image.cmd.empty()) c["Cmd"] = image.cmd;
    config["config"] = c;
    config.erase("history");
  }
  if (!config.contains("config") || !config["config"].is_object())
    config["config"] = nlohmann::json::object();
  nlohmann::json& c = config["config"];
  std::vector<std::string> env;
  if (c.contains("Env") && c["Env"].is_array())
    for (const auto& e : c["Env"])
      if (e.is_string()) env.push_back(e.get<std::string>());
  env = internal::merged_env(std::move(env), {fc.context.env.begin(), fc.context.env.end()});
  if (!env.empty()) c["Env"] = env;
  if (fc.workdir_set) c["WorkingDir"] = fc.context.workdir;
  if (fc.user_set) c["User"] = user_text(fc.context.user);
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const Layer& layer : layers) diff_ids.push_back(layer.diff_id);
  config["rootfs"] = {{"type", "layers"}, {"diff_ids", diff_ids}};
  nlohmann::json history = config.contains("history") && config["history"].is_array()
                               ? config["history"]
                               : nlohmann::json::array();
  for (const Layer& layer : layers)
    if (!layer.created_by.empty()) history.push_back({{"created_by", layer.created_by}, {"comment", "kiln"}});
  config["history"] = history;
  return config.dump();
}

std::string make_manifest(const std::string& config, const std::vector<Layer>& layers) {
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"config",
       {{"mediaType", kOciConfig}, {"digest", "sha256:" + sha256_hex(config)}, {"size", config.size()}}},
  };
  nlohmann::json list = nlohmann::json::array();
  for (const Layer& layer : layers)
    list.push_back({{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
  manifest["layers"] = list;
  return manifest.dump();
}

std::string short_digest(const std::string& digest) {
  return digest.size() > 19 ? digest.substr(0, 19) + "…" : digest;
}

// Removes the layer files written, whatever happens.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& p : paths) ::unlink(p.c_str());
  }
};

}  // namespace

Result<PushResult> push_result(store::Store& store, const std::string& id, const spec::Spec& spec,
                               const PushOptions& options, const PushProgress& progress) {
  auto note = [&](const std::string& line) {
    if (progress) progress(line);
  };
  std::string_view name = options.reference;
  if (name.starts_with("docker://")) name.remove_prefix(9);
  KILN_ASSIGN_OR_RETURN(fetcher::RegistryReference ref,
                        with_context(fetcher::parse_registry_reference(name), "--push"));
  if (!ref.digest.empty())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("--push {}: name a tag, not a digest (the registry computes the digest)",
                                  options.reference));
  // A docker store keeps the result as an image: dockerd pushes it.
  {
    KILN_ASSIGN_OR_RETURN(auto dir, store.result(id));
    if (!dir) return make_error(ErrorKind::kNotFound, fmt::format("result {} is not in the store", id));
    if (auto image = read_file(*dir + "/docker-image", 4096)) {
      while (!image->empty() && (image->back() == '\n' || image->back() == ' ')) image->pop_back();
      FinalContext fc = final_context(spec);
      internal::FinalSettings settings;
      settings.env.assign(fc.context.env.begin(), fc.context.env.end());
      if (fc.workdir_set) settings.workdir = fc.context.workdir;
      if (fc.user_set) settings.user = user_text(fc.context.user);
      return internal::push_docker_image(*image, id, ref, settings, options, progress);
    }
  }
  PushResult result;
  result.reference = fetcher::to_string(ref);
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> chain, chain_of(store, id));
  // A (from …) step that reused an earlier unpack of the same image
  // (worker/builder/base_images.h) is a snapshot on that step's result: the
  // image starts at the spec's own (from …) step.
  const std::string from_id = ids::step_id_of(ids::encode_from_step(spec.from));
  if (auto it = std::find(chain.begin(), chain.end(), from_id); it != chain.end())
    chain.erase(chain.begin(), it);
  KILN_ASSIGN_OR_RETURN(std::string from_dir, rootfs_of(store, chain.front()));
  KILN_ASSIGN_OR_RETURN(ImageJson image, read_image_json(from_dir + "/image.json"));
  std::string why;
  KILN_ASSIGN_OR_RETURN(std::optional<BaseImage> base,
                        find_base_layers(image, options.registry.cache_dir, why));
  KILN_RETURN_IF_ERROR(ensure_dirs(options.tmp_dir));
  TempFiles temp;
  std::vector<Layer> layers;
  if (base) {
    for (const BaseLayer& b : base->layers)
      layers.push_back({b.digest, b.diff_id, b.media_type, b.host_path, b.size, true, ""});
    note(fmt::format("base {}: {} layer(s), reused by digest", image.reference, base->layers.size()));
  } else {
    note(fmt::format("base {}: its layers cannot be found again ({}); its filesystem goes up as one layer",
                     image.reference, why));
  }
  for (std::size_t i = base ? 1 : 0; i < chain.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::string upper, rootfs_of(store, chain[i]));
    std::string lower;
    if (i > 0) {
      KILN_ASSIGN_OR_RETURN(lower, rootfs_of(store, chain[i - 1]));
      lower += "/rootfs";
    }
    std::string path = fmt::format("{}/layer-{}-{}.tar.gz", options.tmp_dir, ::getpid(), i);
    temp.paths.push_back(path);
    KILN_ASSIGN_OR_RETURN(LayerBlob blob, write_layer_diff(lower, upper + "/rootfs", path));
    note(fmt::format("layer {}: step {} ({} entries, {})", layers.size() + 1, chain[i].substr(0, 12),
                     blob.entries, human_bytes(blob.size)));
    layers.push_back({blob.digest, blob.diff_id, std::string(kOciLayerGzip), path, blob.size, false,
                      i == 0 ? "kiln: " + image.reference : "kiln step " + chain[i]});
  }
  std::string config = make_config(base, image, final_context(spec), layers);
  std::string manifest = make_manifest(config, layers);

  fetcher::internal::RegistryClientOptions client_options;
  client_options.insecure_registries = options.registry.insecure_registries;
  client_options.ca_file = options.registry.ca_file;
  client_options.docker_config = options.registry.docker_config;
  client_options.push = true;
  if (!options.login.first.empty() || !options.login.second.empty())
    client_options.credentials = fetcher::internal::Credentials{options.login.first, options.login.second};
  KILN_ASSIGN_OR_RETURN(
      auto client, fetcher::internal::RegistryClient::create(client_options, ref.registry, ref.api_host()));
  std::string where = "pushing " + result.reference;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer& layer = layers[i];
    std::string label = fmt::format("layer {}/{} {} {}", i + 1, layers.size(), short_digest(layer.digest),
                                    human_bytes(layer.size));
    KILN_ASSIGN_OR_RETURN(bool exists,
                          with_context(client->blob_exists(ref.repository, layer.digest), where));
    if (exists) {
      note(label + " is already there");
      continue;
    }
    if (layer.from_base && base->registry == ref.registry && base->repository != ref.repository) {
      KILN_ASSIGN_OR_RETURN(
          bool mounted,
          with_context(client->mount_blob(ref.repository, layer.digest, base->repository), where));
      if (mounted) {
        note(label + " mounted from " + base->repository);
        continue;
      }
    }
    KILN_RETURN_IF_ERROR(
        with_context(client->put_blob(ref.repository, layer.digest,
                                      fetcher::internal::UploadBody{.file = layer.host_path}),
                     where));
    ++result.layers_uploaded;
    note(label + " uploaded");
  }
  std::string config_digest = "sha256:" + sha256_hex(config);
  KILN_ASSIGN_OR_RETURN(bool config_there,
                        with_context(client->blob_exists(ref.repository, config_digest), where));
  if (!config_there)
    KILN_RETURN_IF_ERROR(
        with_context(client->put_blob(ref.repository, config_digest,
                                      fetcher::internal::UploadBody{.file = "", .data = config}),
                     where));
  KILN_ASSIGN_OR_RETURN(result.digest, with_context(client->put_manifest(ref.repository, ref.tag,
                                                                         std::string(kOciManifest), manifest),
                                                    where));
  result.layers = layers.size();
  note(fmt::format("pushed {}@{}", result.reference, result.digest));
  return result;
}

}  // namespace kiln::pusher
