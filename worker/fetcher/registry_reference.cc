#include "worker/fetcher/registry_reference.h"

#include <fmt/format.h>

#include <cctype>

#include <string>

#include "common/sha256.h"

namespace kiln::fetcher {
namespace {

constexpr std::size_t kMaxNameLength = 255;

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
bool is_path_component(std::string_view s) {
  if (s.empty() || !is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  for (std::size_t i = 0; i < s.size();) {
    if (is_lower_alnum(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && !is_lower_alnum(s[j])) ++j;
    std::string_view sep = s.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
    i = j;
  }
  return true;
}

bool is_tag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s.front())) return false;
  for (char c : s)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

bool is_port(std::string_view port) {
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  return std::stoul(std::string(port)) <= 65535;
}

// HOST[:PORT]: letters, digits, '-', '.', or a bracketed IPv6 address.
bool is_registry_host(std::string_view s) {
  if (s.empty()) return false;
  std::string_view host = s;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view rest = host.substr(close + 1);
    if (rest.empty()) return true;
    host = rest;
    if (host.front() != ':') return false;
    return is_port(host.substr(1));
  }
  auto colon = host.find(':');
  if (colon != std::string_view::npos) {
    if (!is_port(host.substr(colon + 1))) return false;
    host = host.substr(0, colon);
  }
  if (host.empty()) return false;
  for (char c : host)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return false;
  return host.front() != '-' && host.front() != '.' && host.back() != '-' && host.back() != '.';
}

Error bad(std::string_view text, std::string_view what) {
  return Error(ErrorKind::kInvalidArgument, fmt::format("image reference \"{}\": {}", text, what));
}

}  // namespace

Result<RegistryMirror> parse_registry_mirror(std::string_view url) {
  RegistryMirror mirror;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
    mirror.plain_http = true;
  } else {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("--registry-mirror {:?}: expected https://HOST[:PORT] or http://HOST[:PORT]", url));
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  bool valid = !rest.empty();
  for (char c : rest)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' ||
          c == ']'))
      valid = false;
  if (!valid)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("--registry-mirror {:?}: expected https://HOST[:PORT] or http://HOST[:PORT], "
                    "with no path (a mirror serves /v2/ at its root)",
                    url));
  mirror.host = std::string(rest);
  mirror.url = (mirror.plain_http ? "http://" : "https://") + mirror.host;
  return mirror;
}

std::string RegistryReference::api_host() const {
  return registry == "docker.io" ? "registry-1.docker.io" : registry;
}

Result<RegistryReference> parse_registry_reference(std::string_view text) {
  RegistryReference ref;
  std::string_view rest = text;
  if (rest.empty()) return std::unexpected(bad(text, "empty"));
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    auto colon = digest.find(':');
    if (colon == std::string_view::npos)
      return std::unexpected(bad(text, fmt::format("\"{}\" is not a digest (sha256:HEX)", digest)));
    if (digest.substr(0, colon) != "sha256")
      return make_error(ErrorKind::kUnsupported,
                        fmt::format("image reference \"{}\": kiln verifies sha256 digests only", text));
    if (!is_sha256_hex(digest.substr(colon + 1)))
      return std::unexpected(
          bad(text, fmt::format("\"{}\" is not a sha256 digest (64 lowercase hex digits)", digest)));
    ref.digest = std::string(digest);
  }
  // The tag: after the last ':' that comes after the last '/'.
  std::size_t last_slash = rest.rfind('/');
  std::size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!is_tag(tag))
      return std::unexpected(bad(
          text, fmt::format("\"{}\" is not a valid tag (letters, digits, '_', '.', '-'; at most 128)", tag)));
    ref.tag = std::string(tag);
    ref.tag_given = true;
    rest = rest.substr(0, colon);
  } else if (ref.digest.empty()) {
    ref.tag = "latest";
  }
  std::string_view path = rest;
  auto slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        first.find('[') != std::string_view::npos) {
      if (!is_registry_host(first))
        return std::unexpected(bad(text, fmt::format("\"{}\" is not a registry HOST[:PORT]", first)));
      ref.registry = std::string(first);
      path = rest.substr(slash + 1);
    }
  }
  if (ref.registry.empty() || ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io")
    ref.registry = "docker.io";
  if (path.empty()) return std::unexpected(bad(text, "no repository name"));
  std::size_t start = 0;
  while (true) {
    std::size_t end = path.find('/', start);
    std::string_view component = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (!is_path_component(component)) {
      bool upper = false;
      for (char c : component) upper = upper || (c >= 'A' && c <= 'Z');
      return std::unexpected(
          bad(text, upper ? "repository names are lowercase"
                          : fmt::format("\"{}\" is not a valid repository component (lowercase letters and "
                                        "digits, separated by '.', '_', '__' or '-')",
                                        component)));
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  ref.repository = std::string(path);
  if (ref.registry == "docker.io" && path.find('/') == std::string_view::npos)
    ref.repository = "library/" + ref.repository;
  // Checked as the registry will see it (with "library/"), so that a parsed
  // reference printed in full parses again.
  if (ref.repository.size() > kMaxNameLength)
    return std::unexpected(bad(
        text, fmt::format("the repository name {}is longer than {}",
                          ref.repository.size() != path.size() ? "(with its library/ prefix) " : "", kMaxNameLength)));
  return ref;
}

std::string to_string(const RegistryReference& ref) {
  std::string out = ref.registry + "/" + ref.repository;
  if (!ref.tag.empty()) out += ":" + ref.tag;
  if (!ref.digest.empty()) out += "@" + ref.digest;
  return out;
}

}  // namespace kiln::fetcher
