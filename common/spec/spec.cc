// parse_spec, validate, load_spec_file, op_name: from S-expressions to the
// Spec AST, with an error for every rule in README.md.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/spec/sexp.h"
#include "common/spec/spec.h"
#include "common/spec/spec_sexp.h"
#include "common/unique_fd.h"

namespace kiln::spec {
namespace {

constexpr std::string_view kOpNames = "comment, workdir, shell, run, copy, user, env";
constexpr std::string_view kSpecShape =
    "a spec is ((build NAME SPEC)... (from IMAGE) OPERATION...): child builds first, then the base "
    "image, then operations";

constexpr std::string_view kRunRule =
    "run takes the fields cache, network, secrets, shell, in any order; shell is required";
constexpr std::string_view kCopyRule =
    "copy takes the fields from, src, dst, exclude, in any order; src and dst are required";
constexpr std::string_view kUserRule = "a user is (user (uid N) (gid N)) or (user (name NAME))";
constexpr std::string_view kCacheRule =
    "a cache is (ID (target PATH)) with optional (buildkit_options ((KEY VALUE)...))";
constexpr std::string_view kSecretRule =
    "a secret is (ID (target PATH)) with optional (buildkit_options ((KEY VALUE)...))";

bool is_head(const Sexp& form, std::string_view name) {
  return form.is_list() && !form.items.empty() && form.items[0].is_atom() && form.items[0].atom == name;
}

// Edit distance counting insertions, deletions, substitutions and swaps of
// adjacent bytes (optimal string alignment), for did-you-mean hints: "rnu"
// is one typo away from "run".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The in-scope name closest to `name`, if it is close enough to be a typo:
// one edit for names up to 4 characters, two for longer ones.
template <typename Names>
std::optional<std::string> closest_name(std::string_view name, const Names& scope) {
  std::size_t limit = name.size() <= 1 ? 0 : name.size() <= 4 ? 1 : 2;
  std::optional<std::string> best;
  // Long names are not typos worth a hint, and skipping them keeps the
  // quadratic distance cheap on hostile input.
  if (name.size() > 64) return best;
  std::size_t best_distance = limit + 1;
  for (std::string_view candidate : scope) {
    std::size_t length_gap =
        candidate.size() > name.size() ? candidate.size() - name.size() : name.size() - candidate.size();
    if (length_gap > limit) continue;
    std::size_t d = edit_distance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

// " (did you mean "X"? " or "" when nothing is close: the start of a rule.
template <typename Names>
std::string did_you_mean(std::string_view name, const Names& scope) {
  auto close = closest_name(name, scope);
  return close ? fmt::format("did you mean \"{}\"? ", *close) : "";
}

// The fields of a record-like form, (OP (NAME VALUE...)...), by name.
using Fields = std::map<std::string, const Sexp*, std::less<>>;

class SpecParser {
 public:
  explicit SpecParser(std::string_view filename) : filename_(filename) {}

  Result<Spec> parse_stage(const Sexp& form) {
    if (!form.is_list()) return fail(form, "expected a spec (a list)", form, kSpecShape);
    Spec spec;
    std::size_t i = 0;
    bool have_from = false;
    for (; i < form.items.size() && !have_from; ++i) {
      const Sexp& item = form.items[i];
      if (is_head(item, "build")) {
        KILN_ASSIGN_OR_RETURN(ChildBuild child, parse_build(item));
        spec.child_builds.push_back(std::move(child));
      } else if (is_head(item, "from")) {
        if (item.items.size() != 2 || !item.items[1].is_atom()) {
          return fail(item, "malformed (from)", item, "(from IMAGE) names exactly one base image");
        }
        if (item.items[1].atom.empty()) {
          return fail(item.items[1], "empty image name", item, "(from IMAGE) names exactly one base image");
        }
        spec.from = item.items[1].atom;
        spec.from_pos = item.pos;
        have_from = true;
      } else if (is_operation(item)) {
        return fail(item, fmt::format("operation \"{}\" before (from IMAGE)", item.items[0].atom), item,
                    "operations come after (from IMAGE); only (build NAME SPEC) items may precede it");
      } else {
        return fail(item, "unexpected item", item, kSpecShape);
      }
    }
    if (!have_from) {
      return fail(form, "missing (from IMAGE)", form,
                  "every spec and every child build needs a base image: add (from IMAGE) after its "
                  "(build ...) items");
    }
    for (; i < form.items.size(); ++i) {
      const Sexp& item = form.items[i];
      if (is_head(item, "from")) {
        return fail(item, "second (from)", item, "a spec has exactly one (from IMAGE)");
      }
      if (is_head(item, "build")) {
        return fail(item, "(build ...) after (from)", item,
                    "child builds come before (from IMAGE); move it up");
      }
      KILN_ASSIGN_OR_RETURN(Op op, parse_op(item));
      spec.ops.push_back(std::move(op));
    }
    return spec;
  }

  Result<Op> parse_op(const Sexp& form) {
    if (!form.is_list() || form.items.empty() || !form.items[0].is_atom()) {
      return fail(form, "expected an operation", form,
                  fmt::format("an operation is a list such as (run (shell CMD)); one of {}", kOpNames));
    }
    const std::string& name = form.items[0].atom;
    Op op;
    op.pos = form.pos;
    if (name == "comment") {
      KILN_ASSIGN_OR_RETURN(std::string text, only_atom(form, "(comment TEXT) takes one text atom"));
      op.kind = Comment{std::move(text)};
    } else if (name == "workdir") {
      KILN_ASSIGN_OR_RETURN(std::string path, only_atom(form, "(workdir PATH) takes one non-empty path"));
      if (path.empty())
        return fail(form.items[1], "empty workdir", form, "(workdir PATH) takes one non-empty path");
      op.kind = Workdir{std::move(path)};
    } else if (name == "shell") {
      KILN_ASSIGN_OR_RETURN(op.kind, parse_shell(form));
    } else if (name == "env") {
      KILN_ASSIGN_OR_RETURN(op.kind, parse_env(form));
    } else if (name == "user") {
      KILN_ASSIGN_OR_RETURN(User user, parse_user(form));
      op.kind = SetUser{std::move(user)};
    } else if (name == "run") {
      KILN_ASSIGN_OR_RETURN(op.kind, parse_run(form));
    } else if (name == "copy") {
      KILN_ASSIGN_OR_RETURN(op.kind, parse_copy(form));
    } else {
      static constexpr std::string_view names[] = {"comment", "workdir", "shell", "run",
                                                   "copy",    "user",    "env"};
      return fail(form, fmt::format("unknown operation \"{}\"", name), form,
                  fmt::format("{}expected one of {}", did_you_mean(name, names), kOpNames));
    }
    return op;
  }

 private:
  // "FILE:LINE:COL: WHAT in FORM (RULE)", located at `at`.
  std::unexpected<Error> fail(const Sexp& at, std::string_view what, const Sexp& form,
                              std::string_view rule) const {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}{} in {} ({})", error_location(filename_, at.pos), what,
                                  print_sexp_truncated(form), rule));
  }

