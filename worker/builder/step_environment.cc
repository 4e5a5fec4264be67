#include "worker/builder/step_environment.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include <sys/stat.h>

#include <fmt/format.h>

#include "common/fs.h"
#include "common/path.h"

namespace kiln::builder {

namespace {

// A passwd(5) file is small; a bigger one is not a passwd file.
constexpr std::size_t kMaxPasswdBytes = 16u << 20;

struct PasswdEntry {
  std::string name;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string home;
};

std::optional<std::uint32_t> parse_id(std::string_view text) {
  std::uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The entries of a passwd file, in order. Lines that are not
// NAME:PASSWORD:UID:GID[:GECOS[:HOME[:SHELL]]] with numeric ids (comments,
// NIS "+" lines, garbage) are skipped, as libc and runc skip them.
std::vector<PasswdEntry> parse_passwd(std::string_view text) {
  std::vector<PasswdEntry> entries;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::vector<std::string_view> fields;
    for (std::size_t start = 0;;) {
      std::size_t colon = line.find(':', start);
      fields.push_back(line.substr(start, colon == std::string_view::npos ? colon : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (fields.size() < 4 || fields[0].empty() || fields[0].starts_with('#')) continue;
    auto uid = parse_id(fields[2]);
    auto gid = parse_id(fields[3]);
    if (!uid || !gid) continue;
    entries.push_back({std::string(fields[0]), *uid, *gid, fields.size() > 5 ? std::string(fields[5]) : ""});
  }
  return entries;
}

// The rootfs's /etc/passwd, or nullopt when it has none.
Result<std::optional<std::string>> read_passwd(const std::string& rootfs) {
  KILN_ASSIGN_OR_RETURN_CONTEXT(
      std::string path, path::resolve_beneath(rootfs, "etc/passwd", path::AbsoluteSymlinks::kRelativeToRoot),
      "finding the image's /etc/passwd");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return std::optional<std::string>();
  KILN_ASSIGN_OR_RETURN_CONTEXT(std::string text, read_file(path, kMaxPasswdBytes),
                                "reading the image's /etc/passwd");
  return std::optional<std::string>(std::move(text));
}

}  // namespace

Result<StepUser> resolve_step_user(const std::string& rootfs, const spec::User& user) {
  KILN_ASSIGN_OR_RETURN(std::optional<std::string> passwd, read_passwd(rootfs));
  return resolve_step_user_in(passwd, user);
}

Result<StepUser> resolve_step_user_in(const std::optional<std::string>& passwd, const spec::User& user) {
  std::vector<PasswdEntry> entries = passwd ? parse_passwd(*passwd) : std::vector<PasswdEntry>{};
  StepUser out;
  if (const auto* unix_user = std::get_if<spec::UnixUser>(&user)) {
    out.uid = static_cast<std::uint32_t>(unix_user->uid);
    out.gid = static_cast<std::uint32_t>(unix_user->gid);
  } else {
    const std::string& name = std::get<spec::WindowsUser>(user).name;
    auto it = std::ranges::find_if(entries, [&](const PasswdEntry& e) { return e.name == name; });
    if (it == entries.end())
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("(user (name {})): the image's /etc/passwd {}; create the user in an "
                                    "earlier step or use (user (uid N) (gid N))",
                                    name, passwd ? fmt::format("has no user {:?}", name) : "does not exist"));
    out.uid = it->uid;
    out.gid = it->gid;
  }
  auto home = std::ranges::find_if(entries, [&](const PasswdEntry& e) { return e.uid == out.uid; });
  if (home != entries.end() && !home->home.empty()) out.home = home->home;
  return out;
}

std::vector<std::string> step_environment(const EnvList& image_env,
                                          const std::map<std::string, std::string>& spec_env,
                                          const StepUser& user, std::string_view hostname) {
  EnvList merged = {{"PATH", std::string(kDefaultPath)}, {"HOSTNAME", std::string(hostname)}};
  auto set = [&merged](const std::string& name, const std::string& value) {
    auto it = std::ranges::find_if(merged, [&](const auto& kv) { return kv.first == name; });
    if (it != merged.end()) {
      it->second = value;
    } else {
      merged.emplace_back(name, value);
    }
  };
  for (const auto& [name, value] : image_env) set(name, value);
  for (const auto& [name, value] : spec_env) set(name, value);
  if (std::ranges::none_of(merged, [](const auto& kv) { return kv.first == "HOME"; }))
    merged.emplace_back("HOME", user.home);
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [name, value] : merged) out.push_back(name + "=" + value);
  return out;
}

}  // namespace kiln::builder
