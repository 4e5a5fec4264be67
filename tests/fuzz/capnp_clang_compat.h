// Included first (-include) in the fuzz build's Cap'n Proto code (codec.cc
// and the generated schema code): Cap'n Proto 0.9's headers, Debian 12's,
// do not compile with clang in C++20 and later. kj/string.h leaves out
// operator==(const char*, StringPtr) when the compiler has three-way
// comparison, relying on rewritten candidates, which clang does not find for
// capnp/blob.h's `a == b.asString()`; this puts the operator back (Cap'n
// Proto 0.10 fixed it upstream). g++, the normal build, needs none of it.
#pragma once

#include <kj/string.h>

#if __cpp_impl_three_way_comparison
namespace kj {
inline bool operator==(const char* a, const StringPtr& b) {
  return b == StringPtr(a);
}
}  // namespace kj
#endif
