// Internal to worker/fetcher: the registry one pull talks to, with the
// mirrors configured for it (`--registry-mirror`, docs/images.md,
// "Mirrors") asked first. Each request goes to the first mirror still
// usable; when a mirror fails it (unreachable, 404, 5xx, a digest mismatch)
// the next one is asked, and the registry itself last. A mirror that cannot
// be reached is not asked again by this pull.
//
//   KILN_ASSIGN_OR_RETURN(auto registry, MirroredRegistry::create(options, ref, mirrors, note));
//   KILN_ASSIGN_OR_RETURN(auto manifest, registry->get_manifest(ref.repository, ref.tag));
//   KILN_RETURN_IF_ERROR(registry->get_blob(ref.repository, digest, *writer, on_bytes));
//
// Contract: what is fetched is verified as RegistryClient does, whoever
// serves it; a blob is started over (writer reset) on the next endpoint. The
// error returned is the registry's own (a mirror's failures are only noted).
// `note` receives one line per fallback. Thread safety: get_manifest and
// get_blob may be called from several threads at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "worker/fetcher/internal/registry_client.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::fetcher::internal {

class MirroredRegistry {
 public:
  using Note = std::function<void(std::string_view line)>;

  static Result<std::unique_ptr<MirroredRegistry>> create(const RegistryClientOptions& options,
                                                          const RegistryReference& ref,
                                                          const std::vector<RegistryMirror>& mirrors,
                                                          Note note);

  Result<RegistryClient::Manifest> get_manifest(const std::string& repository, const std::string& reference);
  Status get_blob(const std::string& repository, const std::string& digest, BlobWriter& writer,
                  const std::function<void(std::uint64_t)>& on_bytes);

  // Where requests go: "http://127.0.0.1:5001 (mirror), then https://registry-1.docker.io".
  std::string describe() const;

 private:
  struct Endpoint {
    std::unique_ptr<RegistryClient> client;
    bool mirror = false;
    std::atomic<bool> unreachable{false};
  };
  MirroredRegistry() = default;
  // Calls `request` on each usable endpoint in turn until one succeeds.
  template <typename T>
  Result<T> each_endpoint(std::string_view what,
                          const std::function<Result<T>(RegistryClient&, bool mirror)>& request);

  std::string registry_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;  // mirrors first, the registry last
  Note note_;
};

}  // namespace kiln::fetcher::internal
