// The store metadata's value encodings (internal to worker/store/metadata.cc):
// a result's and a cache's record, and the counters, as a version byte followed by
// little-endian 64-bit integers and length-prefixed strings.
//
//   std::string value = encode(ResultRecord{.parent = "a", .created_us = 1});
//   KILN_ASSIGN_OR_RETURN(ResultRecord back, decode_result("b", value));
//
// decode_* fail kInternal ("corrupt metadata record for result b") on a
// value of another version or too short.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "worker/store/metadata.h"

namespace kiln::store {

std::string encode(const ResultRecord& r);
Result<ResultRecord> decode_result(std::string_view id, std::string_view data);
std::string encode(const CacheRecord& c);
Result<CacheRecord> decode_cache(std::string_view name, std::string_view data);
// A counter (the cache hits, the misses); a value too short decodes as 0.
std::string encode_counter(std::uint64_t value);
std::uint64_t decode_counter(std::string_view data);

}  // namespace kiln::store
