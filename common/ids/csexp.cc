#include "common/ids/csexp.h"

#include <cstdlib>

#include <fmt/format.h>

namespace kiln::ids {

CsexpWriter& CsexpWriter::open() {
  out_ += '(';
  ++depth_;
  return *this;
}

CsexpWriter& CsexpWriter::close() {
  if (depth_ == 0) std::abort();  // unbalanced: a bug in the caller
  out_ += ')';
  --depth_;
  return *this;
}

CsexpWriter& CsexpWriter::atom(std::string_view bytes) {
  out_ += std::to_string(bytes.size());
  out_ += ':';
  out_ += bytes;
  return *this;
}

CsexpWriter& CsexpWriter::atom(long long number) {
  return atom(std::to_string(number));
}

std::string CsexpWriter::take() {
  if (depth_ != 0) std::abort();  // unbalanced: a bug in the caller
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  Result<Csexp> parse_all() {
    KILN_ASSIGN_OR_RETURN(Csexp value, parse_value(0));
    if (pos_ != in_.size()) return error("trailing bytes after the value");
    return value;
  }

 private:
  std::unexpected<Error> error(std::string_view what) const {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("malformed canonical S-expression at byte {}: {}", pos_, what));
  }

  Result<Csexp> parse_value(int depth) {
    if (pos_ >= in_.size()) return error("unexpected end of input");
    if (in_[pos_] == '(') {
      if (depth >= kMaxDepth) return error("lists nested too deeply");
      ++pos_;
      Csexp list;
      list.is_list = true;
      while (pos_ < in_.size() && in_[pos_] != ')') {
        KILN_ASSIGN_OR_RETURN(Csexp item, parse_value(depth + 1));
        list.items.push_back(std::move(item));
      }
      if (pos_ >= in_.size()) return error("unclosed list");
      ++pos_;
      return list;
    }
    return parse_atom();
  }

  Result<Csexp> parse_atom() {
    std::size_t start = pos_;
    std::size_t length = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      // Canonical lengths have no leading zeros, so each value has one encoding.
      if (pos_ > start && in_[start] == '0') return error("atom length has a leading zero");
      if (length > in_.size()) return error("atom length is larger than the input");
      length = length * 10 + static_cast<std::size_t>(in_[pos_] - '0');
      ++pos_;
    }
    if (pos_ == start) return error("expected '(', ')' or an atom length");
    if (pos_ >= in_.size() || in_[pos_] != ':') return error("expected ':' after the atom length");
    ++pos_;
    if (length > in_.size() - pos_) return error("atom runs past the end of the input");
    Csexp atom;
    atom.atom = std::string(in_.substr(pos_, length));
    pos_ += length;
    return atom;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<Csexp> parse_csexp(std::string_view bytes) {
  return Parser(bytes).parse_all();
}

}  // namespace kiln::ids
