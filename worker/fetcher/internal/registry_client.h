// Internal to worker/fetcher (and worker/pusher, which pushes with it): a
// client of one registry's OCI distribution API
// (https://github.com/opencontainers/distribution-spec) over libcurl —
// manifests by tag or digest, blobs streamed into the blob cache; with
// options.push, blob checks, mounts, uploads and manifest PUTs
// (registry_client_push.cc) — with the login the registry asks for:
// anonymous, a bearer token from the realm its `WWW-Authenticate` names
// (scope `repository:REPO:pull`, or `repository:REPO:push,pull` for a push
// client, with the docker config's credentials when it has some), or basic
// auth.
//
//   RegistryClient client(options, ref.registry, ref.api_host());
//   KILN_ASSIGN_OR_RETURN(auto manifest, client.get_manifest(ref.repository, "3.19"));
//   KILN_ASSIGN_OR_RETURN(auto writer, cache.begin(layer.digest, layer.size));
//   KILN_RETURN_IF_ERROR(client.get_blob(ref.repository, layer.digest, *writer, on_bytes));
//   KILN_RETURN_IF_ERROR(writer->commit(...));
//
// Contract: HTTPS with the system CAs plus options.ca_file; plain HTTP only
// for a registry listed in options.insecure_registries. Connection failures,
// resets and 5xx/429 answers are retried with exponential backoff
// (options.attempts in all; a blob download starts over, writer reset). A
// manifest is at most 4 MiB and is checked against the digest asked for, or
// the Docker-Content-Digest the registry sent. Errors name the registry and
// say what to do: kUnavailable (unknown host, cannot connect, TLS),
// kPermissionDenied (401/403, naming the scope), kNotFound (manifest or blob
// unknown), kInvalidArgument (digest mismatch, oversized answer).
// Thread safety: all methods may be called from several threads at once
// (each request uses its own connection; tokens are shared under a lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/fetcher/internal/blob_cache.h"
#include "worker/fetcher/internal/registry_auth.h"

namespace kiln::fetcher::internal {

struct RegistryClientOptions {
  std::vector<std::string> insecure_registries;  // HOST:PORT spoken to over plain HTTP
  std::string ca_file;                           // PEM, trusted besides the system CAs
  std::string docker_config;                     // credentials file ("" = the default place)
  int attempts = 4;
  std::chrono::milliseconds first_backoff{250};
  // Fired: a request in progress is aborted (within about a second, also in
  // the middle of a blob) and none is retried: kCancelled. May be null.
  const CancelToken* cancel = nullptr;
  // Log in for pushing: tokens are asked with scope repository:REPO:push,pull.
  bool push = false;
  // Used instead of the docker config's credentials when set.
  std::optional<Credentials> credentials;
};

// What a PUT sends: a file's content, or bytes held in memory.
struct UploadBody {
  std::string file;  // read from here when not empty
  std::string data;  // else these bytes
};

class RegistryClient {
 public:
  // `registry` as written in references (docker.io, HOST:PORT); `api_host`
  // where its API answers. Fails when ca_file cannot be read as PEM
  // certificates or the docker config is malformed.
  static Result<std::unique_ptr<RegistryClient>> create(RegistryClientOptions options, std::string registry,
                                                        std::string api_host);

  struct Manifest {
    std::string content;
    std::string media_type;  // Content-Type, parameters stripped
    std::string digest;      // sha256 of content, checked
  };
  // GET /v2/REPO/manifests/REFERENCE (a tag or sha256:HEX).
  Result<Manifest> get_manifest(const std::string& repository, const std::string& reference);

  // GET /v2/REPO/blobs/DIGEST into `writer` (not committed here). `on_bytes`
  // is called with the bytes received so far, from this thread.
  Status get_blob(const std::string& repository, const std::string& digest, BlobWriter& writer,
                  const std::function<void(std::uint64_t)>& on_bytes);

  // Pushing (registry_client_push.cc; the client must be made with options.push).
  // HEAD /v2/REPO/blobs/DIGEST: whether the repository holds the blob.
  Result<bool> blob_exists(const std::string& repository, const std::string& digest);
  // POST /v2/REPO/blobs/uploads/?mount=DIGEST&from=FROM: true when the
  // registry linked the blob from repository FROM (false: not mounted).
  Result<bool> mount_blob(const std::string& repository, const std::string& digest,
                          const std::string& from_repository);
  // Uploads a blob in one PUT (POST /v2/REPO/blobs/uploads/, then PUT
  // LOCATION?digest=DIGEST); the registry checks the digest.
  Status put_blob(const std::string& repository, const std::string& digest, const UploadBody& body);
  // PUT /v2/REPO/manifests/REFERENCE; returns the manifest's digest (sha256 of
  // `content`, checked against the Docker-Content-Digest the registry answers).
  Result<std::string> put_manifest(const std::string& repository, const std::string& reference,
                                   const std::string& media_type, const std::string& content);

  // "http://HOST:PORT" or "https://HOST".
  const std::string& base_url() const { return base_url_; }

 private:
  RegistryClient() = default;
  struct Response;
  struct Request;
  Result<Response> perform_with_retries(Request& request);
  Result<Response> perform_authorized(Request& request, const std::string& repository);
  Status log_in(const std::string& repository, const std::string& challenge_header);
  std::string scope_of(const std::string& repository) const {
    return "repository:" + repository + (options_.push ? ":push,pull" : ":pull");
  }
  // Where the credentials came from, for messages.
  std::string credentials_source() const {
    return options_.credentials ? std::string(
                                      "the login sent with the job (kiln submit --push reads it from "
                                      "the submitter's docker config)")
                                : docker_config_path(options_.docker_config);
  }
  // POST /v2/REPO/blobs/uploads/ (with `query`); the answer, status 201 or 202.
  Result<Response> start_upload(const std::string& repository, const std::string& query);
  std::string upload_url(const std::string& location, const std::string& digest) const;

  RegistryClientOptions options_;
  std::string registry_;
  std::string base_url_;
  std::string ca_pem_;
  std::optional<Credentials> credentials_;
  std::mutex mutex_;                                  // guards authorization_
  std::map<std::string, std::string> authorization_;  // repository -> Authorization header value
};

}  // namespace kiln::fetcher::internal
