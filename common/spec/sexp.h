// S-expressions as OCaml's Sexplib reads and writes them: the surface syntax
// of build specs (see README.md in this directory for the full grammar).
//
// A Sexp is an atom (a byte string) or a list of Sexps, and remembers where
// its first character was in the source. Whether an atom was written quoted
// or bare does not matter: `"abc"` and `abc` read as the same atom.
//
//   KILN_ASSIGN_OR_RETURN(Sexp form, read_sexp("((from busybox))", "a.spec"));
//   form.items[0].items[1].atom;          // "busybox"
//   print_sexp(form);                     // "((from busybox))"
//   print_atom("make all");               // "\"make all\""
//
// Contract: read_sexp reads exactly one top-level form (comments and blanks
// around it are fine) and fails with kInvalidArgument, "FILE:LINE:COL: what
// (rule)", on anything else. print_atom/print_sexp produce text that
// read_sexp reads back to an equal value, for any byte string. Values only;
// thread safety: none needed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/spec/spec.h"

namespace kiln::spec {

struct Sexp {
  enum class Kind { kAtom, kList };

  Kind kind = Kind::kAtom;
  std::string atom;         // the bytes of an atom, escapes decoded
  std::vector<Sexp> items;  // the elements of a list
  Position pos;             // first character ('(' of a list, '"' of a quoted atom)

  static Sexp make_atom(std::string text, Position pos = {});
  static Sexp make_list(std::vector<Sexp> items, Position pos = {});

  bool is_atom() const { return kind == Kind::kAtom; }
  bool is_list() const { return kind == Kind::kList; }

  // Structural equality; positions are ignored (Position== is always true).
  bool operator==(const Sexp&) const = default;
};

// Lists may nest at most this deep; deeper input is refused rather than
// risking the stack (a real spec nests a handful of levels).
inline constexpr int kMaxSexpDepth = 200;

// Reads exactly one form from `text`. `filename` only labels errors.
Result<Sexp> read_sexp(std::string_view text, std::string_view filename);

// An atom as Sexplib prints it: bare when that reads back the same, otherwise
// quoted with \" \\ \n \t \r \b and \DDD (decimal) for every other byte
// outside printable ASCII. Non-ASCII bytes (UTF-8 included) are therefore
// always quoted and escaped, exactly like Sexplib.
std::string print_atom(std::string_view atom);

// A form on one line, elements separated by one space.
std::string print_sexp(const Sexp& sexp);

// print_sexp cut to at most `max_chars` characters, ending in "..." when cut.
std::string print_sexp_truncated(const Sexp& sexp, std::size_t max_chars = 80);

}  // namespace kiln::spec
