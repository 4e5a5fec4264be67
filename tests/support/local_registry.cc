#include "tests/support/local_registry.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.h"

namespace kiln::testing {
namespace {

bool accepts_connections(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::string make_tls_and_htpasswd(const std::string& dir, const std::string& user,
                                  const std::string& password) {
  std::string script = "set -e; mkdir -p " + dir + "; cd " + dir +
                       "; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-keyout ca.key -out ca.pem -days 2 -subj /CN=kiln-test-ca"
                       "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-keyout server.key -out server.csr -subj /CN=127.0.0.1"
                       "; printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
                       "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                       "-out server.pem -days 2 -extfile san.ext"
                       "; python3 -W ignore -c \"import crypt, sys; print(sys.argv[1] + ':' + "
                       "crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))\" '" +
                       user + "' '" + password + "' > htpasswd";
  ProcessResult r = run_process({"/bin/sh", "-c", script});
  return r.exit_code == 0 ? "" : r.out + r.err;
}

LocalRegistry::LocalRegistry(std::string dir, LocalRegistryOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  std::filesystem::create_directories(dir_ + "/storage");
  port_ = free_port();
  std::ofstream config(dir_ + "/config.yml");
  config << "version: 0.1\n"
         << "log:\n  level: info\n  accesslog:\n    disabled: false\n"
         << "storage:\n  filesystem:\n    rootdirectory: " << storage() << "\n  delete:\n    enabled: true\n"
         << "http:\n  addr: 127.0.0.1:" << port_ << "\n";
  if (!options_.tls_certificate.empty())
    config << "  tls:\n    certificate: " << options_.tls_certificate << "\n    key: " << options_.tls_key
           << "\n";
  if (!options_.htpasswd.empty())
    config << "auth:\n  htpasswd:\n    realm: kiln-test\n    path: " << options_.htpasswd << "\n";
  config.close();
  start();
}

LocalRegistry::~LocalRegistry() {
  stop();
}

std::string LocalRegistry::host() const {
  return "127.0.0.1:" + std::to_string(port_);
}

std::string LocalRegistry::blob_file(const std::string& digest) const {
  std::string hex = digest.substr(digest.find(':') + 1);
  return storage() + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
}

void LocalRegistry::start() {
  child_ = std::make_unique<Child>(
      std::vector<std::string>{"/usr/bin/docker-registry", "serve", dir_ + "/config.yml"},
      dir_ + "/registry.log");
  bool up = eventually([this] { return accepts_connections(port_) || !child_->running(); });
  EXPECT_TRUE(up && child_->running()) << "docker-registry did not start:\n" << child_->log();
}

void LocalRegistry::stop() {
  if (child_) {
    child_->stop();
    child_.reset();
  }
}

std::string LocalRegistry::push(const std::string& source, const std::string& name,
                                const std::string& extra) {
  std::string command = "/usr/bin/skopeo copy --quiet --dest-tls-verify=false " + extra + " " + source +
                        " docker://" + host() + "/" + name + " 2>&1";
  ProcessResult r = run_process({"/bin/sh", "-c", command});
  return r.exit_code == 0 ? "" : "skopeo failed (" + command + "): " + r.out + r.err;
}

std::string LocalRegistry::log() const {
  std::stringstream out;
  out << std::ifstream(dir_ + "/registry.log").rdbuf();  // every run's: the child appends
  return out.str();
}

int LocalRegistry::blob_gets(const std::string& repository, const std::string& digest) const {
  return requests("\"GET /v2/" + repository + "/blobs/" + digest + " HTTP");
}

int LocalRegistry::manifest_gets(const std::string& repository, const std::string& reference) const {
  return requests("\"GET /v2/" + repository + "/manifests/" + reference + " HTTP");
}

int LocalRegistry::requests(const std::string& needle) const {
  std::istringstream lines(log());
  int n = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

}  // namespace kiln::testing
