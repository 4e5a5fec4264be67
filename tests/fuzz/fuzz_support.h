// What the libFuzzer targets in tests/fuzz/ share: a reader that takes a fuzz
// input apart front to back (and a writer that puts seeds together in the
// same format), the abort that makes a broken property a crash libFuzzer
// records, and the seed mode every target has:
//
//   build-fuzz/tests/fuzz/TARGET_fuzz --write-seeds=tests/fuzz/corpus/TARGET
//
// writes the target's seed corpus (real encoded examples built from structs)
// and exits; libFuzzer ignores flags that start with "--", so the target's
// LLVMFuzzerInitialize handles it (see write_seeds_if_asked).
//
//   extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
//     kiln::fuzz::quiet_logs();
//     kiln::fuzz::write_seeds_if_asked(*argc, *argv, [](kiln::fuzz::Seeds& seeds) {
//       seeds.add("01-hello", bytes);
//     });
//     return 0;
//   }
//
// Thread safety: none needed (libFuzzer runs inputs on one thread).
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace kiln::fuzz {

// Reports a broken property and aborts (libFuzzer saves the input).
[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz property broken: %.*s\n%.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void check(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

// Takes a fuzz input apart from the front. Past the end every read gives
// zeros or empty strings, so any input is a valid sequence of reads.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  explicit ByteReader(std::string_view bytes)
      : ByteReader(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) {}

  bool empty() const { return at_ >= size_; }
  std::size_t remaining() const { return size_ - at_; }

  std::uint8_t u8() { return empty() ? 0 : data_[at_++]; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() {
    return static_cast<std::uint32_t>(u16()) | (static_cast<std::uint32_t>(u16()) << 16);
  }
  std::uint64_t u64() {
    return static_cast<std::uint64_t>(u32()) | (static_cast<std::uint64_t>(u32()) << 32);
  }
  bool flag() { return (u8() & 1) != 0; }

  // Up to `n` bytes (fewer at the end).
  std::string_view bytes(std::size_t n) {
    n = std::min(n, remaining());
    std::string_view out(reinterpret_cast<const char*>(data_ + at_), n);
    at_ += n;
    return out;
  }
  // A u16 length, then that many bytes.
  std::string_view blob() { return bytes(u16()); }
  std::string_view rest() { return bytes(remaining()); }

  // One of `items`, chosen by the next byte.
  template <class T, std::size_t N>
  const T& pick(const T (&items)[N]) {
    return items[u8() % N];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// Writes what ByteReader reads, for seeds.
class ByteWriter {
 public:
  ByteWriter& u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  ByteWriter& u16(std::uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  ByteWriter& u32(std::uint32_t v) { return u16(v & 0xffff).u16(static_cast<std::uint16_t>(v >> 16)); }
  ByteWriter& u64(std::uint64_t v) { return u32(v & 0xffffffff).u32(static_cast<std::uint32_t>(v >> 32)); }
  ByteWriter& raw(std::string_view bytes) {
    out_ += bytes;
    return *this;
  }
  // For ByteReader::blob (at most 65,535 bytes).
  ByteWriter& blob(std::string_view bytes) {
    if (bytes.size() > 0xffff) fail("seed blob over 65535 bytes");
    return u16(static_cast<std::uint16_t>(bytes.size())).raw(bytes);
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

// The seed corpus being written: one file per seed.
class Seeds {
 public:
  explicit Seeds(std::filesystem::path dir) : dir_(std::move(dir)) {}
  void add(const std::string& name, std::string_view bytes) {
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail("cannot write seed", (dir_ / name).string());
    ++count_;
  }
  int count() const { return count_; }

 private:
  std::filesystem::path dir_;
  int count_ = 0;
};

// With --write-seeds=DIR among the arguments: empties DIR (creating it),
// lets `write` fill it, and exits. Otherwise does nothing.
inline void write_seeds_if_asked(int argc, char** argv, const std::function<void(Seeds&)>& write) {
  constexpr std::string_view kFlag = "--write-seeds=";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!arg.starts_with(kFlag)) continue;
    std::filesystem::path dir(arg.substr(kFlag.size()));
    std::filesystem::create_directories(dir);
    for (const auto& entry : std::filesystem::directory_iterator(dir)) std::filesystem::remove_all(entry);
    Seeds seeds(dir);
    write(seeds);
    std::printf("wrote %d seeds to %s\n", seeds.count(), dir.c_str());
    std::exit(0);
  }
}

// The code under test logs what it refuses; a fuzzer would print millions of lines.
inline void quiet_logs() {
  spdlog::set_level(spdlog::level::off);
}

}  // namespace kiln::fuzz