  static bool is_operation(const Sexp& item) {
    static const std::set<std::string, std::less<>> names = {"comment", "workdir", "shell", "run",
                                                             "copy",    "user",    "env"};
    return item.is_list() && !item.items.empty() && item.items[0].is_atom() &&
           names.contains(item.items[0].atom);
  }

  Result<ChildBuild> parse_build(const Sexp& form) {
    constexpr std::string_view rule = "a child build is (build NAME ((from IMAGE) OPERATION...))";
    if (form.items.size() != 3 || !form.items[1].is_atom() || !form.items[2].is_list()) {
      return fail(form, "malformed (build)", form, rule);
    }
    if (form.items[1].atom.empty()) return fail(form.items[1], "empty build name", form, rule);
    const Sexp& body = form.items[2];
    if (!body.items.empty() && body.items[0].is_atom()) {
      // (build b (from x)) instead of (build b ((from x))): a common slip.
      return fail(
          body, fmt::format("the spec of build \"{}\" is one form, not a list of items", form.items[1].atom),
          form, fmt::format("{}: note the double parentheses", rule));
    }
    ChildBuild child;
    child.name = form.items[1].atom;
    child.pos = form.pos;
    KILN_ASSIGN_OR_RETURN(child.spec, parse_stage(form.items[2]));
    return child;
  }

