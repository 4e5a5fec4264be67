#include "common/path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>

namespace kiln::path {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (!part.empty() && part != ".") out.push_back(part);
    i = j + 1;
  }
  return out;
}

namespace {

Status check_no_nul(std::string_view path) {
  if (path.find('\0') != std::string_view::npos)
    return make_error(ErrorKind::kInvalidArgument, "path contains a NUL byte");
  return {};
}

Result<std::string> join_checked(std::string_view path, bool absolute) {
  KILN_RETURN_IF_ERROR(check_no_nul(path));
  std::string out;
  for (std::string_view part : components(path)) {
    if (part == "..")
      return make_error(ErrorKind::kInvalidArgument,
                        "path \"" + std::string(path) + "\" contains \"..\"; paths may not leave their root");
    if (!out.empty() || absolute) out += '/';
    out += part;
  }
  if (absolute && out.empty()) out.push_back('/');  // (not `= "/"`: GCC 12 -O3 warns falsely)
  return out;
}

}  // namespace

Result<std::string> normalize_relative(std::string_view path) {
  if (!path.empty() && path.front() == '/')
    return make_error(
        ErrorKind::kInvalidArgument,
        "path \"" + std::string(path) + "\" is absolute; a path relative to the context is required");
  return join_checked(path, false);
}

Result<std::string> normalize_absolute(std::string_view path) {
  if (path.empty() || path.front() != '/')
    return make_error(ErrorKind::kInvalidArgument,
                      "path \"" + std::string(path) + "\" is relative; an absolute path is required");
  return join_checked(path, true);
}

std::string join(std::string_view a, std::string_view b) {
  std::string out(a);
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (b.empty()) return out;
  if (out.empty() || out.back() != '/') out += '/';
  out += b;
  return out;
}

Result<std::string> resolve_beneath(const std::string& root, std::string_view rel,
                                    AbsoluteSymlinks absolute) {
  KILN_RETURN_IF_ERROR(check_no_nul(rel));
  // `resolved` holds the components below root that are known to be real
  // directories (or the final object); `pending` is what remains to walk.
  std::vector<std::string> resolved;
  std::deque<std::string> pending;
  for (auto part : components(rel)) pending.emplace_back(part);
  int symlinks_followed = 0;
  auto escape_error = [&](std::string_view why) {
    return make_error(ErrorKind::kInvalidArgument, "path \"" + std::string(rel) + "\" leaves its root " +
                                                       root + " (" + std::string(why) + ")");
  };
  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == "..") {
      if (resolved.empty()) return escape_error("\"..\" above the root");
      resolved.pop_back();
      continue;
    }
    std::string host = root;
    for (const auto& r : resolved) host = join(host, r);
    host = join(host, part);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) {
      if (errno != ENOENT) return errno_error("cannot stat " + host);
      // The rest does not exist: append it lexically, still refusing "..".
      resolved.push_back(std::move(part));
      for (auto& p : pending) {
        if (p == "..") return escape_error("\"..\" after a missing component");
        resolved.push_back(std::move(p));
      }
      pending.clear();
      break;
    }
    if (!S_ISLNK(st.st_mode)) {
      resolved.push_back(std::move(part));
      continue;
    }
    if (++symlinks_followed > 40)
      return make_error(ErrorKind::kInvalidArgument,
                        "too many levels of symlinks in \"" + std::string(rel) + "\"");
    std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096), '\0');
    ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
    if (n < 0) return errno_error("cannot read symlink " + host);
    target.resize(static_cast<std::size_t>(n));
    if (!target.empty() && target.front() == '/') {
      if (absolute == AbsoluteSymlinks::kReject)
        return escape_error("symlink " + host + " points at the absolute path " + target);
      resolved.clear();
    }
    auto parts = components(target);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) pending.emplace_front(*it);
  }
  std::string out = root;
  for (const auto& r : resolved) out = join(out, r);
  return out;
}

}  // namespace kiln::path
