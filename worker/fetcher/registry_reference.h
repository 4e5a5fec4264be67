// Image references in Docker's conventions — `alpine`, `alpine:3.19`,
// `ghcr.io/org/tool@sha256:…`, `127.0.0.1:5000/team/base:1` — parsed into
// the registry to ask, the repository within it, and the tag or digest
// (docs/images.md, "Registry references").
//
//   KILN_ASSIGN_OR_RETURN(RegistryReference ref, parse_registry_reference("busybox"));
//   ref.registry;      // "docker.io"
//   ref.api_host();    // "registry-1.docker.io", where the HTTP API answers
//   ref.repository;    // "library/busybox"
//   ref.tag;           // "latest"
//   to_string(ref);    // "docker.io/library/busybox:latest"
//
// Rules (those of `docker pull`): the first '/'-separated component is a
// registry when it contains '.' or ':' or is `localhost`, otherwise the
// registry is docker.io (`index.docker.io` is the same); on docker.io a
// one-component repository gets `library/`; the tag follows the last ':'
// after the last '/'; `@sha256:HEX` names a manifest exactly (a tag written
// with it is kept for messages only); no tag and no digest means `latest`.
// Repositories are lowercase. Errors are kInvalidArgument naming the
// reference and what is wrong; kUnsupported for digests other than sha256.
// Thread safety: functions and values.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln::fetcher {

struct RegistryReference {
  std::string registry;    // "docker.io", "ghcr.io", "127.0.0.1:5000" (HOST[:PORT])
  std::string repository;  // "library/busybox", "team/base"
  std::string tag;         // "latest" when neither tag nor digest is written
  std::string digest;      // "sha256:HEX" when written; then it decides
  bool tag_given = false;

  // HOST[:PORT] the HTTP API is served on (docker.io's is registry-1.docker.io).
  std::string api_host() const;
  // What the registry is asked for: the digest when given, else the tag.
  const std::string& manifest_reference() const { return digest.empty() ? tag : digest; }
};

Result<RegistryReference> parse_registry_reference(std::string_view text);

// The registry bare names live in, and the one `--registry-mirror` mirrors.
inline constexpr std::string_view kDefaultRegistry = "docker.io";

// A mirror of a registry (`--registry-mirror URL`, docker's registry-mirrors):
// asked first, the registry itself when the mirror fails or lacks the image.
struct RegistryMirror {
  std::string url;          // as given, without a trailing '/'
  std::string host;         // HOST[:PORT]
  bool plain_http = false;  // http:// (the scheme decides; no --insecure-registry needed)
};
// Parses "https://HOST[:PORT]" or "http://HOST[:PORT]" (a trailing '/' is
// allowed, no other path). kInvalidArgument naming --registry-mirror otherwise.
Result<RegistryMirror> parse_registry_mirror(std::string_view url);

// Canonical form: REGISTRY/REPOSITORY[:TAG][@DIGEST] (the tag is left out
// when a digest is given and no tag was written).
std::string to_string(const RegistryReference& ref);

}  // namespace kiln::fetcher
