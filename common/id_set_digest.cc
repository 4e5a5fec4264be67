#include "common/id_set_digest.h"

#include <cstring>

namespace kiln {
namespace {

std::array<std::uint64_t, 4> limbs_of(const std::uint8_t* bytes) {
  std::array<std::uint64_t, 4> out{};
  for (int limb = 0; limb < 4; ++limb) {
    std::uint64_t v = 0;
    for (int b = 7; b >= 0; --b) v = v << 8 | bytes[limb * 8 + b];
    out[limb] = v;
  }
  return out;
}

}  // namespace

void IdSetDigest::add(std::span<const std::uint8_t, 32> id) {
  auto x = limbs_of(id.data());
  unsigned carry = 0;
  for (int i = 0; i < 4; ++i) {
    std::uint64_t s = sum_[i] + x[i];
    unsigned c1 = s < sum_[i];
    std::uint64_t t = s + carry;
    unsigned c2 = t < s;
    sum_[i] = t;
    carry = c1 | c2;
  }
  ++count_;
}

void IdSetDigest::remove(std::span<const std::uint8_t, 32> id) {
  auto x = limbs_of(id.data());
  unsigned borrow = 0;
  for (int i = 0; i < 4; ++i) {
    std::uint64_t d = sum_[i] - x[i];
    unsigned b1 = sum_[i] < x[i];
    std::uint64_t t = d - borrow;
    unsigned b2 = d < borrow;
    sum_[i] = t;
    borrow = b1 | b2;
  }
  --count_;
}

void IdSetDigest::add(std::string_view id32) {
  add(std::span<const std::uint8_t, 32>(reinterpret_cast<const std::uint8_t*>(id32.data()), 32));
}

void IdSetDigest::remove(std::string_view id32) {
  remove(std::span<const std::uint8_t, 32>(reinterpret_cast<const std::uint8_t*>(id32.data()), 32));
}

void IdSetDigest::clear() {
  sum_ = {};
  count_ = 0;
}

Digest IdSetDigest::value() const {
  std::array<std::uint8_t, 8 + 32> bytes{};
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<std::uint8_t>(count_ >> (8 * b));
  for (int limb = 0; limb < 4; ++limb) {
    for (int b = 0; b < 8; ++b) bytes[8 + limb * 8 + b] = static_cast<std::uint8_t>(sum_[limb] >> (8 * b));
  }
  Sha256 h;
  h.update(std::string_view("kiln-id-set-v1\n"));
  h.update(std::span<const std::uint8_t>(bytes));
  return h.digest();
}

}  // namespace kiln
