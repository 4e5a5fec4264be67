// The canonical printer: Spec -> Sexp -> text in OBuilder's layout (the
// layout rules are spelled out in README.md, "Canonical layout").
#include <fmt/format.h>

#include <string>
#include <vector>

#include "common/spec/sexp.h"
#include "common/spec/spec.h"
#include "common/spec/spec_sexp.h"

namespace kiln::spec {
namespace {

// OBuilder prints with OCaml Format's default margin of 78. Format gives up on
// keeping a box on one line as soon as its pending contents fill the space
// left on the line, so a copy stays on one line only if its fields end by
// column 77: the whole line, closing ')' included, is then at most 78 wide.
constexpr std::size_t kMargin = 78;

Sexp atom(std::string text) {
  return Sexp::make_atom(std::move(text));
}

Sexp list(std::vector<Sexp> items) {
  return Sexp::make_list(std::move(items));
}

// (NAME a b c): the inlined-list fields (src, exclude, network, shell...).
Sexp atoms_field(std::string name, const std::vector<std::string>& values) {
  std::vector<Sexp> items{atom(std::move(name))};
  for (const std::string& v : values) items.push_back(atom(v));
  return list(std::move(items));
}

template <typename Mount>
Sexp mount_to_sexp(const Mount& mount) {
  std::vector<Sexp> items{atom(mount.id), list({atom("target"), atom(mount.target)})};
  if (!mount.buildkit_options.empty()) {
    // As OBuilder writes it: one list holding the (KEY VALUE) pairs.
    std::vector<Sexp> pairs;
    for (const auto& [key, value] : mount.buildkit_options) pairs.push_back(list({atom(key), atom(value)}));
    items.push_back(list({atom("buildkit_options"), list(std::move(pairs))}));
  }
  return list(std::move(items));
}

template <typename Mount>
Sexp mounts_field(std::string name, const std::vector<Mount>& mounts) {
  std::vector<Sexp> items{atom(std::move(name))};
  for (const Mount& m : mounts) items.push_back(mount_to_sexp(m));
  return list(std::move(items));
}

struct OpToSexp {
  Sexp operator()(const Comment& c) const { return list({atom("comment"), atom(c.text)}); }
  Sexp operator()(const Workdir& w) const { return list({atom("workdir"), atom(w.path)}); }
  Sexp operator()(const Shell& s) const { return atoms_field("shell", s.args); }
  Sexp operator()(const Env& e) const { return list({atom("env"), atom(e.name), atom(e.value)}); }
  Sexp operator()(const SetUser& u) const {
    if (const auto* unix_user = std::get_if<UnixUser>(&u.user)) {
      return list({atom("user"), list({atom("uid"), atom(std::to_string(unix_user->uid))}),
                   list({atom("gid"), atom(std::to_string(unix_user->gid))})});
    }
    return list({atom("user"), list({atom("name"), atom(std::get<WindowsUser>(u.user).name)})});
  }
  Sexp operator()(const Run& r) const {
    std::vector<Sexp> items{atom("run")};
    if (!r.caches.empty()) items.push_back(mounts_field("cache", r.caches));
    if (!r.network.empty()) items.push_back(atoms_field("network", r.network));
    if (!r.secrets.empty()) items.push_back(mounts_field("secrets", r.secrets));
    items.push_back(list({atom("shell"), atom(r.shell)}));
    return list(std::move(items));
  }
  Sexp operator()(const Copy& c) const {
    std::vector<Sexp> items{atom("copy")};
    if (c.from_build) items.push_back(list({atom("from"), list({atom("build"), atom(*c.from_build)})}));
    items.push_back(atoms_field("src", c.src));
    items.push_back(list({atom("dst"), atom(c.dst)}));
    if (!c.exclude.empty()) items.push_back(atoms_field("exclude", c.exclude));
    return list(std::move(items));
  }
};

bool is_head(const Sexp& form, std::string_view name) {
  return form.is_list() && !form.items.empty() && form.items[0].is_atom() && form.items[0].atom == name;
}

void newline_to(std::string& out, std::size_t column) {
  out += '\n';
  out.append(column, ' ');
}

// Appends `item`, whose first character lands on 0-based `column`.
void layout(std::string& out, const Sexp& item, std::size_t column) {
  if (is_head(item, "build") && item.items.size() == 3 && item.items[1].is_atom() &&
      item.items[2].is_list()) {
    // (build NAME
    //        (ITEM
    //         ITEM))     -- the child spec hangs under NAME.
    out += "(build ";
    out += print_atom(item.items[1].atom);
    std::size_t name_column = column + 7;
    newline_to(out, name_column);
    out += '(';
    const auto& children = item.items[2].items;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (i > 0) newline_to(out, name_column + 1);
      layout(out, children[i], name_column + 1);
    }
    out += "))";
    return;
  }
  if (is_head(item, "run") || is_head(item, "copy")) {
    const std::string& head = item.items[0].atom;
    std::size_t fields_column = column + head.size() + 2;
    std::vector<std::string> fields;
    std::size_t one_line_width = 0;
    for (std::size_t i = 1; i < item.items.size(); ++i) {
      fields.push_back(print_sexp(item.items[i]));
      one_line_width += fields.back().size() + (i > 1 ? 1 : 0);
    }
    // A run puts each field on its own line; a copy only when they do not fit.
    bool one_line = head == "copy" ? fields_column + one_line_width < kMargin : fields.size() <= 1;
    out += '(';
    out += head;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i == 0 || one_line) {
        out += ' ';
      } else {
        newline_to(out, fields_column);
      }
      out += fields[i];
    }
    out += ')';
    return;
  }
  out += print_sexp(item);
}

}  // namespace

Sexp op_to_sexp(const Op& op) {
  return std::visit(OpToSexp{}, op.kind);
}

Sexp spec_to_sexp(const Spec& spec) {
  std::vector<Sexp> items;
  for (const ChildBuild& child : spec.child_builds) {
    items.push_back(list({atom("build"), atom(child.name), spec_to_sexp(child.spec)}));
  }
  items.push_back(list({atom("from"), atom(spec.from)}));
  for (const Op& op : spec.ops) items.push_back(op_to_sexp(op));
  return list(std::move(items));
}

std::string print_spec(const Spec& spec) {
  Sexp form = spec_to_sexp(spec);
  std::string out = "(";
  for (std::size_t i = 0; i < form.items.size(); ++i) {
    if (i > 0) newline_to(out, 1);
    layout(out, form.items[i], 1);
  }
  out += "\n)\n";
  return out;
}

std::string print_op(const Op& op) {
  return print_sexp(op_to_sexp(op));
}

}  // namespace kiln::spec
