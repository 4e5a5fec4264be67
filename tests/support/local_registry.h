// Test support: a real OCI registry (the CNCF distribution server,
// `docker-registry`) on 127.0.0.1, started and stopped by the test, with
// images pushed into it by `skopeo copy`.
//
//   LocalRegistry registry(tmp + "/registry");
//   ASSERT_EQ(registry.push("oci:" + layout + ":latest", "team/busybox:1"), "");
//   fetch(registry.host() + "/team/busybox:1");   // "127.0.0.1:PORT/team/busybox:1"
//   EXPECT_EQ(registry.blob_gets("team/busybox", digest), 1);
//
// Options: TLS with a certificate and key (PEM), and htpasswd basic auth.
// The registry's storage is `dir`/storage (its blobs under
// docker/registry/v2/blobs/sha256/XX/HEX/data), its log `dir`/registry.log.
// The destructor stops it. Test-only; not thread-safe.
#pragma once

#include <memory>
#include <string>

#include "tests/support/child.h"

namespace kiln::testing {

struct LocalRegistryOptions {
  std::string tls_certificate;  // PEM files; both empty: plain HTTP
  std::string tls_key;
  std::string htpasswd;  // an htpasswd file (bcrypt): basic auth required
};

// Makes DIR/ca.pem (a CA) and DIR/server.pem, DIR/server.key (a certificate
// for 127.0.0.1 signed by it) with openssl, and DIR/htpasswd holding USER
// with PASSWORD (bcrypt). Returns "" on success, else what failed.
std::string make_tls_and_htpasswd(const std::string& dir, const std::string& user,
                                  const std::string& password);

class LocalRegistry {
 public:
  explicit LocalRegistry(std::string dir, LocalRegistryOptions options = {});
  ~LocalRegistry();

  // "127.0.0.1:PORT".
  std::string host() const;
  int port() const { return port_; }
  std::string storage() const { return dir_ + "/storage"; }
  // The file the registry keeps the blob `digest` (sha256:HEX) in.
  std::string blob_file(const std::string& digest) const;

  // Stops the registry (SIGTERM), and starts it again on the same port.
  void stop();
  void start();

  // `skopeo copy [--all] SOURCE docker://HOST/NAME` over plain HTTP or TLS
  // without verification; extra arguments (e.g. --dest-creds U:P) appended.
  // Returns "" on success, else skopeo's output.
  std::string push(const std::string& source, const std::string& name, const std::string& extra = "");

  // How many GET requests for the blob `digest` of `repository` the registry answered.
  int blob_gets(const std::string& repository, const std::string& digest) const;
  // How many GET requests for the manifest `reference` (a tag or a digest) of `repository` it answered.
  int manifest_gets(const std::string& repository, const std::string& reference) const;
  std::string log() const;

 private:
  // Lines of the log that contain `needle`.
  int requests(const std::string& needle) const;
  std::string dir_;
  LocalRegistryOptions options_;
  int port_ = 0;
  std::unique_ptr<Child> child_;
};

}  // namespace kiln::testing
