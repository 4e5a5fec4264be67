#include "worker/fetcher/internal/registry_auth.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace kiln::fetcher::internal {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Strips a scheme and a trailing path: "https://host:5000/v1/" -> "host:5000".
std::string host_of_config_key(std::string_view key) {
  if (auto scheme = key.find("://"); scheme != std::string_view::npos) key = key.substr(scheme + 3);
  if (auto slash = key.find('/'); slash != std::string_view::npos) key = key.substr(0, slash);
  return std::string(key);
}

}  // namespace

Result<AuthChallenge> parse_www_authenticate(std::string_view header) {
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t')) ++i;
  };
  skip_space();
  std::size_t start = i;
  while (i < header.size() && header[i] != ' ') ++i;
  AuthChallenge challenge;
  challenge.scheme = lower(header.substr(start, i - start));
  if (challenge.scheme.empty())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("WWW-Authenticate {:?} names no scheme", header));
  while (i < header.size()) {
    skip_space();
    while (i < header.size() && header[i] == ',') {
      ++i;
      skip_space();
    }
    std::size_t key_start = i;
    while (i < header.size() && header[i] != '=' && header[i] != ' ' && header[i] != ',') ++i;
    std::string key = lower(header.substr(key_start, i - key_start));
    if (i >= header.size() || header[i] != '=') break;  // a second scheme or token68: not needed
    ++i;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      if (i >= header.size())
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("WWW-Authenticate {:?}: unterminated quoted value", header));
      ++i;
    } else {
      while (i < header.size() && header[i] != ',' && header[i] != ' ') value += header[i++];
    }
    if (!key.empty()) challenge.params[key] = value;
  }
  return challenge;
}

std::string docker_config_path(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0')
    return std::string(dir) + "/config.json";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.docker/config.json";
  return "";
}

Result<std::optional<Credentials>> docker_config_credentials(const std::string& config_path,
                                                             const std::string& registry) {
  if (config_path.empty() || !path_exists(config_path)) return std::optional<Credentials>();
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(config_path, 4 << 20));
  auto config = nlohmann::json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("the docker config {} is not valid JSON; fix it or point --docker-config "
                                  "elsewhere",
                                  config_path));
  auto auths = config.find("auths");
  if (auths == config.end() || !auths->is_object()) return std::optional<Credentials>();
  for (const auto& [key, entry] : auths->items()) {
    std::string host = host_of_config_key(key);
    bool matches = host == registry ||
                   (registry == "docker.io" && (host == "index.docker.io" || host == "registry-1.docker.io"));
    if (!matches || !entry.is_object()) continue;
    Credentials creds;
    if (auto auth = entry.find("auth");
        auth != entry.end() && auth->is_string() && !auth->get<std::string>().empty()) {
      auto decoded = base64_decode(auth->get<std::string>());
      auto colon = decoded ? decoded->find(':') : std::string::npos;
      if (!decoded || colon == std::string::npos)
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("the docker config {}: auths[{:?}].auth is not base64 of USER:PASSWORD",
                                      config_path, key));
      creds.username = decoded->substr(0, colon);
      creds.password = decoded->substr(colon + 1);
      return std::optional<Credentials>(std::move(creds));
    }
    if (entry.contains("username") && entry["username"].is_string()) {
      creds.username = entry["username"].get<std::string>();
      if (entry.contains("password") && entry["password"].is_string())
        creds.password = entry["password"].get<std::string>();
      return std::optional<Credentials>(std::move(creds));
    }
  }
  return std::optional<Credentials>();
}

}  // namespace kiln::fetcher::internal
