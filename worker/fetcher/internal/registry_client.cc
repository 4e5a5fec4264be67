#include "worker/fetcher/internal/registry_client.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/fs.h"
#include "common/sha256.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/internal/registry_http.h"

namespace kiln::fetcher::internal {

namespace {

constexpr std::size_t kMaxManifestBytes = 4 << 20;
constexpr long kConnectTimeoutSeconds = 20;
constexpr long kLowSpeedSeconds = 60;  // abort a transfer that moves no byte for this long
constexpr long kMaxRedirects = 5;

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

// Adds the PEM certificates of --registry-ca to the trust store curl built
// from the system's CAs (CURLOPT_CAINFO would replace them).
CURLcode add_ca_certificates(CURL*, void* ssl_ctx, void* pem_text) {
  const auto* pem = static_cast<const std::string*>(pem_text);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  if (bio == nullptr) return CURLE_OUT_OF_MEMORY;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);  // fails only for a duplicate: harmless
    X509_free(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  return CURLE_OK;
}

int count_certificates(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int n = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    ++n;
    X509_free(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  return n;
}

bool is_retryable(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
  }
}

bool is_tls_failure(CURLcode code) {
  return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CONNECT_ERROR ||
         code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CACERT_BADFILE;
}

// "MANIFEST_UNKNOWN: manifest unknown" from a registry's JSON error body.
std::string describe_error_body(const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  std::string out;
  if (json.is_object() && json.contains("errors") && json["errors"].is_array()) {
    for (const auto& e : json["errors"]) {
      if (!e.is_object()) continue;
      if (!out.empty()) out += "; ";
      out += e.value("code", "") + ": " + e.value("message", "");
    }
  }
  if (out.empty()) {
    out = body.substr(0, 200);
    std::replace(out.begin(), out.end(), '\n', ' ');
  }
  return out;
}

}  // namespace

std::string describe_registry_error(const std::string& body) {
  return describe_error_body(body);
}

namespace {

struct Transfer {
  CURL* curl = nullptr;
  const RegistryClient* client = nullptr;
  BlobWriter* sink = nullptr;
  const std::function<void(std::uint64_t)>* on_bytes = nullptr;
  std::size_t max_body = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  std::optional<Error> sink_error;
  bool body_too_large = false;
  const CancelToken* cancel = nullptr;
};

// libcurl calls this at least once a second, also while no byte arrives.
int on_transfer_info(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancel != nullptr && t->cancel->cancelled() ? 1 : 0;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 300 && status < 400) return n;  // a redirect's own body
  if (t->sink != nullptr && status == 200) {
    if (auto s = t->sink->write(std::string_view(data, n)); !s) {
      t->sink_error = std::move(s).error();
      return 0;
    }
    if (t->on_bytes != nullptr && *t->on_bytes) (*t->on_bytes)(t->sink->written());
    return n;
  }
  if (t->body.size() + n > t->max_body) {
    t->body_too_large = true;
    return 0;
  }
  t->body.append(data, n);
  return n;
}

// A PUT's body, read again from its start at every attempt.
struct UploadReader {
  const UploadBody* body = nullptr;
  std::FILE* file = nullptr;
  std::size_t offset = 0;
  ~UploadReader() {
    if (file != nullptr) std::fclose(file);
  }
};

std::size_t on_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* r = static_cast<UploadReader*>(user);
  std::size_t want = size * count;
  if (r->file != nullptr) {
    std::size_t n = std::fread(buffer, 1, want, r->file);
    if (n == 0 && std::ferror(r->file)) return CURL_READFUNC_ABORT;
    return n;
  }
  std::size_t n = std::min(want, r->body->data.size() - r->offset);
  std::memcpy(buffer, r->body->data.data() + r->offset, n);
  r->offset += n;
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    t->headers.clear();  // a new answer (after a redirect or 100-continue)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    t->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * count;
}

}  // namespace

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(RegistryClientOptions options,
                                                               std::string registry, std::string api_host) {
  init_curl_once();
  std::unique_ptr<RegistryClient> client(new RegistryClient());
  bool insecure = std::find(options.insecure_registries.begin(), options.insecure_registries.end(),
                            registry) != options.insecure_registries.end() ||
                  std::find(options.insecure_registries.begin(), options.insecure_registries.end(),
                            api_host) != options.insecure_registries.end();
  client->base_url_ = (insecure ? "http://" : "https://") + api_host;
  if (!options.ca_file.empty()) {
    KILN_ASSIGN_OR_RETURN(client->ca_pem_,
                          with_context(read_file(options.ca_file, 4 << 20), "--registry-ca"));
    if (count_certificates(client->ca_pem_) == 0)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("--registry-ca {}: no PEM certificate in it (expected -----BEGIN "
                                    "CERTIFICATE-----)",
                                    options.ca_file));
  }
  if (options.credentials) {
    client->credentials_ = options.credentials;
  } else {
    KILN_ASSIGN_OR_RETURN(client->credentials_,
                          docker_config_credentials(docker_config_path(options.docker_config), registry));
  }
  client->options_ = std::move(options);
  client->registry_ = std::move(registry);
  return client;
}

