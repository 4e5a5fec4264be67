#include "common/auth/auth_dir.h"

#include <array>
#include <filesystem>
#include <set>

#include "common/auth/curve_keys.h"

namespace kiln::auth {
namespace {

constexpr std::array<Role, 3> kRoles = {Role::kClient, Role::kWorker, Role::kAdmin};
// Bounds on what one directory may hold (a mistake, or an attack through a
// writable directory, must not exhaust the scheduler).
constexpr std::size_t kMaxKeysPerRole = 100000;

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kClient: return "client";
    case Role::kWorker: return "worker";
    case Role::kAdmin: return "admin";
  }
  return "client";
}

std::string_view role_directory(Role role) {
  switch (role) {
    case Role::kClient: return "clients";
    case Role::kWorker: return "workers";
    case Role::kAdmin: return "admins";
  }
  return "clients";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role role : kRoles) {
    if (role_name(role) == name) return role;
  }
  return std::nullopt;
}

std::string Identity::user_id() const {
  return std::string(role_name(role)) + ":" + name;
}

std::optional<Identity> Identity::from_user_id(std::string_view user_id) {
  const auto colon = user_id.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto role = parse_role(user_id.substr(0, colon));
  if (!role) return std::nullopt;
  return Identity{.role = *role, .name = std::string(user_id.substr(colon + 1))};
}

const Identity* KeyTable::find(const std::string& public_z85) const {
  auto it = by_key.find(public_z85);
  return it == by_key.end() ? nullptr : &it->second;
}

std::optional<std::string> KeyTable::key_of(const Identity& identity) const {
  for (const auto& [key, who] : by_key) {
    if (who == identity) return key;
  }
  return std::nullopt;
}

Result<KeyTable> load_auth_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return make_error(ErrorKind::kNotFound, "auth directory " + dir +
                                                " does not exist (it holds clients/, workers/ and admins/ "
                                                "with one NAME.pub each; see docs/security.md)");
  }
  KeyTable table;
  std::set<std::string> twice;
  for (Role role : kRoles) {
    const fs::path role_dir = fs::path(dir) / role_directory(role);
    if (!fs::is_directory(role_dir, ec)) continue;
    std::size_t count = 0;
    for (fs::directory_iterator it(role_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& path = it->path();
      if (path.extension() != ".pub") continue;
      const std::string name = path.stem().string();
      if (++count > kMaxKeysPerRole) {
        table.problems.push_back(role_dir.string() + " holds over 100,000 keys; the rest are ignored");
        break;
      }
      if (!is_valid_key_name(name)) {
        table.problems.push_back(path.string() + ": \"" + name +
                                 "\" is not a valid name (1-64 of A-Z a-z 0-9 . _ -); skipped");
        continue;
      }
      auto key = read_public_key_file(path.string());
      if (!key) {
        table.problems.push_back(key.error().to_string() + "; skipped");
        continue;
      }
      Identity identity{.role = role, .name = name};
      auto [slot, inserted] = table.by_key.emplace(*key, identity);
      if (!inserted) {
        table.problems.push_back(path.string() + ": the same key is also " + slot->second.user_id() +
                                 "; one key may have one identity, so it is refused as both");
        twice.insert(*key);
      }
    }
    if (ec) table.problems.push_back("cannot list " + role_dir.string() + ": " + ec.message());
  }
  for (const std::string& key : twice) table.by_key.erase(key);
  return table;
}

}  // namespace kiln::auth
