// Internal to the registry client (registry_client.cc, registry_client_push.cc):
// one HTTP request and its answer, as perform_with_retries() takes and gives them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "worker/fetcher/internal/registry_client.h"

namespace kiln::fetcher::internal {

inline constexpr std::size_t kMaxRegistrySmallBodyBytes = 1 << 20;  // error bodies, tokens

struct RegistryClient::Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lowercased; the last value of each
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct RegistryClient::Request {
  std::string url;
  std::string what;  // "manifest 3.19 of library/alpine", for messages
  std::vector<std::string> headers;
  std::string authorization;  // Authorization header value, "" for none
  std::size_t max_body = kMaxRegistrySmallBodyBytes;
  BlobWriter* sink = nullptr;  // a 200 answer's body goes here instead
  const std::function<void(std::uint64_t)>* on_bytes = nullptr;
  std::string method = "GET";          // GET, HEAD, POST (empty body) or PUT (with `upload`)
  const UploadBody* upload = nullptr;  // PUT's body
};

// "MANIFEST_UNKNOWN: manifest unknown" from a registry's JSON error body.
std::string describe_registry_error(const std::string& body);

}  // namespace kiln::fetcher::internal