Result<RegistryClient::Response> RegistryClient::perform_with_retries(Request& request) {
  std::string last_failure;
  for (int attempt = 1; attempt <= std::max(1, options_.attempts); ++attempt) {
    auto cancelled = [&] {
      return make_error(ErrorKind::kCancelled,
                        fmt::format("registry {}: {}: cancelled", registry_, request.what));
    };
    if (attempt > 1) {
      auto backoff = options_.first_backoff * (1 << (attempt - 2));
      if (options_.cancel == nullptr) {
        std::this_thread::sleep_for(backoff);
      } else if (options_.cancel->wait_for(backoff)) {
        return cancelled();
      }
      if (request.sink != nullptr) KILN_RETURN_IF_ERROR(request.sink->reset());
    }
    if (options_.cancel != nullptr && options_.cancel->cancelled()) return cancelled();
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return make_error(ErrorKind::kInternal, "curl_easy_init failed");
    Transfer t;
    t.curl = curl;
    t.sink = request.sink;
    t.on_bytes = request.on_bytes;
    t.max_body = request.max_body;
    t.cancel = options_.cancel;
    char error_buffer[CURL_ERROR_SIZE] = {};
    curl_slist* headers = nullptr;
    for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
    if (!request.authorization.empty())
      headers = curl_slist_append(headers, ("Authorization: " + request.authorization).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, kMaxRedirects);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, kLowSpeedSeconds);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    if (options_.cancel != nullptr) {
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_transfer_info);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    }
    if (!ca_pem_.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, add_ca_certificates);
      curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &ca_pem_);
    }
    UploadReader upload;
    if (request.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (request.method == "PUT") {
      upload.body = request.upload;
      curl_off_t size = static_cast<curl_off_t>(request.upload->data.size());
      if (!request.upload->file.empty()) {
        upload.file = std::fopen(request.upload->file.c_str(), "rbe");
        if (upload.file == nullptr) {
          curl_slist_free_all(headers);
          curl_easy_cleanup(curl);
          return errno_error("cannot read " + request.upload->file);
        }
        std::fseek(upload.file, 0, SEEK_END);
        size = static_cast<curl_off_t>(std::ftell(upload.file));
        std::fseek(upload.file, 0, SEEK_SET);
      }
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_upload);
      curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, size);
    }
    CURLcode code = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    std::string message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);

    if (code == CURLE_ABORTED_BY_CALLBACK && options_.cancel != nullptr && options_.cancel->cancelled())
      return cancelled();
    if (t.sink_error) return std::unexpected(std::move(*t.sink_error));
    if (t.body_too_large)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("registry {}: the answer to {} ({}) is larger than {} bytes; refused",
                                    registry_, request.what, request.url, request.max_body));
    if (code == CURLE_COULDNT_RESOLVE_HOST)
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("registry {}: unknown host ({}); check the registry name in the image "
                                    "reference, and that this machine can resolve it",
                                    registry_, message));
    if (is_tls_failure(code))
      return make_error(
          ErrorKind::kUnavailable,
          fmt::format("registry {}: TLS with {} failed ({}); pass --registry-ca FILE to trust its "
                      "CA, or --insecure-registry {} if it serves plain HTTP",
                      registry_, base_url_, message, registry_));
    if (code != CURLE_OK) {
      last_failure = message;
      if (is_retryable(code)) continue;
      return make_error(ErrorKind::kUnavailable, fmt::format("registry {}: {} ({}) failed: {}", registry_,
                                                             request.what, request.url, message));
    }
    Response response;
    response.status = status;
    response.body = std::move(t.body);
    response.headers = std::move(t.headers);
    if ((status >= 500 || status == 429) && attempt < options_.attempts) {
      last_failure = fmt::format("HTTP {}", status);
      continue;
    }
    return response;
  }
  return make_error(ErrorKind::kUnavailable,
                    fmt::format("registry {}: {} ({}) failed after {} attempts: {}; is the registry running "
                                "and reachable?",
                                registry_, request.what, request.url, options_.attempts, last_failure));
}

