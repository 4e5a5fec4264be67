// Canonical S-expressions (csexp): the exact, binary-safe encoding that step
// ids, manifests and serialised context manifests are built from.
//
// Grammar (no whitespace anywhere):
//   value := atom | list
//   atom  := <decimal length, no leading zeros> ':' <that many raw bytes>
//   list  := '(' value* ')'
// so "(3:run2:ls)" is the list of the atoms "run" and "ls". Every value has
// exactly one encoding, which is what makes hashing it meaningful.
//
//   CsexpWriter w;
//   w.open().atom("kiln-step-v1").atom("from").atom("busybox").close();
//   std::string bytes = w.take();   // "(12:kiln-step-v14:from7:busybox)"
//
//   KILN_ASSIGN_OR_RETURN(Csexp value, parse_csexp(bytes));
//
// Thread safety: values; a writer is used by one thread at a time.
// Errors: parse_csexp returns kInvalidArgument naming the byte offset.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace kiln::ids {

// Appends csexp tokens to a byte string. The writer does not check balance
// until take(), which is a programming error (abort) if lists are left open.
class CsexpWriter {
 public:
  CsexpWriter& open();
  CsexpWriter& close();
  CsexpWriter& atom(std::string_view bytes);
  CsexpWriter& atom(long long number);  // decimal, e.g. a uid

  // The encoding so far (lists may still be open).
  const std::string& bytes() const { return out_; }
  // The finished encoding; the writer is left empty.
  std::string take();

 private:
  std::string out_;
  int depth_ = 0;
};

// A parsed value: either an atom (bytes) or a list of values.
struct Csexp {
  bool is_list = false;
  std::string atom;          // when !is_list
  std::vector<Csexp> items;  // when is_list

  bool is_atom(std::string_view bytes) const { return !is_list && atom == bytes; }
};

// Parses exactly one value spanning all of `bytes`. Nesting deeper than 64
// lists is refused so that hostile input cannot exhaust the stack.
Result<Csexp> parse_csexp(std::string_view bytes);

}  // namespace kiln::ids
