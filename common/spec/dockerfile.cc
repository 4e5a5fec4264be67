// to_dockerfile: a spec as the equivalent (Unix) Dockerfile, line for line
// what OBuilder's Docker module writes, except that a multi-line comment
// stays a comment on every line and a note marks excludes a COPY cannot
// express (README.md, section 4).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "common/spec/spec.h"

namespace kiln::spec {
namespace {

bool is_root(const User& user) {
  const auto* unix_user = std::get_if<UnixUser>(&user);
  return unix_user != nullptr && *unix_user == kRootUser;
}

std::string trim(std::string_view s) {
  constexpr std::string_view blanks = " \t\n\r\f";
  std::size_t begin = s.find_first_not_of(blanks);
  if (begin == std::string_view::npos) return "";
  std::size_t end = s.find_last_not_of(blanks);
  return std::string(s.substr(begin, end - begin + 1));
}

// A multi-line shell command as continuation lines: "a \\\n    b".
std::string wrap_lines(std::string_view command) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    std::size_t newline = command.find('\n', start);
    out += trim(
        command.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start));
    if (newline == std::string_view::npos) break;
    out += " \\\n    ";
    start = newline + 1;
  }
  return out;
}

// ENV values: '"' and '\' get a backslash in front.
std::string escape_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

template <typename Mount>
std::string mount_flag(std::string_view type, const Mount& mount, const User& user) {
  std::string out = fmt::format("--mount=type={},id={},target={}", type, mount.id, mount.target);
  // The mount belongs to whoever runs the command; Windows users have no uid.
  if (const auto* unix_user = std::get_if<UnixUser>(&user)) out += fmt::format(",uid={}", unix_user->uid);
  for (const auto& [key, value] : mount.buildkit_options) out += fmt::format(",{}={}", key, value);
  return out;
}

class DockerfileWriter {
 public:
  explicit DockerfileWriter(bool buildkit) : buildkit_(buildkit) {}

  void stage(const Spec& spec, const std::string* name) {
    for (const ChildBuild& child : spec.child_builds) {
      stage(child.spec, &child.name);
      out_ += '\n';
    }
    out_ += fmt::format("FROM {}{}\n", spec.from, name ? " as " + *name : "");
    User user = kRootUser;  // every stage starts as root
    for (const Op& op : spec.ops) std::visit([&](const auto& o) { write(o, user); }, op.kind);
  }

  std::string take() { return std::move(out_); }

 private:
  void write(const Comment& c, User&) {
    // A multi-line comment stays a comment on every line.
    std::size_t start = 0;
    while (true) {
      std::size_t newline = c.text.find('\n', start);
      out_ += fmt::format("# {}\n",
                          c.text.substr(start, newline == std::string::npos ? newline : newline - start));
      if (newline == std::string::npos) break;
      start = newline + 1;
    }
  }
  void write(const Workdir& w, User&) { out_ += fmt::format("WORKDIR {}\n", w.path); }
  void write(const Shell& s, User&) {
    std::vector<std::string> quoted;
    for (const std::string& arg : s.args) quoted.push_back(fmt::format("\"{}\"", arg));
    out_ += fmt::format("SHELL [ {} ]\n", fmt::join(quoted, ", "));
  }
  void write(const Run& r, User& user) {
    std::string mounts;
    if (buildkit_) {
      for (const Secret& s : r.secrets) mounts += mount_flag("secret", s, user) + " ";
      for (const Cache& c : r.caches) mounts += mount_flag("cache", c, user) + " ";
    }
    out_ += fmt::format("RUN {}{}\n", mounts, wrap_lines(r.shell));
  }
  void write(const Copy& c, User& user) {
    if (!c.exclude.empty()) {
      out_ += fmt::format("# kiln: (exclude {}) not applied: COPY has no excludes; use a .dockerignore\n",
                          fmt::join(c.exclude, " "));
    }
    std::string flags;
    if (const auto* unix_user = std::get_if<UnixUser>(&user); unix_user && !is_root(user)) {
      flags += fmt::format("--chown={}:{} ", unix_user->uid, unix_user->gid);
    }
    if (c.from_build) flags += fmt::format("--from={} ", *c.from_build);
    out_ += fmt::format("COPY {}{} {}\n", flags, fmt::join(c.src, " "), c.dst);
  }
  void write(const SetUser& u, User& user) {
    if (const auto* unix_user = std::get_if<UnixUser>(&u.user)) {
      out_ += fmt::format("USER {}:{}\n", unix_user->uid, unix_user->gid);
    } else {
      out_ += fmt::format("USER {}\n", std::get<WindowsUser>(u.user).name);
    }
    user = u.user;
  }
  void write(const Env& e, User&) { out_ += fmt::format("ENV {}=\"{}\"\n", e.name, escape_value(e.value)); }

  bool buildkit_;
  std::string out_;
};

}  // namespace

std::string to_dockerfile(const Spec& spec, bool buildkit) {
  DockerfileWriter writer(buildkit);
  writer.stage(spec, nullptr);
  return writer.take();
}

}  // namespace kiln::spec
