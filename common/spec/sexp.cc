#include "common/spec/sexp.h"

#include <fmt/format.h>

#include <utility>

namespace kiln::spec {

Sexp Sexp::make_atom(std::string text, Position pos) {
  Sexp s;
  s.kind = Kind::kAtom;
  s.atom = std::move(text);
  s.pos = pos;
  return s;
}

Sexp Sexp::make_list(std::vector<Sexp> items, Position pos) {
  Sexp s;
  s.kind = Kind::kList;
  s.items = std::move(items);
  s.pos = pos;
  return s;
}

namespace {

// Sexplib's blanks. A carriage return only counts as part of a CR LF line
// break (a lone one is an error, as in Sexplib); other control bytes such as
// \v are atom bytes there too. The printer quotes them all, so round trips do
// not depend on this.
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f';
}

bool ends_atom(char c) {
  return is_blank(c) || c == '\r' || c == '(' || c == ')' || c == '"' || c == ';';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Reader {
 public:
  Reader(std::string_view text, std::string_view filename) : text_(text), filename_(filename) {}

  Result<Sexp> read_document() {
    // Some editors start UTF-8 files with a byte order mark; it is not part
    // of the spec, and editors do not show it as a column.
    if (text_.starts_with("\xEF\xBB\xBF")) offset_ = 3;
    KILN_RETURN_IF_ERROR(skip_blanks_and_comments(0));
    if (at_end()) {
      return fail(here(), "empty input",
                  "a spec is one parenthesised form, e.g. ((from busybox) (run (shell \"echo hi\")))");
    }
    KILN_ASSIGN_OR_RETURN(Sexp form, read_datum(0));
    KILN_RETURN_IF_ERROR(skip_blanks_and_comments(0));
    if (!at_end()) {
      if (peek() == ')') return unexpected_close();
      return fail(here(), "trailing data after the top-level form",
                  "a spec file holds exactly one form; put every item inside its outer parentheses");
    }
    return form;
  }

 private:
  bool at_end() const { return offset_ >= text_.size(); }
  char peek(std::size_t ahead = 0) const {
    return offset_ + ahead < text_.size() ? text_[offset_ + ahead] : '\0';
  }
  bool has(std::size_t ahead) const { return offset_ + ahead < text_.size(); }
  Position here() const { return Position{line_, column_}; }

  void advance() {
    if (text_[offset_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++offset_;
  }

  std::unexpected<Error> fail(Position at, std::string_view what, std::string_view rule) const {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}:{}:{}: {} ({})", filename_, at.line, at.column, what, rule));
  }

  std::unexpected<Error> unexpected_close() const {
    return fail(here(), "unexpected ')'",
                "every ')' must close a '(' opened before it; remove it or add the missing '('");
  }

  // Skips blanks, `;` line comments, nestable `#| |#` block comments and
  // `#;` datum comments, which drop the next form.
  Status skip_blanks_and_comments(int depth) {
    while (!at_end()) {
      char c = peek();
      if (is_blank(c)) {
        advance();
      } else if (c == '\r') {
        if (peek(1) != '\n') {
          return fail(here(), "carriage return not followed by a line feed",
                      "outside strings a CR may only end a line as CR LF; quote the text or remove the CR");
        }
        advance();
      } else if (c == ';') {
        while (!at_end() && peek() != '\n') advance();
      } else if (c == '#' && peek(1) == '|') {
        KILN_RETURN_IF_ERROR(skip_block_comment());
      } else if (c == '#' && peek(1) == ';') {
        Position start = here();
        // Datum comments may stack ("#; #; a b"); count them as nesting so
        // that the recursion stays bounded.
        if (depth >= kMaxSexpDepth) {
          return fail(start, "datum comments nested too deeply",
                      fmt::format("a spec may nest forms at most {} levels deep", kMaxSexpDepth));
        }
        advance();
        advance();
        KILN_RETURN_IF_ERROR(skip_blanks_and_comments(depth + 1));
        if (at_end() || peek() == ')') {
          return fail(start, "datum comment '#;' has no form to comment out",
                      "'#;' must be followed by the form it disables");
        }
        KILN_ASSIGN_OR_RETURN(Sexp ignored, read_datum(depth + 1));
        (void)ignored;
      } else {
        return {};
      }
    }
    return {};
  }

  Status skip_block_comment() {
    // Remember every opener so that an unterminated comment points at the
    // innermost one still open, which is where the fix is needed.
    std::vector<Position> open;
    open.push_back(here());
    advance();
    advance();
    while (!open.empty()) {
      if (at_end()) {
        return fail(open.back(), "unterminated block comment",
                    "a '#|' comment must be closed by '|#'; block comments nest");
      }
      if (peek() == '#' && peek(1) == '|') {
        open.push_back(here());
        advance();
        advance();
      } else if (peek() == '|' && peek(1) == '#') {
        open.pop_back();
        advance();
        advance();
      } else {
        advance();
      }
    }
    return {};
  }

  // Reads one form starting at the current (non-blank) character.
  Result<Sexp> read_datum(int depth) {
    char c = peek();
    if (c == '(') return read_list(depth);
    if (c == ')') return unexpected_close();
    if (c == '"') return read_quoted();
    Position start = here();
    std::size_t begin = offset_;
    while (!at_end() && !ends_atom(peek())) {
      // Sexplib refuses comment markers glued to a bare atom ("a#|b", "|#",
      // "a#;b") rather than guess what was meant.
      bool marker =
          (peek() == '#' && (peek(1) == '|' || peek(1) == ';')) || (peek() == '|' && peek(1) == '#');
      if (marker) {
        return fail(
            here(), fmt::format("comment marker \"{}{}\" inside an unquoted atom", peek(), peek(1)),
            "#|, |# and #; cannot appear in a bare atom; quote the atom or separate the comment with a "
            "space");
      }
      advance();
    }
    return Sexp::make_atom(std::string(text_.substr(begin, offset_ - begin)), start);
  }

  Result<Sexp> read_list(int depth) {
    Position start = here();
    if (depth >= kMaxSexpDepth) {
      return fail(start, "lists nested too deeply",
                  fmt::format("a spec may nest parentheses at most {} levels deep", kMaxSexpDepth));
    }
    advance();
    std::vector<Sexp> items;
    while (true) {
      KILN_RETURN_IF_ERROR(skip_blanks_and_comments(depth + 1));
      if (at_end()) {
        return fail(start, "unbalanced parentheses: this '(' is never closed",
                    "add the missing ')' at the end of the form");
      }
      if (peek() == ')') {
        advance();
        return Sexp::make_list(std::move(items), start);
      }
      KILN_ASSIGN_OR_RETURN(Sexp item, read_datum(depth + 1));
      items.push_back(std::move(item));
    }
  }

  Result<Sexp> read_quoted() {
    Position start = here();
    advance();
    std::string out;
    while (true) {
      if (at_end()) {
        return fail(start, "unterminated string", "a string opened with '\"' must be closed with '\"'");
      }
      char c = peek();
      if (c == '"') {
        advance();
        return Sexp::make_atom(std::move(out), start);
      }
      if (c != '\\') {
        out += c;
        advance();
        continue;
      }
      Position escape_pos = here();
      if (!has(1)) {
        advance();
        continue;  // reported as an unterminated string by the next turn
      }
      char e = peek(1);
      char simple = '\0';
      switch (e) {
        case '\\': simple = '\\'; break;
        case '"': simple = '"'; break;
        case '\'': simple = '\''; break;
        case 'n': simple = '\n'; break;
        case 't': simple = '\t'; break;
        case 'b': simple = '\b'; break;
        case 'r': simple = '\r'; break;
        default: break;
      }
      if (simple != '\0') {
        out += simple;
        advance();
        advance();
        continue;
      }
      if (e == '\n' || (e == '\r' && peek(2) == '\n')) {
        // A line continuation: the line break and the next line's
        // indentation are not part of the string.
        advance();
        if (e == '\r') advance();
        advance();
        while (!at_end() && (peek() == ' ' || peek() == '\t')) advance();
        continue;
      }
      if (is_digit(e)) {
        if (!is_digit(peek(2)) || !is_digit(peek(3))) {
          return fail(
              escape_pos, "bad escape number: \\ and a digit must start a three-digit \\DDD escape",
              "a \\DDD escape is a decimal byte value from \\000 to \\255; write \\\\ for a backslash");
        }
        int value = (e - '0') * 100 + (peek(2) - '0') * 10 + (peek(3) - '0');
        if (value > 255) {
          return fail(escape_pos, fmt::format("bad escape number \\{}", text_.substr(offset_ + 1, 3)),
                      "a \\DDD escape is a decimal byte value from \\000 to \\255");
        }
        out += static_cast<char>(value);
        for (int i = 0; i < 4; ++i) advance();
        continue;
      }
      if (e == 'x') {
        if (hex_value(peek(2)) < 0 || hex_value(peek(3)) < 0) {
          return fail(escape_pos, "bad escape: \\x must be followed by two hex digits",
                      "a \\xHH escape is a byte in hexadecimal, e.g. \\x41; write \\\\ for a backslash");
        }
        out += static_cast<char>(hex_value(peek(2)) * 16 + hex_value(peek(3)));
        for (int i = 0; i < 4; ++i) advance();
        continue;
      }
      // Sexplib keeps other escapes (backslash q, backslash space...) as written.
      out += '\\';
      advance();
    }
  }

  std::string_view text_;
  std::string_view filename_;
  std::size_t offset_ = 0;
  int line_ = 1;
  int column_ = 1;
};

// Sexplib's rule for atoms that cannot be written bare.
bool must_quote(std::string_view atom) {
  if (atom.empty()) return true;
  for (std::size_t i = 0; i < atom.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(atom[i]);
    if (c <= 32 || c >= 127) return true;
    if (c == '"' || c == '(' || c == ')' || c == ';' || c == '\\') return true;
    // "#|" and "|#" anywhere, and "#;" (covered by ';'), would read as comments.
    if (i > 0 && ((c == '|' && atom[i - 1] == '#') || (c == '#' && atom[i - 1] == '|'))) return true;
  }
  return false;
}

void append_sexp(std::string& out, const Sexp& sexp) {
  if (sexp.is_atom()) {
    out += print_atom(sexp.atom);
    return;
  }
  out += '(';
  for (std::size_t i = 0; i < sexp.items.size(); ++i) {
    if (i > 0) out += ' ';
    append_sexp(out, sexp.items[i]);
  }
  out += ')';
}

}  // namespace

Result<Sexp> read_sexp(std::string_view text, std::string_view filename) {
  return Reader(text, filename).read_document();
}

std::string print_atom(std::string_view atom) {
  if (!must_quote(atom)) return std::string(atom);
  std::string out = "\"";
  for (char ch : atom) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      default:
        if (c >= 32 && c < 127) {
          out += ch;
        } else {
          out += fmt::format("\\{:03d}", c);
        }
    }
  }
  out += '"';
  return out;
}

std::string print_sexp(const Sexp& sexp) {
  std::string out;
  append_sexp(out, sexp);
  return out;
}

std::string print_sexp_truncated(const Sexp& sexp, std::size_t max_chars) {
  std::string text = print_sexp(sexp);
  if (text.size() <= max_chars || max_chars < 3) return text;
  text.resize(max_chars - 3);
  text += "...";
  return text;
}

}  // namespace kiln::spec
