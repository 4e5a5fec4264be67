// The scheduler's authorised keys: a directory with one public key file per
// identity, by role (docs/security.md):
//
//   AUTH_DIR/clients/NAME.pub   may submit, and see, follow and cancel its own jobs
//   AUTH_DIR/workers/NAME.pub   may register as worker NAME and run what it is given
//   AUTH_DIR/admins/NAME.pub    may do everything
//
// The file name is the identity: a client's name is what fair share and
// `kiln jobs` show; a worker key's name is the only worker name it may use.
//
//   KILN_ASSIGN_OR_RETURN(KeyTable table, load_auth_dir("/etc/kiln/auth"));
//   if (const Identity* who = table.find(public_z85)) ... who->role, who->name
//
// Loading skips what it cannot use and says so in `problems` (an unreadable
// or malformed file, a bad name, one key listed twice — such a key is
// refused everywhere rather than given either role). A missing role
// directory is empty, not an error; a missing AUTH_DIR is kNotFound.
// Thread safety: a KeyTable is a value; share it as const.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln::auth {

enum class Role : std::uint8_t { kClient, kWorker, kAdmin };
std::string_view role_name(Role role);       // "client", "worker", "admin"
std::string_view role_directory(Role role);  // "clients", "workers", "admins"
std::optional<Role> parse_role(std::string_view name);

struct Identity {
  Role role = Role::kClient;
  std::string name;

  // "client:alice": what the ZAP handler gives ZeroMQ as the connection's User-Id.
  std::string user_id() const;
  static std::optional<Identity> from_user_id(std::string_view user_id);
  bool operator==(const Identity&) const = default;
};

struct KeyTable {
  std::map<std::string, Identity> by_key;  // public key (Z85) -> identity
  std::vector<std::string> problems;       // what was skipped, and why

  const Identity* find(const std::string& public_z85) const;
  // The key of an identity, if it is (still) listed.
  std::optional<std::string> key_of(const Identity& identity) const;
};

Result<KeyTable> load_auth_dir(const std::string& dir);

}  // namespace kiln::auth
