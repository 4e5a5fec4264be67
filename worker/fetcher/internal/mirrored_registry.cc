#include "worker/fetcher/internal/mirrored_registry.h"

#include <fmt/format.h>

#include <algorithm>

namespace kiln::fetcher::internal {

Result<std::unique_ptr<MirroredRegistry>> MirroredRegistry::create(const RegistryClientOptions& options,
                                                                   const RegistryReference& ref,
                                                                   const std::vector<RegistryMirror>& mirrors,
                                                                   Note note) {
  std::unique_ptr<MirroredRegistry> out(new MirroredRegistry());
  out->registry_ = ref.registry;
  out->note_ = std::move(note);
  for (const RegistryMirror& mirror : mirrors) {
    RegistryClientOptions mirror_options = options;
    // The URL's scheme decides, and a mirror that fails is left for the
    // registry quickly: one retry, not the registry's four attempts.
    if (mirror.plain_http) mirror_options.insecure_registries.push_back(mirror.host);
    mirror_options.attempts = std::min(options.attempts, 2);
    auto endpoint = std::make_unique<Endpoint>();
    KILN_ASSIGN_OR_RETURN(endpoint->client,
                          with_context(RegistryClient::create(mirror_options, mirror.host, mirror.host),
                                       "--registry-mirror " + mirror.url));
    endpoint->mirror = true;
    out->endpoints_.push_back(std::move(endpoint));
  }
  auto registry = std::make_unique<Endpoint>();
  KILN_ASSIGN_OR_RETURN(registry->client, RegistryClient::create(options, ref.registry, ref.api_host()));
  out->endpoints_.push_back(std::move(registry));
  return out;
}

template <typename T>
Result<T> MirroredRegistry::each_endpoint(
    std::string_view what, const std::function<Result<T>(RegistryClient&, bool mirror)>& request) {
  for (auto& endpoint : endpoints_) {
    if (endpoint->unreachable.load()) continue;
    Result<T> result = request(*endpoint->client, endpoint->mirror);
    if (result || !endpoint->mirror || result.error().kind() == ErrorKind::kCancelled) return result;
    if (result.error().kind() == ErrorKind::kUnavailable) endpoint->unreachable = true;
    if (note_)
      note_(fmt::format("mirror {} failed {}: {}; asking {}", endpoint->client->base_url(), what,
                        result.error().message(), registry_));
  }
  return make_error(ErrorKind::kInternal, "no registry endpoint");  // the registry is always last
}

Result<RegistryClient::Manifest> MirroredRegistry::get_manifest(const std::string& repository,
                                                                const std::string& reference) {
  return each_endpoint<RegistryClient::Manifest>(
      fmt::format("manifest {}:{}", repository, reference),
      [&](RegistryClient& client, bool) { return client.get_manifest(repository, reference); });
}

Status MirroredRegistry::get_blob(const std::string& repository, const std::string& digest,
                                  BlobWriter& writer, const std::function<void(std::uint64_t)>& on_bytes) {
  auto done = each_endpoint<bool>(
      fmt::format("blob {}", digest), [&](RegistryClient& client, bool mirror) -> Result<bool> {
        KILN_RETURN_IF_ERROR(writer.reset());
        KILN_RETURN_IF_ERROR(client.get_blob(repository, digest, writer, on_bytes));
        // What a mirror served is checked before it counts: a wrong blob goes
        // to the next endpoint (the registry's is checked by the commit).
        if (mirror) KILN_RETURN_IF_ERROR(writer.verify("mirror " + client.base_url()));
        return true;
      });
  if (!done) return std::unexpected(done.error());
  return {};
}

std::string MirroredRegistry::describe() const {
  std::string out;
  for (const auto& endpoint : endpoints_) {
    if (!out.empty()) out += ", then ";
    out += endpoint->client->base_url();
    if (endpoint->mirror) out += " (mirror)";
  }
  return out;
}

}  // namespace kiln::fetcher::internal