  // The single atom argument of (OP ATOM).
  Result<std::string> only_atom(const Sexp& form, std::string_view rule) {
    if (form.items.size() != 2 || !form.items[1].is_atom()) {
      const Sexp& at = form.items.size() > 2 ? form.items[2] : form.items.size() == 2 ? form.items[1] : form;
      return fail(at, fmt::format("\"{}\" needs exactly one atom", form.items[0].atom), form, rule);
    }
    return form.items[1].atom;
  }

  // The atoms after the head of `form`, each of which must be an atom.
  Result<std::vector<std::string>> atoms_after_head(const Sexp& form, const Sexp& record,
                                                    std::string_view rule) {
    std::vector<std::string> out;
    for (std::size_t i = 1; i < form.items.size(); ++i) {
      const Sexp& item = form.items[i];
      if (!item.is_atom()) {
        return fail(item, fmt::format("\"{}\" takes atoms, not a list", form.items[0].atom), record, rule);
      }
      out.push_back(item.atom);
    }
    return out;
  }

  Result<OpKind> parse_shell(const Sexp& form) {
    constexpr std::string_view rule = "(shell PROGRAM ARG...) names at least the program";
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> args, atoms_after_head(form, form, rule));
    if (args.empty()) return fail(form, "empty shell", form, rule);
    return Shell{std::move(args)};
  }

  Result<OpKind> parse_env(const Sexp& form) {
    constexpr std::string_view rule = "(env NAME VALUE) takes a non-empty name and a value";
    if (form.items.size() != 3 || !form.items[1].is_atom() || !form.items[2].is_atom()) {
      return fail(form, "malformed env", form, rule);
    }
    if (form.items[1].atom.empty()) return fail(form.items[1], "empty variable name", form, rule);
    return Env{form.items[1].atom, form.items[2].atom};
  }

