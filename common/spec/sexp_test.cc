#include "common/spec/sexp.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace kiln::spec {
namespace {

Sexp read_ok(std::string_view text) {
  auto r = read_sexp(text, "t.spec");
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? *r : Sexp{};
}

std::string read_error(std::string_view text) {
  auto r = read_sexp(text, "t.spec");
  EXPECT_FALSE(r.has_value()) << "unexpectedly read: " << print_sexp(*r);
  if (r) return "";
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  return r.error().message();
}

Sexp a(std::string s) {
  return Sexp::make_atom(std::move(s));
}
Sexp l(std::vector<Sexp> items) {
  return Sexp::make_list(std::move(items));
}

TEST(SexpReader, AtomsAndListsWithPositions) {
  Sexp s = read_ok("(a (bc \"d e\")\n  x)");
  EXPECT_EQ(s, l({a("a"), l({a("bc"), a("d e")}), a("x")}));
  EXPECT_EQ(s.pos.line, 1);
  EXPECT_EQ(s.pos.column, 1);
  EXPECT_EQ(s.items[1].pos.column, 4);
  EXPECT_EQ(s.items[1].items[1].pos.column, 8);  // the opening quote
  EXPECT_EQ(s.items[2].pos.line, 2);
  EXPECT_EQ(s.items[2].pos.column, 3);
}

TEST(SexpReader, SkipsAUtf8ByteOrderMark) {
  Sexp s = read_ok("\xEF\xBB\xBF(a\n b)");
  EXPECT_EQ(s, l({a("a"), a("b")}));
  EXPECT_EQ(s.pos.column, 1);
  EXPECT_EQ(read_error("\xEF\xBB\xBF)").rfind("t.spec:1:1: unexpected ')'", 0), 0u);
}

TEST(SexpReader, QuotedAndBareAtomsAreTheSame) {
  EXPECT_EQ(read_ok("(\"abc\")"), read_ok("(abc)"));
}

TEST(SexpReader, HashIsAnOrdinaryCharacterInsideAtoms) {
  EXPECT_EQ(read_ok("(a#b c# |x)"), l({a("a#b"), a("c#"), a("|x")}));
}

TEST(SexpReader, Escapes) {
  EXPECT_EQ(read_ok(R"("\\ \" \' \n \t \b \r")").atom, "\\ \" ' \n \t \b \r");
  EXPECT_EQ(read_ok(R"("\065\066\x43\x7a\0655")").atom, "ABCzA5");
  EXPECT_EQ(read_ok(R"("\255\000")").atom, std::string("\xff\0", 2));
  // Other escapes keep the backslash, as Sexplib does (backslash-space too).
  EXPECT_EQ(read_ok(R"("\q \X41 \ x")").atom, "\\q \\X41 \\ x");
  // Backslash-newline drops the line break and the next line's indentation.
  EXPECT_EQ(read_ok("\"a \\\n     \t b\"").atom, "a b");
  EXPECT_EQ(read_ok("\"a\\\r\n  b\"").atom, "ab");
  // Raw newlines and carriage returns inside a string are kept.
  EXPECT_EQ(read_ok("\"a\nb\rc\"").atom, "a\nb\rc");
}

TEST(SexpReader, Blanks) {
  EXPECT_EQ(read_ok("(a\r\n\tb\fc \x0b)"), l({a("a"), a("b"), a("c"), a("\x0b")}));
}

TEST(SexpReader, Comments) {
  Sexp s = read_ok(
      "; leading\n"
      "(a ; line comment\n"
      " #| block #| nested |# still comment |# b\n"
      " #; (skipped (form)) c\n"
      " #;skipped d)\n"
      "#| trailing |# ; end");
  EXPECT_EQ(s, l({a("a"), a("b"), a("c"), a("d")}));
  EXPECT_EQ(s.items[2].pos.line, 4);
  EXPECT_EQ(s.items[2].pos.column, 22);
}

TEST(SexpReader, ErrorsPointAtTheProblem) {
  EXPECT_EQ(read_error("(a\n  \"bc"),
            "t.spec:2:3: unterminated string (a string opened with '\"' must be closed with '\"')");
  EXPECT_EQ(read_error("(a\n (b c)"),
            "t.spec:1:1: unbalanced parentheses: this '(' is never closed (add the missing ')' at the end "
            "of the form)");
  EXPECT_EQ(read_error("(a)\n  )"),
            "t.spec:2:3: unexpected ')' (every ')' must close a '(' opened before it; remove it or add the "
            "missing '(')");
  EXPECT_EQ(read_error(")"),
            "t.spec:1:1: unexpected ')' (every ')' must close a '(' opened before it; remove it or add the "
            "missing '(')");
  EXPECT_EQ(
      read_error("(a \"x\\256\")"),
      "t.spec:1:6: bad escape number \\256 (a \\DDD escape is a decimal byte value from \\000 to \\255)");
  EXPECT_EQ(read_error("(a)\n#| one #| two |#"),
            "t.spec:2:1: unterminated block comment (a '#|' comment must be closed by '|#'; block comments "
            "nest)");
  EXPECT_EQ(read_error("(a)\n (b)"),
            "t.spec:2:2: trailing data after the top-level form (a spec file holds exactly one form; put "
            "every item inside its outer parentheses)");
  EXPECT_EQ(read_error(" ; nothing\n  "),
            "t.spec:2:3: empty input (a spec is one parenthesised form, e.g. ((from busybox) (run (shell "
            "\"echo hi\"))))");
  EXPECT_EQ(read_error("(a \"x\\1y\")"),
            "t.spec:1:6: bad escape number: \\ and a digit must start a three-digit \\DDD escape (a \\DDD "
            "escape is a decimal byte value from \\000 to \\255; write \\\\ for a backslash)");
  EXPECT_EQ(read_error("(a\n \"\\x4g\")"),
            "t.spec:2:3: bad escape: \\x must be followed by two hex digits (a \\xHH escape is a byte in "
            "hexadecimal, e.g. \\x41; write \\\\ for a backslash)");
  EXPECT_EQ(read_error("(a \r b)"),
            "t.spec:1:4: carriage return not followed by a line feed (outside strings a CR may only end a "
            "line as CR LF; quote the text or remove the CR)");
  EXPECT_EQ(
      read_error("(ab#|c)"),
      "t.spec:1:4: comment marker \"#|\" inside an unquoted atom (#|, |# and #; cannot appear in a bare "
      "atom; quote the atom or separate the comment with a space)");
  EXPECT_NE(read_error("(a |# b)").find("t.spec:1:4: comment marker \"|#\""), std::string::npos);
  EXPECT_NE(read_error("(a#;b)").find("t.spec:1:3: comment marker \"#;\""), std::string::npos);
  EXPECT_EQ(read_error("(a #;)"),
            "t.spec:1:4: datum comment '#;' has no form to comment out ('#;' must be followed by the form "
            "it disables)");
}

TEST(SexpReader, RefusesExcessiveNesting) {
  std::string deep(kMaxSexpDepth + 1, '(');
  deep += std::string(kMaxSexpDepth + 1, ')');
  EXPECT_NE(read_error(deep).find("nested too deeply"), std::string::npos);
  std::string ok(kMaxSexpDepth, '(');
  ok += std::string(kMaxSexpDepth, ')');
  read_ok(ok);
}

TEST(SexpReader, RefusesEndlessDatumComments) {
  std::string stacked;
  for (int i = 0; i <= kMaxSexpDepth; ++i) stacked += "#; ";
  stacked += "a";
  EXPECT_EQ(read_error(stacked).rfind(
                fmt::format("t.spec:1:{}: datum comments nested too deeply", 3 * kMaxSexpDepth + 1), 0),
            0u);
}

TEST(SexpPrinter, BareWhenPossible) {
  EXPECT_EQ(print_atom("abc"), "abc");
  EXPECT_EQ(print_atom("/usr/local/bin/"), "/usr/local/bin/");
  EXPECT_EQ(print_atom("a#b"), "a#b");
  EXPECT_EQ(print_atom("|x"), "|x");
  EXPECT_EQ(print_atom("'q'"), "'q'");
}

TEST(SexpPrinter, QuotesWhatWouldNotReadBack) {
  EXPECT_EQ(print_atom(""), "\"\"");
  EXPECT_EQ(print_atom("a b"), "\"a b\"");
  EXPECT_EQ(print_atom("(x"), "\"(x\"");
  EXPECT_EQ(print_atom("x)"), "\"x)\"");
  EXPECT_EQ(print_atom("a;b"), "\"a;b\"");
  EXPECT_EQ(print_atom("a\\b"), "\"a\\\\b\"");
  EXPECT_EQ(print_atom("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(print_atom("#|x"), "\"#|x\"");
  EXPECT_EQ(print_atom("x|#"), "\"x|#\"");
  EXPECT_EQ(print_atom("#;x"), "\"#;x\"");
  EXPECT_EQ(print_atom("a\nb\tc\rd\be"), "\"a\\nb\\tc\\rd\\be\"");
  EXPECT_EQ(print_atom(std::string("\x01\x7f", 2)), "\"\\001\\127\"");
  // Non-ASCII bytes (here UTF-8 "é") are escaped, as Sexplib does.
  EXPECT_EQ(print_atom("caf\xc3\xa9"), "\"caf\\195\\169\"");
}

TEST(SexpPrinter, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (std::string atom :
       {all, std::string("\0", 1), std::string("#"), std::string("|"), std::string("#|#")}) {
    Sexp form = l({a(atom), l({a(atom)})});
    EXPECT_EQ(read_ok(print_sexp(form)), form) << print_sexp(form);
  }
}

TEST(SexpPrinter, OneLineAndTruncated) {
  Sexp form = l({a("run"), l({a("shell"), a("make all")}), l({})});
  EXPECT_EQ(print_sexp(form), "(run (shell \"make all\") ())");
  EXPECT_EQ(print_sexp_truncated(form, 12), "(run (she...");
  EXPECT_EQ(print_sexp_truncated(form, 80), "(run (shell \"make all\") ())");
}

}  // namespace
}  // namespace kiln::spec
