#include "worker/store/metadata_records.h"

#include <cstdint>

#include <fmt/format.h>

namespace kiln::store {

namespace {

constexpr char kFormatVersion = 1;

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out += s;
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u64(std::uint64_t& v) {
    if (data_.size() < 8) return false;
    v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data_[static_cast<size_t>(i)]);
    data_.remove_prefix(8);
    return true;
  }
  bool i64(std::int64_t& v) {
    std::uint64_t u;
    if (!u64(u)) return false;
    v = static_cast<std::int64_t>(u);
    return true;
  }
  bool str(std::string& s) {
    std::uint64_t n;
    if (!u64(n) || data_.size() < n) return false;
    s.assign(data_.substr(0, n));
    data_.remove_prefix(n);
    return true;
  }
  bool byte(char& c) {
    if (data_.empty()) return false;
    c = data_[0];
    data_.remove_prefix(1);
    return true;
  }

 private:
  std::string_view data_;
};

}  // namespace

std::string encode(const ResultRecord& r) {
  std::string out(1, kFormatVersion);
  put_str(out, r.parent);
  put_str(out, r.layered_on);
  put_u64(out, r.children);
  put_u64(out, static_cast<std::uint64_t>(r.created_us));
  put_u64(out, static_cast<std::uint64_t>(r.last_used_us));
  put_u64(out, r.size_bytes);
  put_u64(out, static_cast<std::uint64_t>(r.build_ms));
  return out;
}

Result<ResultRecord> decode_result(std::string_view id, std::string_view data) {
  Reader in(data);
  ResultRecord r;
  char version = 0;
  std::uint64_t children = 0;
  if (!in.byte(version) || version != kFormatVersion || !in.str(r.parent) || !in.str(r.layered_on) ||
      !in.u64(children) || !in.i64(r.created_us) || !in.i64(r.last_used_us) || !in.u64(r.size_bytes) ||
      !in.i64(r.build_ms)) {
    return make_error(ErrorKind::kInternal, fmt::format("corrupt metadata record for result {}", id));
  }
  r.children = static_cast<std::uint32_t>(children);
  return r;
}

std::string encode(const CacheRecord& c) {
  std::string out(1, kFormatVersion);
  put_u64(out, c.generation);
  put_u64(out, static_cast<std::uint64_t>(c.created_us));
  put_u64(out, static_cast<std::uint64_t>(c.last_used_us));
  return out;
}

Result<CacheRecord> decode_cache(std::string_view name, std::string_view data) {
  Reader in(data);
  CacheRecord c;
  char version = 0;
  if (!in.byte(version) || version != kFormatVersion || !in.u64(c.generation) || !in.i64(c.created_us) ||
      !in.i64(c.last_used_us)) {
    return make_error(ErrorKind::kInternal, fmt::format("corrupt metadata record for cache {}", name));
  }
  return c;
}

std::string encode_counter(std::uint64_t value) {
  std::string out;
  put_u64(out, value);
  return out;
}

std::uint64_t decode_counter(std::string_view data) {
  std::uint64_t value = 0;
  if (!Reader(data).u64(value)) return 0;
  return value;
}

}  // namespace kiln::store
