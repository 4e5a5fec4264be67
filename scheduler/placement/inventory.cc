#include "scheduler/placement/inventory.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>

namespace kiln::placement {

namespace {

// Lowercase hex digit values; -1 for anything else.
constexpr std::array<std::int8_t, 256> kHexValue = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
  return t;
}();

int hex_value(char c) {
  return kHexValue[static_cast<unsigned char>(c)];
}

bool same(const Digest& a, const Digest& b) {
  std::uint64_t x[4], y[4];
  std::memcpy(x, a.data(), 32);
  std::memcpy(y, b.data(), 32);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

}  // namespace

Digest step_digest(std::string_view id) {
  Digest out{};
  if (id.size() == 64) {
    // Parse and validate in one pass: this runs for every step of every job.
    bool hex = true;
    for (std::size_t i = 0; i < out.size() && hex; ++i) {
      int hi = hex_value(id[2 * i]), lo = hex_value(id[2 * i + 1]);
      hex = hi >= 0 && lo >= 0;
      out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (hex) return out;
  }
  Sha256 h;
  h.update(id);
  return h.digest();
}

InventoryIndex::~InventoryIndex() {
  for (Entry& e : entries_) free_holders(e);
}

// ---- workers ----

WorkerSlot InventoryIndex::add_worker(const std::string& name) {
  if (auto it = slots_.find(name); it != slots_.end()) return it->second;
  WorkerSlot slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (worker_sizes_.size() >= kMaxWorkers) std::abort();
    slot = static_cast<WorkerSlot>(worker_sizes_.size());
    worker_sizes_.push_back(0);
    worker_digests_.emplace_back();
    slot_live_.push_back(false);
    // Bitsets cover every slot ever handed out.
    if (worker_sizes_.size() > bitset_words_ * 64) grow_bitsets(bitset_words_ * 2);
  }
  worker_sizes_[slot] = 0;
  worker_digests_[slot].clear();
  slot_live_[slot] = true;
  slots_.emplace(name, slot);
  return slot;
}

std::optional<WorkerSlot> InventoryIndex::slot_of(const std::string& name) const {
  if (auto it = slots_.find(name); it != slots_.end()) return it->second;
  return std::nullopt;
}

void InventoryIndex::remove_worker(const std::string& name) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return;
  WorkerSlot slot = it->second;
  replace(slot, {});
  slot_live_[slot] = false;
  free_slots_.push_back(slot);
  slots_.erase(it);
}

// ---- memberships ----

void InventoryIndex::replace(WorkerSlot worker, std::span<const Digest> ids) {
  if (worker_sizes_[worker] != 0) {
    // A full scan: full inventories come at registration and after drift,
    // not on the hot path.
    for (IdRef ref = 0; ref < entries_.size(); ++ref) {
      Entry& e = entries_[ref];
      if (e.count == 0) continue;
      if (erase_holder(e, worker)) {
        --worker_sizes_[worker];
        if (e.count == 0) release_ref(ref);
      }
    }
    worker_digests_[worker].clear();
  }
  add(worker, ids);
}

void InventoryIndex::add(WorkerSlot worker, std::span<const Digest> ids) {
  for (const Digest& id : ids) add_one(worker, id);
}

IdRef InventoryIndex::add_one(WorkerSlot worker, const Digest& id) {
  IdRef ref = intern(id);
  if (insert_holder(entries_[ref], worker)) {
    ++worker_sizes_[worker];
    worker_digests_[worker].add(id);
  }
  return ref;
}

void InventoryIndex::remove(WorkerSlot worker, std::span<const Digest> ids) {
  for (const Digest& id : ids) {
    std::optional<IdRef> ref = find(id);
    if (!ref) continue;
    Entry& e = entries_[*ref];
    if (erase_holder(e, worker)) {
      --worker_sizes_[worker];
      worker_digests_[worker].remove(id);
      if (e.count == 0) release_ref(*ref);
    }
  }
}

void InventoryIndex::remove_one(WorkerSlot worker, IdRef id) {
  Entry& e = entries_[id];
  if (erase_holder(e, worker)) {
    --worker_sizes_[worker];
    worker_digests_[worker].remove(digests_[id]);
    if (e.count == 0) release_ref(id);
  }
}

bool InventoryIndex::holds(WorkerSlot worker, IdRef id) const {
  const Entry& e = entries_[id];
  if (e.capacity == kBitset) {
    return worker < bitset_words_ * 64 && ((e.bits[worker / 64] >> (worker % 64)) & 1) != 0;
  }
  const std::uint16_t* holders = holder_array(e);
  return std::binary_search(holders, holders + e.count, worker);
}

