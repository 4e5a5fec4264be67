// The build spec language: OBuilder's S-expression format, as plain C++ data.
//
// A spec is a base image, a list of operations, and optional named child
// builds (stages) that run first and whose results later `copy` ops may read:
//
//   ((build dev ((from busybox) (run (shell "make"))))
//    (from busybox)
//    (copy (from (build dev)) (src /src/app) (dst /usr/bin/app)))
//
//   KILN_ASSIGN_OR_RETURN(Spec s, parse_spec(text, "app.spec"));
//   std::string canonical = print_spec(s);
//
// Values only; no I/O here except load_spec_file. Thread safety: values.
// Equality (operator==) compares the meaning of a spec and ignores source
// positions, so parse(print(s)) == s.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.h"

namespace kiln::spec {

// A 1-based place in a source file. line == 0 means "not from a file".
struct Position {
  int line = 0;
  int column = 0;
  friend bool operator==(const Position&, const Position&) { return true; }
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// (cache (ID (target PATH) [(buildkit_options (K V)...)]))
struct Cache {
  std::string id;
  std::string target;
  KeyValues buildkit_options;
  bool operator==(const Cache&) const = default;
};

// (secrets (ID (target PATH) [(buildkit_options (K V)...)]))
struct Secret {
  std::string id;
  std::string target;
  KeyValues buildkit_options;
  bool operator==(const Secret&) const = default;
};

// (user (uid N) (gid N)) — the Unix form.
struct UnixUser {
  int uid = 0;
  int gid = 0;
  bool operator==(const UnixUser&) const = default;
};
// (user (name NAME)) — OBuilder's Windows form; kiln's builder looks NAME up in
// the image's /etc/passwd, as docker's `USER NAME` (worker/builder/step_environment.h).
struct WindowsUser {
  std::string name;
  bool operator==(const WindowsUser&) const = default;
};
using User = std::variant<UnixUser, WindowsUser>;

struct Comment {
  std::string text;
  bool operator==(const Comment&) const = default;
};
struct Workdir {
  std::string path;
  bool operator==(const Workdir&) const = default;
};
struct Shell {
  std::vector<std::string> args;
  bool operator==(const Shell&) const = default;
};
struct Run {
  std::vector<Cache> caches;
  std::vector<std::string> network;
  std::vector<Secret> secrets;
  std::string shell;
  bool operator==(const Run&) const = default;
};
struct Copy {
  std::optional<std::string> from_build;  // nullopt: from the build context
  std::vector<std::string> src;
  std::string dst;
  std::vector<std::string> exclude;
  bool operator==(const Copy&) const = default;
};
struct SetUser {
  User user;
  bool operator==(const SetUser&) const = default;
};
struct Env {
  std::string name;
  std::string value;
  bool operator==(const Env&) const = default;
};

using OpKind = std::variant<Comment, Workdir, Shell, Run, Copy, SetUser, Env>;

struct Op {
  OpKind kind;
  Position pos;  // where the op's opening parenthesis is
  bool operator==(const Op&) const = default;
};

struct ChildBuild;

// One stage: child builds, then `(from IMAGE)`, then ops.
struct Spec {
  std::vector<ChildBuild> child_builds;
  std::string from;
  Position from_pos;
  std::vector<Op> ops;
  bool operator==(const Spec&) const = default;
};

// (build NAME SPEC)
struct ChildBuild {
  std::string name;
  Spec spec;
  Position pos;
  bool operator==(const ChildBuild&) const = default;
};

// The user a stage starts as: root.
inline constexpr UnixUser kRootUser{0, 0};

// Parses and validates a spec. `filename` is used in error messages only.
// Errors (kind kInvalidArgument) read "FILE:LINE:COL: what is wrong in FORM
// (the rule)", e.g.
//   app.spec:4:2: unknown operation "rnu" in (rnu (shell make)) (did you
//   mean "run"? expected one of comment, workdir, shell, run, copy, user, env)
// The full grammar, rules and canonical layout: docs/spec-language.md.
Result<Spec> parse_spec(std::string_view text, std::string_view filename);

// Reads and parses a spec file.
Result<Spec> load_spec_file(const std::string& path);

// Checks the rules that span ops: build names in scope (earlier siblings and
// enclosing builds), with a did-you-mean hint. parse_spec calls it.
Status validate(const Spec& spec, std::string_view filename);

// Canonical text of a spec (OBuilder's layout, ending with a newline).
// print_spec(parse_spec(print_spec(s))) == print_spec(s), byte for byte.
std::string print_spec(const Spec& spec);

// One op on one line, as it appears in a canonical spec: (run (shell "make")).
std::string print_op(const Op& op);

// The op's name: "run", "copy", "env"...
std::string_view op_name(const OpKind& op);

// The Dockerfile equivalent. Without `buildkit`, cache and secret mounts are
// left out (plain docker build has no such mounts); with it they become
// `RUN --mount=type=cache|secret,...`. Copies by a non-root user get
// `--chown=UID:GID`; child builds become named stages.
std::string to_dockerfile(const Spec& spec, bool buildkit);

}  // namespace kiln::spec
