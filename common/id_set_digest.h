// An order-independent digest of a set of 32-byte ids that is kept up to date
// one id at a time, so that a worker and the scheduler can compare what they
// believe the worker's cache holds without either of them rehashing the whole
// set (100,000 ids) on every change.
//
//   IdSetDigest d;
//   d.add(id_a);                 // a built step
//   d.add(id_b);
//   d.remove(id_a);              // a pruned step
//   Digest v = d.value();        // the same as for a set built as {id_b}
//
// value() = SHA-256 of "kiln-id-set-v1\n", the number of ids (8 bytes, little
// endian) and the sum of the ids modulo 2^256 (each id read as a 256-bit
// little-endian number; 32 bytes, little endian). The sum makes it order
// independent and O(1) per change; it is meant to catch drift (a lost
// message, a restart in between), not an adversary who chooses ids.
// Contract: add() only ids not in the set, remove() only ids in it (the
// callers keep the set itself); ids are exactly 32 bytes.
// Thread safety: none; one owner.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/sha256.h"

namespace kiln {

class IdSetDigest {
 public:
  void add(std::span<const std::uint8_t, 32> id);
  void remove(std::span<const std::uint8_t, 32> id);
  // The same for ids held as 32-byte strings (raw bytes, not hex).
  void add(std::string_view id32);
  void remove(std::string_view id32);
  void clear();

  std::uint64_t size() const { return count_; }
  Digest value() const;

 private:
  std::array<std::uint64_t, 4> sum_{};  // little-endian limbs
  std::uint64_t count_ = 0;
};

}  // namespace kiln
