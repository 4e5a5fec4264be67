#include "worker/pusher/docker_push.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "worker/docker/docker_client.h"
#include "worker/fetcher/internal/registry_auth.h"

namespace kiln::pusher::internal {
namespace {

// A refused login reads as such, whatever words the registry chose.
Error classify(Error error) {
  std::string text = error.to_string();
  std::ranges::transform(text, text.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text.find("unauthorized") != std::string::npos || text.find("denied") != std::string::npos ||
      text.find("authentication required") != std::string::npos ||
      text.find("no basic auth credentials") != std::string::npos)
    return Error(ErrorKind::kPermissionDenied,
                 error.to_string() + " (log in with `docker login` for this registry, or give the login)");
  return error;
}

}  // namespace

std::vector<std::string> merged_env(std::vector<std::string> env,
                                    const std::vector<std::pair<std::string, std::string>>& settings) {
  for (const auto& [name, value] : settings) {
    std::string binding = name + "=" + value;
    auto same =
        std::ranges::find_if(env, [&](const std::string& e) { return e.substr(0, e.find('=')) == name; });
    if (same != env.end()) {
      *same = std::move(binding);
    } else {
      env.push_back(std::move(binding));
    }
  }
  return env;
}

std::string docker_registry_auth(const std::string& username, const std::string& password,
                                 const std::string& registry) {
  nlohmann::json auth = {{"username", username}, {"password", password}, {"serveraddress", registry}};
  std::string encoded = base64_encode(auth.dump());
  // dockerd decodes it as base64url.
  std::ranges::replace(encoded, '+', '-');
  std::ranges::replace(encoded, '/', '_');
  return encoded;
}

Result<PushResult> push_docker_image(const std::string& image, const std::string& id,
                                     const fetcher::RegistryReference& ref, const FinalSettings& settings,
                                     const PushOptions& options, const PushProgress& progress) {
  auto note = [&](const std::string& line) {
    if (progress) progress(line);
  };
  PushResult result;
  result.reference = fetcher::to_string(ref);
  const std::string where = "pushing " + result.reference + " through dockerd " + options.docker_host;
  KILN_ASSIGN_OR_RETURN(auto client,
                        with_context(docker::DockerClient::create({.host = options.docker_host}), where));
  KILN_ASSIGN_OR_RETURN(docker::ImageInfo info,
                        with_context(client->inspect_image(image), "finding the image of result " + id));

  // Credentials first: a malformed docker config fails before anything is
  // made. dockerd wants the header even for no login ({}).
  std::string auth = "e30=";
  if (!options.login.first.empty() || !options.login.second.empty()) {
    auth = docker_registry_auth(options.login.first, options.login.second, ref.registry);
  } else {
    KILN_ASSIGN_OR_RETURN(
        auto credentials,
        fetcher::internal::docker_config_credentials(
            fetcher::internal::docker_config_path(options.registry.docker_config), ref.registry));
    if (credentials) auth = docker_registry_auth(credentials->username, credentials->password, ref.registry);
  }

  // The container that carries the final config; labelled as the store's own
  // so that a crash before its removal leaves nothing the next open misses.
  const std::string prefix = image.substr(0, image.rfind(':'));
  docker::ContainerSpec spec{.image = image,
                             .cmd = info.cmd,
                             .labels = {{"kiln.store", prefix}, {"kiln.kind", "push"}, {"kiln.step", id}}};
  if (!info.entrypoint.empty()) spec.entrypoint = info.entrypoint;
  // dockerd refuses a container without a command; this one never starts.
  if (info.entrypoint.empty() && info.cmd.empty()) spec.cmd = {"/bin/sh"};
  KILN_ASSIGN_OR_RETURN(std::string container, with_context(client->create_container(spec, ""), where));
  const std::string name = ref.registry + "/" + ref.repository;
  bool tagged = false;
  struct Cleanup {
    docker::DockerClient& client;
    const std::string& container;
    std::string tagged_name;
    bool& tagged;
    ~Cleanup() {
      if (auto s = client.remove_container(container); !s)
        spdlog::warn("push: removing container {}: {}", container, s.error().to_string());
      if (tagged) {
        if (auto s = client.remove_image(tagged_name); !s)
          spdlog::warn("push: removing the pushed name {}: {}", tagged_name, s.error().to_string());
      }
    }
  } cleanup{*client, container, name + ":" + ref.tag, tagged};

  // kiln's own labels are emptied: a container run from the pushed image is
  // not one of the store's (whose leftovers a store's open removes).
  docker::CommitOptions commit{.repo = name,
                               .tag = ref.tag,
                               .labels = {{"kiln.store", ""}, {"kiln.kind", ""}, {"kiln.step", id}},
                               .entrypoint = info.entrypoint,
                               .cmd = info.cmd,
                               .env = merged_env(info.env, settings.env),
                               .working_dir = settings.workdir.value_or(info.working_dir),
                               .user = settings.user.value_or(info.user)};
  KILN_RETURN_IF_ERROR(with_context(client->commit(container, commit), where));
  tagged = true;
  note(fmt::format("{} {}: the config of step {} (dockerd pushes it)", name, ref.tag, id.substr(0, 12)));

  std::set<std::string> layers, uploaded;
  auto on_progress = [&](const docker::PullProgress& p) {
    if (p.id.empty() || p.id == ref.tag) return;
    bool pushed = p.status == "Pushed";
    bool reused = p.status == "Layer already exists" || p.status.starts_with("Mounted from");
    if (!pushed && !reused) return;
    layers.insert(p.id);
    if (pushed) uploaded.insert(p.id);
    note(fmt::format("layer {}: {}", p.id, pushed ? "uploaded" : p.status));
  };
  auto digest = client->push_image(name, ref.tag, auth, on_progress, nullptr);
  if (!digest) return std::unexpected(classify(std::move(digest).error()).with_context(where));
  result.digest = std::move(*digest);
  result.layers = layers.size();
  result.layers_uploaded = uploaded.size();
  note(fmt::format("pushed {}@{}", result.reference, result.digest));
  return result;
}

}  // namespace kiln::pusher::internal
