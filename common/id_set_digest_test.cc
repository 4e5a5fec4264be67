#include "common/id_set_digest.h"

#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace kiln {
namespace {

Digest id_of(const std::string& name) {
  Sha256 h;
  h.update(name);
  return h.digest();
}

Digest digest_of(const std::vector<Digest>& ids) {
  IdSetDigest d;
  for (const Digest& id : ids) d.add(id);
  return d.value();
}

TEST(IdSetDigest, OrderDoesNotMatter) {
  std::vector<Digest> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(id_of("step-" + std::to_string(i)));
  Digest forward = digest_of(ids);
  std::mt19937 rng(7);
  std::shuffle(ids.begin(), ids.end(), rng);
  EXPECT_EQ(digest_of(ids), forward);
}

TEST(IdSetDigest, RemoveUndoesAdd) {
  IdSetDigest d;
  const Digest empty = d.value();
  d.add(id_of("a"));
  const Digest just_a = d.value();
  d.add(id_of("b"));
  EXPECT_NE(d.value(), just_a);
  d.remove(id_of("b"));
  EXPECT_EQ(d.value(), just_a);
  d.remove(id_of("a"));
  EXPECT_EQ(d.value(), empty);
  EXPECT_EQ(d.size(), 0u);
}

TEST(IdSetDigest, DifferentSetsDiffer) {
  EXPECT_NE(digest_of({id_of("a"), id_of("b")}), digest_of({id_of("a"), id_of("c")}));
  EXPECT_NE(digest_of({id_of("a")}), digest_of({id_of("a"), id_of("a")}));  // counts differ
  EXPECT_NE(digest_of({}), digest_of({id_of("a")}));
}

TEST(IdSetDigest, CarriesAndBorrowsAcrossLimbs) {
  // 2^64 - 1 in the lowest limb, then 1: the sum carries into the next limb,
  // and removing the 1 borrows back.
  Digest low_ones{};
  std::fill(low_ones.begin(), low_ones.begin() + 8, 0xff);
  Digest one{};
  one[0] = 1;
  Digest carried{};
  carried[8] = 1;
  IdSetDigest a;
  a.add(low_ones);
  a.add(one);
  IdSetDigest b;  // the same sum and count, reached without a carry
  b.add(carried);
  b.add(Digest{});
  EXPECT_EQ(a.value(), b.value());
  a.remove(one);
  IdSetDigest c;
  c.add(low_ones);
  EXPECT_EQ(a.value(), c.value());
  // All ones plus one wraps to zero (modulo 2^256).
  Digest all_ones;
  all_ones.fill(0xff);
  IdSetDigest wrap;
  wrap.add(all_ones);
  wrap.add(one);
  IdSetDigest zeros;
  zeros.add(Digest{});
  zeros.add(Digest{});
  EXPECT_EQ(wrap.value(), zeros.value());
}

TEST(IdSetDigest, StringAndSpanFormsAgree) {
  Digest id = id_of("x");
  std::string raw(reinterpret_cast<const char*>(id.data()), id.size());
  IdSetDigest a, b;
  a.add(id);
  b.add(std::string_view(raw));
  EXPECT_EQ(a.value(), b.value());
  b.remove(std::string_view(raw));
  EXPECT_EQ(b.value(), IdSetDigest().value());
}

TEST(IdSetDigest, ValueIsTheDocumentedHash) {
  // One id whose sum is 1 (lowest byte), count 1.
  Digest one{};
  one[0] = 1;
  IdSetDigest d;
  d.add(one);
  std::string bytes = "kiln-id-set-v1\n";
  bytes += std::string("\x01\0\0\0\0\0\0\0", 8);
  bytes += std::string("\x01", 1) + std::string(31, '\0');
  Sha256 h;
  h.update(bytes);
  EXPECT_EQ(d.value(), h.digest());
}

}  // namespace
}  // namespace kiln