  // Collects the (NAME ...) fields of `record` from item `first` on.
  Result<Fields> collect_fields(const Sexp& record, std::size_t first,
                                const std::vector<std::string_view>& allowed, std::string_view rule) {
    Fields fields;
    for (std::size_t i = first; i < record.items.size(); ++i) {
      const Sexp& field = record.items[i];
      if (!field.is_list() || field.items.empty() || !field.items[0].is_atom()) {
        return fail(field, "expected a field (NAME VALUE...)", record, rule);
      }
      const std::string& name = field.items[0].atom;
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        return fail(field, fmt::format("unknown field \"{}\"", name), record,
                    fmt::format("{}{}", did_you_mean(name, allowed), rule));
      }
      if (!fields.emplace(name, &field).second) {
        return fail(field, fmt::format("duplicate field \"{}\"", name), record, rule);
      }
    }
    return fields;
  }

  Result<std::string> field_atom(const Sexp& field, const Sexp& record, std::string_view rule,
                                 bool allow_empty) {
    const std::string& name = field.items[0].atom;
    if (field.items.size() != 2 || !field.items[1].is_atom()) {
      return fail(field, fmt::format("field \"{}\" needs exactly one atom", name), record, rule);
    }
    if (!allow_empty && field.items[1].atom.empty()) {
      return fail(field.items[1], fmt::format("field \"{}\" is empty", name), record, rule);
    }
    return field.items[1].atom;
  }

  Result<int> field_id_number(const Sexp& field, const Sexp& record) {
    KILN_ASSIGN_OR_RETURN(std::string text, field_atom(field, record, kUserRule, true));
    bool digits = !text.empty() && text.size() <= 10 &&
                  std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    long long value = digits ? std::stoll(text) : -1;
    if (!digits || value > INT_MAX) {
      return fail(field.items[1],
                  fmt::format("{} \"{}\" is not a non-negative decimal integer", field.items[0].atom, text),
                  record, fmt::format("{}; ids range from 0 to {}", kUserRule, INT_MAX));
    }
    return static_cast<int>(value);
  }

  Result<User> parse_user(const Sexp& form) {
    KILN_ASSIGN_OR_RETURN(Fields fields, collect_fields(form, 1, {"uid", "gid", "name"}, kUserRule));
    bool has_uid = fields.contains("uid"), has_gid = fields.contains("gid"),
         has_name = fields.contains("name");
    if (has_name && (has_uid || has_gid)) {
      return fail(*fields.at(has_uid ? "uid" : "gid"), "a user has either uid/gid or a name, not both", form,
                  kUserRule);
    }
    if (has_name) {
      KILN_ASSIGN_OR_RETURN(std::string name, field_atom(*fields.at("name"), form, kUserRule, false));
      return WindowsUser{std::move(name)};
    }
    if (!has_uid) return fail(form, "missing field \"uid\"", form, kUserRule);
    if (!has_gid) return fail(form, "missing field \"gid\"", form, kUserRule);
    UnixUser user;
    KILN_ASSIGN_OR_RETURN(user.uid, field_id_number(*fields.at("uid"), form));
    KILN_ASSIGN_OR_RETURN(user.gid, field_id_number(*fields.at("gid"), form));
    return user;
  }

  // One (ID (target PATH) [(buildkit_options ((K V)...))]) of a cache or secrets field.
  template <typename Mount>
  Result<Mount> parse_mount(const Sexp& entry, std::string_view rule) {
    if (!entry.is_list() || entry.items.empty() || !entry.items[0].is_atom()) {
      return fail(entry, "expected (ID (target PATH)...)", entry, rule);
    }
    Mount mount;
    mount.id = entry.items[0].atom;
    if (mount.id.empty()) return fail(entry.items[0], "empty id", entry, rule);
    KILN_ASSIGN_OR_RETURN(Fields fields, collect_fields(entry, 1, {"target", "buildkit_options"}, rule));
    if (!fields.contains("target")) {
      return fail(entry, fmt::format("missing field \"target\" for \"{}\"", mount.id), entry, rule);
    }
    KILN_ASSIGN_OR_RETURN(mount.target, field_atom(*fields.at("target"), entry, rule, false));
    if (auto it = fields.find("buildkit_options"); it != fields.end()) {
      // OBuilder's form (ppx_sexp_conv's [@sexp.list] record field) holds one
      // list of pairs: (buildkit_options ((K V) (K2 V2))); "()" is empty.
      // The flatter (buildkit_options (K V) (K2 V2)) is accepted too: the two
      // cannot be confused, as a pair's elements are atoms.
      const Sexp& field = *it->second;
      bool obuilder_form = field.items.size() == 2 && field.items[1].is_list() &&
                           (field.items[1].items.empty() || field.items[1].items[0].is_list());
      const Sexp* pairs_holder = obuilder_form ? &field.items[1] : &field;
      std::size_t first = obuilder_form ? 0 : 1;
      for (std::size_t i = first; i < pairs_holder->items.size(); ++i) {
        const Sexp& pair = pairs_holder->items[i];
        if (!pair.is_list() || pair.items.size() != 2 || !pair.items[0].is_atom() ||
            !pair.items[1].is_atom()) {
          return fail(pair, "a buildkit option must be (KEY VALUE)", entry, rule);
        }
        mount.buildkit_options.emplace_back(pair.items[0].atom, pair.items[1].atom);
      }
    }
    return mount;
  }

  Result<OpKind> parse_run(const Sexp& form) {
    KILN_ASSIGN_OR_RETURN(Fields fields,
                          collect_fields(form, 1, {"cache", "network", "secrets", "shell"}, kRunRule));
    Run run;
    if (!fields.contains("shell")) return fail(form, "missing field \"shell\"", form, kRunRule);
    KILN_ASSIGN_OR_RETURN(run.shell, field_atom(*fields.at("shell"), form, kRunRule, true));
    if (auto it = fields.find("cache"); it != fields.end()) {
      for (std::size_t i = 1; i < it->second->items.size(); ++i) {
        KILN_ASSIGN_OR_RETURN(Cache cache, parse_mount<Cache>(it->second->items[i], kCacheRule));
        run.caches.push_back(std::move(cache));
      }
    }
    if (auto it = fields.find("secrets"); it != fields.end()) {
      for (std::size_t i = 1; i < it->second->items.size(); ++i) {
        KILN_ASSIGN_OR_RETURN(Secret secret, parse_mount<Secret>(it->second->items[i], kSecretRule));
        run.secrets.push_back(std::move(secret));
      }
    }
    if (auto it = fields.find("network"); it != fields.end()) {
      KILN_ASSIGN_OR_RETURN(run.network, atoms_after_head(*it->second, form, kRunRule));
    }
    return run;
  }

  Result<OpKind> parse_copy(const Sexp& form) {
    KILN_ASSIGN_OR_RETURN(Fields fields,
                          collect_fields(form, 1, {"from", "src", "dst", "exclude"}, kCopyRule));
    Copy copy;
    if (!fields.contains("src")) return fail(form, "missing field \"src\"", form, kCopyRule);
    if (!fields.contains("dst")) return fail(form, "missing field \"dst\"", form, kCopyRule);
    if (auto it = fields.find("from"); it != fields.end()) {
      const Sexp& from = *it->second;
      constexpr std::string_view from_rule = "a copy reads (from context) or (from (build NAME))";
      bool ok = from.items.size() == 2;
      if (ok && from.items[1].is_atom()) {
        ok = from.items[1].atom == "context";
      } else if (ok) {
        const Sexp& source = from.items[1];
        ok = source.items.size() == 2 && is_head(source, "build") && source.items[1].is_atom() &&
             !source.items[1].atom.empty();
        if (ok) copy.from_build = source.items[1].atom;
      }
      if (!ok) return fail(from, "invalid data source", form, from_rule);
    }
    const Sexp& src = *fields.at("src");
    KILN_ASSIGN_OR_RETURN(copy.src, atoms_after_head(src, form, kCopyRule));
    if (copy.src.empty()) return fail(src, "no source paths", form, "(src PATH...) needs at least one path");
    const Sexp& dst = *fields.at("dst");
    KILN_ASSIGN_OR_RETURN(copy.dst, field_atom(dst, form, kCopyRule, false));
    if (copy.src.size() > 1 && !copy.dst.ends_with('/')) {
      return fail(dst, fmt::format("{} sources copied to \"{}\"", copy.src.size(), copy.dst), form,
                  "when copying several sources the destination is a directory and must end with '/'");
    }
    if (auto it = fields.find("exclude"); it != fields.end()) {
      KILN_ASSIGN_OR_RETURN(copy.exclude, atoms_after_head(*it->second, form, kCopyRule));
    }
    return copy;
  }

  std::string_view filename_;
};

