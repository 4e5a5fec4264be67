// Specs as S-expressions: the exact forms print_spec lays out and parse_spec
// reads, for code that wants the structure rather than the text (error
// messages that quote a form, the canonical printer, tools).
//
//   Sexp form = op_to_sexp(op);                 // (run (shell "make"))
//   std::string line = print_sexp(form);
//
// Empty lists (caches, network, secrets, excludes, buildkit options) and a
// copy from the context are left out, as in canonical text. Values only.
#pragma once

#include "common/spec/sexp.h"
#include "common/spec/spec.h"

namespace kiln::spec {

// (run ...), (copy ...), ... with fields in canonical order.
Sexp op_to_sexp(const Op& op);

// ((build NAME SPEC)... (from IMAGE) OP...).
Sexp spec_to_sexp(const Spec& spec);

// "FILE:LINE:COL: " (or "FILE: " for a position not from a file): the prefix
// of every spec error.
std::string error_location(std::string_view filename, Position pos);

}  // namespace kiln::spec
