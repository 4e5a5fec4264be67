// The scheduler's index of which worker's store holds which step ids, and what
// each held step cost to build. Placement asks it, for a job's chain of ids,
// which workers hold how deep a prefix (holders_of / holds) and what the
// missing steps cost (cost_of).
//
//   InventoryIndex index;
//   WorkerSlot w = index.add_worker("w1");
//   index.add(w, {step_digest(id_a), step_digest(id_b)});   // registration, or additions
//   index.remove(w, {step_digest(id_b)});                   // prune
//   if (auto ref = index.find(step_digest(id_a)); ref && index.holds(w, *ref)) ...
//   Digest check = index.set_digest(w);                     // compare with the worker's own
//
// Memory (docs/placement.md, "Inventory memory"): every distinct id is stored
// once (32 bytes, a 16-byte entry, ~6 bytes of hash table), and its holders
// as a sorted array of 16-bit worker slots while few workers hold it (up to 4
// inline, no allocation), or as a bitset over all worker slots once that is
// smaller. An id no worker holds any more is forgotten and its slot reused.
// The bound is therefore: distinct ids x (54 + min(2 x holders, workers / 8))
// bytes, independent of how many (worker, id) pairs there are once ids are
// widely shared: 1,000 workers x 100,000 ids drawn from a shared universe fit
// in well under 200 MiB (bench/placement_benchmark.cc measures it).
//
// Ids are 32-byte digests; step_digest() turns a 64-hex step id into one
// (any other string is hashed, so tests and traces may use readable names).
// Worker slots are dense numbers < 65,535, reused after remove_worker.
// Thread safety: none; one owner (the policy, in the scheduler's event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/id_set_digest.h"
#include "common/sha256.h"

namespace kiln::placement {

using WorkerSlot = std::uint16_t;
using IdRef = std::uint32_t;  // an interned id's number; valid while some worker holds the id

// The 32 bytes of a step id: the id's own bytes when it is 64 lowercase hex
// characters, else SHA-256 of the text.
Digest step_digest(std::string_view id);

class InventoryIndex {
 public:
  static constexpr std::size_t kMaxWorkers = 65535;

  InventoryIndex() = default;
  ~InventoryIndex();
  InventoryIndex(const InventoryIndex&) = delete;
  InventoryIndex& operator=(const InventoryIndex&) = delete;

  // The slot of `name`, allocating one (with an empty inventory) if new.
  // Aborts past kMaxWorkers live workers (a farm 65x the design size).
  WorkerSlot add_worker(const std::string& name);
  std::optional<WorkerSlot> slot_of(const std::string& name) const;
  // Forgets the worker and every membership it had; its slot may be reused.
  void remove_worker(const std::string& name);

  // Full inventory: replaces what the worker was known to hold.
  void replace(WorkerSlot worker, std::span<const Digest> ids);
  // Incremental updates; adding a held id or removing a missing one is a no-op.
  void add(WorkerSlot worker, std::span<const Digest> ids);
  void remove(WorkerSlot worker, std::span<const Digest> ids);
  // One id; returns its ref.
  IdRef add_one(WorkerSlot worker, const Digest& id);
  // Removes one membership by ref (valid: the worker holds it); the ref is
  // invalid afterwards if no worker holds the id any more.
  void remove_one(WorkerSlot worker, IdRef id);

  std::optional<IdRef> find(const Digest& id) const;
  bool holds(WorkerSlot worker, IdRef id) const;
  std::size_t holder_count(IdRef id) const { return entries_[id].count; }
  // Calls fn(WorkerSlot) for each holder of `id`, in slot order.
  template <typename Fn>
  void for_each_holder(IdRef id, Fn&& fn) const;

  // Seconds the step took when last built cold (job_finished reports); 0 = unknown.
  float cost_of(IdRef id) const { return entries_[id].cost; }
  void set_cost(IdRef id, float seconds) { entries_[id].cost = seconds; }

  // How many ids the worker holds.
  std::size_t size_of(WorkerSlot worker) const;
  // IdSetDigest (common/id_set_digest.h) of the worker's ids, kept up to date
  // with every change: the scheduler compares it with the digest the worker
  // reports to detect drift, then asks for a full inventory. O(1).
  Digest set_digest(WorkerSlot worker) const;
  // The worker's ids, sorted by bytes.
  std::vector<Digest> ids_of(WorkerSlot worker) const;

  std::size_t distinct_ids() const { return digests_.size() - free_refs_.size(); }
  // Bytes this index has allocated (ids, entries, hash table, holder arrays,
  // bitsets), counted from capacities; excludes allocator overhead.
  std::size_t memory_bytes() const;

 private:
  // The holders of one id. capacity_ <= kInline: `inline_` holds them;
  // capacity_ == kBitset: `bits` (bitset_words_ words); else `array` (sorted).
  struct Entry {
    union {
      std::uint16_t inline_[4];
      std::uint16_t* array;
      std::uint64_t* bits;
    };
    std::uint16_t count = 0;
    std::uint16_t capacity = 0;
    float cost = 0;
  };
  static constexpr std::uint16_t kInline = 4;
  static constexpr std::uint16_t kBitset = 0xFFFF;

  IdRef intern(const Digest& id);
  void release_ref(IdRef ref);
  bool insert_holder(Entry& e, WorkerSlot worker);  // true when added
  bool erase_holder(Entry& e, WorkerSlot worker);   // true when removed
  void free_holders(Entry& e);
  void grow_bitsets(std::size_t words);
  std::uint16_t* holder_array(Entry& e) { return e.capacity <= kInline ? e.inline_ : e.array; }
  const std::uint16_t* holder_array(const Entry& e) const {
    return e.capacity <= kInline ? e.inline_ : e.array;
  }
  void table_insert(IdRef ref);
  void table_erase(IdRef ref);
  void table_rehash(std::size_t size);
  static std::size_t hash_of(const Digest& id);

  std::vector<Digest> digests_;  // by IdRef
  std::vector<Entry> entries_;   // by IdRef
  std::vector<IdRef> free_refs_;
  std::vector<std::uint32_t> table_;  // open addressing: IdRef + 1, 0 = empty
  std::size_t bitset_words_ = 1;      // words of every bitset entry
  std::size_t heap_bytes_ = 0;        // holder arrays and bitsets

  std::unordered_map<std::string, WorkerSlot> slots_;
  std::vector<std::uint32_t> worker_sizes_;  // by slot
  std::vector<IdSetDigest> worker_digests_;  // by slot
  std::vector<bool> slot_live_;
  std::vector<WorkerSlot> free_slots_;
};

template <typename Fn>
void InventoryIndex::for_each_holder(IdRef id, Fn&& fn) const {
  const Entry& e = entries_[id];
  if (e.capacity == kBitset) {
    for (std::size_t w = 0; w < bitset_words_; ++w) {
      std::uint64_t word = e.bits[w];
      while (word != 0) {
        int bit = __builtin_ctzll(word);
        fn(static_cast<WorkerSlot>(w * 64 + bit));
        word &= word - 1;
      }
    }
    return;
  }
  const std::uint16_t* holders = holder_array(e);
  for (std::uint16_t i = 0; i < e.count; ++i) fn(holders[i]);
}

}  // namespace kiln::placement