// Checks `spec` with `scope` holding the builds visible from enclosing
// stages. The scope is shared down the recursion (not copied per stage, which
// would be quadratic in the number of builds); each stage removes the names it
// added before returning. A multiset, because an inner build may reuse the
// name of an outer one.
Status validate_stage(const Spec& spec, std::string_view filename, std::multiset<std::string>& scope) {
  std::set<std::string> siblings;
  for (const ChildBuild& child : spec.child_builds) {
    if (!siblings.insert(child.name).second) {
      Sexp form =
          Sexp::make_list({Sexp::make_atom("build"), Sexp::make_atom(child.name), spec_to_sexp(child.spec)});
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("{}duplicate build name \"{}\" in {} (child builds of one stage need "
                      "distinct names; rename one of them)",
                      error_location(filename, child.pos), child.name, print_sexp_truncated(form)));
    }
    // A child sees the builds of enclosing stages and its earlier siblings,
    // not itself and not the siblings after it.
    KILN_RETURN_IF_ERROR(validate_stage(child.spec, filename, scope));
    scope.insert(child.name);
  }
  auto leave_stage = [&] {
    for (const ChildBuild& child : spec.child_builds) scope.erase(scope.find(child.name));
  };
  for (const Op& op : spec.ops) {
    const Copy* copy = std::get_if<Copy>(&op.kind);
    if (copy == nullptr || !copy->from_build || scope.contains(*copy->from_build)) continue;
    const std::string& name = *copy->from_build;
    std::set<std::string> distinct(scope.begin(), scope.end());
    std::string hint = did_you_mean(name, distinct);
    // List the builds in scope, but not thousands of them.
    constexpr std::size_t kMaxListed = 20;
    std::vector<std::string> names;
    for (const std::string& n : distinct) {
      if (names.size() == kMaxListed) break;
      names.push_back(n);
    }
    std::string in_scope = names.empty() ? "no builds are in scope here"
                                         : fmt::format("builds in scope: {}", fmt::join(names, ", "));
    if (distinct.size() > kMaxListed) in_scope += fmt::format(" and {} more", distinct.size() - kMaxListed);
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{}unknown build \"{}\" in {} ({}a copy may read a build defined before it in "
                    "the same stage or in an enclosing stage; {})",
                    error_location(filename, op.pos), name, print_sexp_truncated(op_to_sexp(op)), hint,
                    in_scope));
  }
  leave_stage();
  return {};
}

}  // namespace