std::size_t InventoryIndex::size_of(WorkerSlot worker) const {
  return worker < worker_sizes_.size() ? worker_sizes_[worker] : 0;
}

std::vector<Digest> InventoryIndex::ids_of(WorkerSlot worker) const {
  std::vector<Digest> out;
  out.reserve(size_of(worker));
  for (IdRef ref = 0; ref < entries_.size(); ++ref) {
    if (entries_[ref].count != 0 && holds(worker, ref)) out.push_back(digests_[ref]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Digest InventoryIndex::set_digest(WorkerSlot worker) const {
  return worker < worker_digests_.size() ? worker_digests_[worker].value() : IdSetDigest().value();
}

std::size_t InventoryIndex::memory_bytes() const {
  return digests_.capacity() * sizeof(Digest) + entries_.capacity() * sizeof(Entry) +
         table_.capacity() * sizeof(std::uint32_t) + free_refs_.capacity() * sizeof(IdRef) + heap_bytes_ +
         worker_sizes_.capacity() * sizeof(std::uint32_t) + worker_digests_.capacity() * sizeof(IdSetDigest);
}

// ---- holder sets ----

bool InventoryIndex::insert_holder(Entry& e, WorkerSlot worker) {
  if (e.capacity == kBitset) {
    std::uint64_t& word = e.bits[worker / 64];
    std::uint64_t mask = std::uint64_t{1} << (worker % 64);
    if (word & mask) return false;
    word |= mask;
    ++e.count;
    return true;
  }
  std::uint16_t* holders = holder_array(e);
  std::uint16_t* pos = std::lower_bound(holders, holders + e.count, worker);
  if (pos != holders + e.count && *pos == worker) return false;
  if (e.count == e.capacity) {
    // Full: grow the array, or switch to a bitset once an array of the next
    // size would be no smaller than one.
    std::size_t next = std::max<std::size_t>(kInline * 2, e.capacity * 2u);
    if (next * sizeof(std::uint16_t) >= bitset_words_ * sizeof(std::uint64_t)) {
      auto* bits = new std::uint64_t[bitset_words_]();
      for (std::uint16_t i = 0; i < e.count; ++i)
        bits[holders[i] / 64] |= std::uint64_t{1} << (holders[i] % 64);
      bits[worker / 64] |= std::uint64_t{1} << (worker % 64);
      std::uint16_t count = e.count;
      free_holders(e);
      e.bits = bits;
      e.capacity = kBitset;
      e.count = count + 1;
      heap_bytes_ += bitset_words_ * sizeof(std::uint64_t);
      return true;
    }
    auto* grown = new std::uint16_t[next];
    std::size_t at = pos - holders;
    std::copy(holders, holders + at, grown);
    grown[at] = worker;
    std::copy(holders + at, holders + e.count, grown + at + 1);
    std::uint16_t count = e.count;
    free_holders(e);
    e.array = grown;
    e.capacity = static_cast<std::uint16_t>(next);
    e.count = count + 1;
    heap_bytes_ += next * sizeof(std::uint16_t);
    return true;
  }
  std::copy_backward(pos, holders + e.count, holders + e.count + 1);
  *pos = worker;
  ++e.count;
  return true;
}

bool InventoryIndex::erase_holder(Entry& e, WorkerSlot worker) {
  if (e.capacity == kBitset) {
    if (worker >= bitset_words_ * 64) return false;
    std::uint64_t& word = e.bits[worker / 64];
    std::uint64_t mask = std::uint64_t{1} << (worker % 64);
    if (!(word & mask)) return false;
    word &= ~mask;
    --e.count;
    // Back to an array when it would take a quarter of the bitset; the gap
    // with the switch-up point keeps an id near it from flapping.
    if (e.count * sizeof(std::uint16_t) * 4 <= bitset_words_ * sizeof(std::uint64_t)) {
      std::uint16_t count = e.count;
      std::uint16_t capacity = count <= kInline ? kInline : static_cast<std::uint16_t>(std::bit_ceil(count));
      std::uint16_t buffer[kInline];
      std::uint16_t* holders = capacity <= kInline ? buffer : new std::uint16_t[capacity];
      std::size_t n = 0;
      for (std::size_t w = 0; w < bitset_words_; ++w) {
        for (std::uint64_t bitsw = e.bits[w]; bitsw != 0; bitsw &= bitsw - 1) {
          holders[n++] = static_cast<std::uint16_t>(w * 64 + __builtin_ctzll(bitsw));
        }
      }
      free_holders(e);
      if (capacity <= kInline) {
        std::copy(buffer, buffer + n, e.inline_);
      } else {
        e.array = holders;
        heap_bytes_ += capacity * sizeof(std::uint16_t);
      }
      e.capacity = capacity;
      e.count = count;
    }
    return true;
  }
  std::uint16_t* holders = holder_array(e);
  std::uint16_t* pos = std::lower_bound(holders, holders + e.count, worker);
  if (pos == holders + e.count || *pos != worker) return false;
  std::copy(pos + 1, holders + e.count, pos);
  --e.count;
  return true;
}

void InventoryIndex::free_holders(Entry& e) {
  if (e.capacity == kBitset) {
    delete[] e.bits;
    heap_bytes_ -= bitset_words_ * sizeof(std::uint64_t);
  } else if (e.capacity > kInline) {
    delete[] e.array;
    heap_bytes_ -= e.capacity * sizeof(std::uint16_t);
  }
  e.capacity = kInline;
  e.count = 0;
}

void InventoryIndex::grow_bitsets(std::size_t words) {
  for (Entry& e : entries_) {
    if (e.capacity != kBitset) continue;
    auto* bits = new std::uint64_t[words]();
    std::copy(e.bits, e.bits + bitset_words_, bits);
    delete[] e.bits;
    e.bits = bits;
    heap_bytes_ += (words - bitset_words_) * sizeof(std::uint64_t);
  }
  bitset_words_ = words;
}

// ---- interning ----

std::size_t InventoryIndex::hash_of(const Digest& id) {
  // Ids are SHA-256 output: any 8 bytes are uniformly distributed.
  std::uint64_t h;
  std::memcpy(&h, id.data(), sizeof h);
  return static_cast<std::size_t>(h);
}

std::optional<IdRef> InventoryIndex::find(const Digest& id) const {
  if (table_.empty()) return std::nullopt;
  std::size_t mask = table_.size() - 1;
  for (std::size_t i = hash_of(id) & mask;; i = (i + 1) & mask) {
    std::uint32_t slot = table_[i];
    if (slot == 0) return std::nullopt;
    if (same(digests_[slot - 1], id)) return slot - 1;
  }
}

IdRef InventoryIndex::intern(const Digest& id) {
  if (auto ref = find(id)) return *ref;
  IdRef ref;
  if (!free_refs_.empty()) {
    ref = free_refs_.back();
    free_refs_.pop_back();
    digests_[ref] = id;
    entries_[ref] = Entry{};
  } else {
    ref = static_cast<IdRef>(digests_.size());
    digests_.push_back(id);
    entries_.emplace_back();
  }
  entries_[ref].capacity = kInline;
  // Keep the load at most 0.7 so probes stay short.
  if ((distinct_ids() + 1) * 10 > table_.size() * 7)
    table_rehash(std::max<std::size_t>(64, table_.size() * 2));
  table_insert(ref);
  return ref;
}

void InventoryIndex::release_ref(IdRef ref) {
  table_erase(ref);
  free_holders(entries_[ref]);
  entries_[ref].cost = 0;
  free_refs_.push_back(ref);
}

void InventoryIndex::table_insert(IdRef ref) {
  std::size_t mask = table_.size() - 1;
  std::size_t i = hash_of(digests_[ref]) & mask;
  while (table_[i] != 0) i = (i + 1) & mask;
  table_[i] = ref + 1;
}

void InventoryIndex::table_erase(IdRef ref) {
  std::size_t mask = table_.size() - 1;
  std::size_t i = hash_of(digests_[ref]) & mask;
  while (table_[i] != ref + 1) i = (i + 1) & mask;
  // Backward-shift deletion: later entries of the probe run move up, so
  // lookups never need tombstones.
  std::size_t hole = i;
  for (std::size_t j = (i + 1) & mask; table_[j] != 0; j = (j + 1) & mask) {
    std::size_t home = hash_of(digests_[table_[j] - 1]) & mask;
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      table_[hole] = table_[j];
      hole = j;
    }
  }
  table_[hole] = 0;
}

void InventoryIndex::table_rehash(std::size_t size) {
  std::vector<std::uint32_t> old = std::move(table_);
  table_.assign(size, 0);
  for (std::uint32_t slot : old) {
    if (slot != 0) table_insert(slot - 1);
  }
}

}  // namespace kiln::placement
