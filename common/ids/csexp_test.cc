#include "common/ids/csexp.h"

#include <gtest/gtest.h>

#include <string>

namespace kiln::ids {
namespace {

using namespace std::string_literals;

TEST(Csexp, WriterProducesCanonicalBytes) {
  CsexpWriter w;
  w.open().atom("run").open().atom("uid").atom(1000LL).close().atom("").atom("a\0b"s).close();
  EXPECT_EQ(w.take(), "(3:run(3:uid4:1000)0:3:a\0b)"s);
}

TEST(Csexp, ParseRoundTripsBinaryAtoms) {
  std::string bytes = "(4:file(2:\n)1:))3:a\0b)"s;
  auto v = parse_csexp(bytes);
  ASSERT_TRUE(v.has_value()) << v.error().to_string();
  ASSERT_TRUE(v->is_list);
  ASSERT_EQ(v->items.size(), 3u);
  EXPECT_TRUE(v->items[0].is_atom("file"));
  ASSERT_TRUE(v->items[1].is_list);
  EXPECT_TRUE(v->items[1].items[0].is_atom("\n)"));
  EXPECT_TRUE(v->items[1].items[1].is_atom(")"));
  EXPECT_EQ(v->items[2].atom, "a\0b"s);
}

TEST(Csexp, ParseRejectsNonCanonicalOrBrokenInput) {
  for (std::string bad : {"", "(", "(3:ab)", "(03:abc)", "3abc", "(1:a))", "(1:a) ", " (1:a)", "(x)",
                          "99999999999999999999999:a"}) {
    auto v = parse_csexp(bad);
    EXPECT_FALSE(v.has_value()) << "accepted " << bad;
    if (!v) {
      EXPECT_NE(v.error().message().find("at byte"), std::string::npos) << v.error().message();
    }
  }
}

TEST(Csexp, ParseRefusesDeepNesting) {
  std::string deep(100, '(');
  deep += std::string(100, ')');
  EXPECT_FALSE(parse_csexp(deep).has_value());
  std::string ok(60, '(');
  ok += std::string(60, ')');
  EXPECT_TRUE(parse_csexp(ok).has_value());
}

}  // namespace
}  // namespace kiln::ids