std::string error_location(std::string_view filename, Position pos) {
  if (pos.line <= 0) return fmt::format("{}: ", filename);
  return fmt::format("{}:{}:{}: ", filename, pos.line, pos.column);
}

Result<Spec> parse_spec(std::string_view text, std::string_view filename) {
  KILN_ASSIGN_OR_RETURN(Sexp form, read_sexp(text, filename));
  KILN_ASSIGN_OR_RETURN(Spec spec, SpecParser(filename).parse_stage(form));
  KILN_RETURN_IF_ERROR(validate(spec, filename));
  return spec;
}

Result<Spec> load_spec_file(const std::string& path) {
  // POSIX calls rather than iostreams: errno is then reliable, and reading a
  // directory fails (EISDIR) instead of looking like an empty file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open spec file {} (check the path)", path));
  std::string text;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      return errno_error(fmt::format("cannot read spec file {}", path), err);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return parse_spec(text, path);
}

Status validate(const Spec& spec, std::string_view filename) {
  std::multiset<std::string> scope;
  return validate_stage(spec, filename, scope);
}

std::string_view op_name(const OpKind& op) {
  struct Namer {
    std::string_view operator()(const Comment&) const { return "comment"; }
    std::string_view operator()(const Workdir&) const { return "workdir"; }
    std::string_view operator()(const Shell&) const { return "shell"; }
    std::string_view operator()(const Run&) const { return "run"; }
    std::string_view operator()(const Copy&) const { return "copy"; }
    std::string_view operator()(const SetUser&) const { return "user"; }
    std::string_view operator()(const Env&) const { return "env"; }
  };
  return std::visit(Namer{}, op);
}

}  // namespace kiln::spec
