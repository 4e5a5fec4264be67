// The pushing half of RegistryClient (registry_client.h): blob existence,
// cross-repository mounts, monolithic blob uploads and manifest PUTs, over the
// same retries and login as pulls (scope repository:REPO:push,pull).
#include <fmt/format.h>

#include "common/sha256.h"
#include "worker/fetcher/internal/registry_client.h"
#include "worker/fetcher/internal/registry_http.h"

namespace kiln::fetcher::internal {
namespace {

Error unexpected_answer(const std::string& registry, const std::string& what, long status,
                        const std::string& body) {
  return Error(ErrorKind::kUnavailable, fmt::format("registry {}: {} answered HTTP {} ({})", registry, what,
                                                    status, describe_registry_error(body)));
}

}  // namespace

Result<bool> RegistryClient::blob_exists(const std::string& repository, const std::string& digest) {
  Request request;
  request.method = "HEAD";
  request.url = fmt::format("{}/v2/{}/blobs/{}", base_url_, repository, digest);
  request.what = fmt::format("HEAD blob {} of {}", digest, repository);
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status == 200) return true;
  if (response.status == 404) return false;
  return std::unexpected(unexpected_answer(registry_, request.what, response.status, response.body));
}

Result<RegistryClient::Response> RegistryClient::start_upload(const std::string& repository,
                                                              const std::string& query) {
  Request request;
  request.method = "POST";
  request.url = fmt::format("{}/v2/{}/blobs/uploads/{}", base_url_, repository, query);
  request.what = fmt::format("starting an upload to {}", repository);
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status != 201 && response.status != 202)
    return std::unexpected(unexpected_answer(registry_, request.what, response.status, response.body));
  return response;
}

std::string RegistryClient::upload_url(const std::string& location, const std::string& digest) const {
  std::string url = location;
  if (url.starts_with("/")) url = base_url_ + url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "digest=" + digest;
}

Result<bool> RegistryClient::mount_blob(const std::string& repository, const std::string& digest,
                                        const std::string& from_repository) {
  KILN_ASSIGN_OR_RETURN(Response response,
                        start_upload(repository, fmt::format("?mount={}&from={}", digest, from_repository)));
  // 202: the registry did not mount (it may not hold it, or we may not read
  // FROM) and opened an ordinary upload instead, left to expire.
  return response.status == 201;
}

Status RegistryClient::put_blob(const std::string& repository, const std::string& digest,
                                const UploadBody& body) {
  KILN_ASSIGN_OR_RETURN(Response started, start_upload(repository, ""));
  std::string location = started.header("location");
  if (location.empty())
    return make_error(
        ErrorKind::kUnavailable,
        fmt::format("registry {}: starting an upload to {} answered no Location", registry_, repository));
  Request request;
  request.method = "PUT";
  request.url = upload_url(location, digest);
  request.what = fmt::format("uploading blob {} to {}", digest, repository);
  request.headers.push_back("Content-Type: application/octet-stream");
  request.upload = &body;
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status != 201)
    return std::unexpected(unexpected_answer(registry_, request.what, response.status, response.body));
  return {};
}

Result<std::string> RegistryClient::put_manifest(const std::string& repository, const std::string& reference,
                                                 const std::string& media_type, const std::string& content) {
  UploadBody body{.file = "", .data = content};
  Request request;
  request.method = "PUT";
  request.url = fmt::format("{}/v2/{}/manifests/{}", base_url_, repository, reference);
  request.what = fmt::format("PUT manifest {} of {}", reference, repository);
  request.headers.push_back("Content-Type: " + media_type);
  request.upload = &body;
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status != 201 && response.status != 200)
    return std::unexpected(unexpected_answer(registry_, request.what, response.status, response.body));
  std::string digest = "sha256:" + sha256_hex(content);
  std::string said = response.header("docker-content-digest");
  if (!said.empty() && said != digest)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("registry {}: stored manifest {} of {} as {}, not {} as sent", registry_,
                                  reference, repository, said, digest));
  return digest;
}

}  // namespace kiln::fetcher::internal
