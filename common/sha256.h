// SHA-256 through OpenSSL's EVP interface, and lowercase hex encoding.
//
//   Sha256 h;
//   h.update("abc");
//   std::string id = h.hex_digest();   // 64 lowercase hex characters
//   std::string d = sha256_hex("abc"); // same, in one call
//
// Thread safety: a Sha256 object is used by one thread at a time; distinct
// objects are independent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void update(std::string_view data);
  void update(std::span<const std::uint8_t> data);
  // Finishes the hash. The object must not be updated afterwards.
  Digest digest();
  std::string hex_digest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay out of users
};

std::string sha256_hex(std::string_view data);

// Digest of a whole file's content, read in large blocks.
Result<Digest> sha256_file(const std::string& path);

// Lowercase hex of arbitrary bytes.
std::string to_hex(std::span<const std::uint8_t> bytes);
inline std::string to_hex(const Digest& d) {
  return to_hex(std::span<const std::uint8_t>(d));
}

// True when `s` is exactly 64 lowercase hex characters (a kiln id or digest).
bool is_sha256_hex(std::string_view s);

}  // namespace kiln