Status RegistryClient::log_in(const std::string& repository, const std::string& challenge_header) {
  KILN_ASSIGN_OR_RETURN(AuthChallenge challenge,
                        with_context(parse_www_authenticate(challenge_header), "registry " + registry_));
  std::string scope = scope_of(repository);
  std::string basic;
  if (credentials_) basic = "Basic " + base64_encode(credentials_->username + ":" + credentials_->password);
  std::string authorization;
  if (challenge.scheme == "basic") {
    if (basic.empty())
      return make_error(ErrorKind::kPermissionDenied,
                        fmt::format("registry {} asks for a login (basic auth) for {} and the docker config "
                                    "holds no credentials for it; run `docker login {}` or add them to "
                                    "{}",
                                    registry_, scope, registry_, docker_config_path(options_.docker_config)));
    authorization = basic;
  } else if (challenge.scheme == "bearer") {
    std::string realm = challenge.params["realm"];
    if (realm.empty())
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("registry {}: its bearer challenge names no realm", registry_));
    CURL* escaper = curl_easy_init();
    auto escape = [&](const std::string& s) {
      char* e = curl_easy_escape(escaper, s.c_str(), static_cast<int>(s.size()));
      std::string out = e != nullptr ? e : "";
      curl_free(e);
      return out;
    };
    Request token;
    token.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + "scope=" + escape(scope);
    if (auto service = challenge.params.find("service"); service != challenge.params.end())
      token.url += "&service=" + escape(service->second);
    curl_easy_cleanup(escaper);
    token.what = "a token for " + scope;
    token.authorization = basic;
    KILN_ASSIGN_OR_RETURN(Response answer, perform_with_retries(token));
    if (answer.status == 401 || answer.status == 403)
      return make_error(ErrorKind::kPermissionDenied,
                        fmt::format("registry {}: the token service {} refused {} (HTTP {}: {}); {}",
                                    registry_, realm, scope, answer.status, describe_error_body(answer.body),
                                    credentials_ ? "check the credentials in " + credentials_source()
                                                 : "log in with `docker login " + registry_ + "`"));
    if (answer.status != 200)
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("registry {}: the token service {} answered HTTP {} ({})", registry_,
                                    realm, answer.status, describe_error_body(answer.body)));
    auto json = nlohmann::json::parse(answer.body, nullptr, false);
    std::string value;
    if (json.is_object()) {
      if (json.contains("token") && json["token"].is_string()) value = json["token"].get<std::string>();
      if (value.empty() && json.contains("access_token") && json["access_token"].is_string())
        value = json["access_token"].get<std::string>();
    }
    if (value.empty())
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("registry {}: the token service {} answered no token", registry_, realm));
    authorization = "Bearer " + value;
  } else {
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("registry {} asks for {} authentication; kiln speaks bearer and basic",
                                  registry_, challenge.scheme));
  }
  std::lock_guard lock(mutex_);
  authorization_[repository] = authorization;
  return {};
}

Result<RegistryClient::Response> RegistryClient::perform_authorized(Request& request,
                                                                    const std::string& repository) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = authorization_.find(repository); it != authorization_.end())
      request.authorization = it->second;
  }
  KILN_ASSIGN_OR_RETURN(Response response, perform_with_retries(request));
  if (response.status == 401 && !response.header("www-authenticate").empty()) {
    KILN_RETURN_IF_ERROR(log_in(repository, response.header("www-authenticate")));
    {
      std::lock_guard lock(mutex_);
      request.authorization = authorization_[repository];
    }
    if (request.sink != nullptr) KILN_RETURN_IF_ERROR(request.sink->reset());
    KILN_ASSIGN_OR_RETURN(response, perform_with_retries(request));
  }
  if (response.status == 401 || response.status == 403)
    return make_error(
        ErrorKind::kPermissionDenied,
        fmt::format("registry {} refused {} for {} (HTTP {}: {}); {}", registry_, request.what,
                    scope_of(repository), response.status, describe_error_body(response.body),
                    credentials_ ? "check the credentials in " + credentials_source()
                                 : "log in with `docker login " + registry_ + "` if it is private"));
  return response;
}

Result<RegistryClient::Manifest> RegistryClient::get_manifest(const std::string& repository,
                                                              const std::string& reference) {
  Request request;
  request.url = fmt::format("{}/v2/{}/manifests/{}", base_url_, repository, reference);
  request.what = fmt::format("manifest {} of {}", reference, repository);
  request.headers.push_back("Accept: " + std::string(manifest_accept_header()));
  request.max_body = kMaxManifestBytes;
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status == 404)
    return make_error(ErrorKind::kNotFound,
                      fmt::format("registry {} has no manifest {:?} in repository {} ({}); check the tag or "
                                  "digest (`skopeo list-tags docker://{}/{}` lists the tags)",
                                  registry_, reference, repository, describe_error_body(response.body),
                                  registry_, repository));
  if (response.status != 200)
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("registry {}: GET {} answered HTTP {} ({})", registry_, request.url,
                                  response.status, describe_error_body(response.body)));
  Manifest manifest;
  manifest.digest = "sha256:" + sha256_hex(response.body);
  std::string content_type = response.header("content-type");
  manifest.media_type = trim(content_type.substr(0, content_type.find(';')));
  std::string expected =
      reference.starts_with("sha256:") ? reference : response.header("docker-content-digest");
  if (expected.starts_with("sha256:") && expected != manifest.digest)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("registry {}: manifest {} of {} arrived with digest {} instead of {}; refused", registry_,
                    reference, repository, manifest.digest, expected));
  manifest.content = std::move(response.body);
  return manifest;
}

Status RegistryClient::get_blob(const std::string& repository, const std::string& digest, BlobWriter& writer,
                                const std::function<void(std::uint64_t)>& on_bytes) {
  Request request;
  request.url = fmt::format("{}/v2/{}/blobs/{}", base_url_, repository, digest);
  request.what = fmt::format("blob {} of {}", digest, repository);
  request.sink = &writer;
  request.on_bytes = &on_bytes;
  KILN_ASSIGN_OR_RETURN(Response response, perform_authorized(request, repository));
  if (response.status == 404)
    return make_error(ErrorKind::kNotFound,
                      fmt::format("registry {} has no blob {} in repository {} ({}); the image is incomplete "
                                  "there: push it again",
                                  registry_, digest, repository, describe_error_body(response.body)));
  if (response.status != 200)
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("registry {}: GET {} answered HTTP {} ({})", registry_, request.url,
                                  response.status, describe_error_body(response.body)));
  return {};
}

}  // namespace kiln::fetcher::internal
