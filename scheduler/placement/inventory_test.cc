#include "scheduler/placement/inventory.h"

#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

namespace kiln::placement {
namespace {

Digest id(int n) {
  return step_digest("step-" + std::to_string(n));
}

std::vector<WorkerSlot> holders(const InventoryIndex& index, const Digest& d) {
  std::vector<WorkerSlot> out;
  if (auto ref = index.find(d)) index.for_each_holder(*ref, [&](WorkerSlot w) { out.push_back(w); });
  return out;
}

TEST(StepDigest, HexIdsAreTheirOwnBytes) {
  std::string hex = sha256_hex("x");
  EXPECT_EQ(to_hex(step_digest(hex)), hex);
  // Anything else is hashed, so readable names work in tests and traces.
  EXPECT_EQ(to_hex(step_digest("x")), hex);
}

TEST(InventoryIndex, AddFindHoldRemove) {
  InventoryIndex index;
  WorkerSlot a = index.add_worker("a");
  WorkerSlot b = index.add_worker("b");
  EXPECT_EQ(index.add_worker("a"), a);
  std::vector<Digest> ab = {id(1), id(2)};
  index.add(a, ab);
  index.add(b, std::vector<Digest>{id(2)});
  EXPECT_EQ(index.distinct_ids(), 2u);
  EXPECT_EQ(index.size_of(a), 2u);
  EXPECT_EQ(holders(index, id(2)), (std::vector<WorkerSlot>{a, b}));
  EXPECT_TRUE(index.holds(b, *index.find(id(2))));
  EXPECT_FALSE(index.holds(b, *index.find(id(1))));

  // A prune on a removes its membership; the id stays while b holds it.
  index.remove(a, std::vector<Digest>{id(2), id(7)});
  EXPECT_EQ(holders(index, id(2)), (std::vector<WorkerSlot>{b}));
  EXPECT_EQ(index.size_of(a), 1u);
  // The last holder gone: the id is forgotten.
  index.remove(b, std::vector<Digest>{id(2)});
  EXPECT_FALSE(index.find(id(2)).has_value());
  EXPECT_EQ(index.distinct_ids(), 1u);
}

TEST(InventoryIndex, ReplaceIsAFullInventory) {
  InventoryIndex index;
  WorkerSlot a = index.add_worker("a");
  index.add(a, std::vector<Digest>{id(1), id(2), id(3)});
  index.replace(a, std::vector<Digest>{id(3), id(4)});
  EXPECT_FALSE(index.find(id(1)).has_value());
  EXPECT_EQ(index.size_of(a), 2u);
  EXPECT_EQ(index.ids_of(a), (std::vector<Digest>{std::min(id(3), id(4)), std::max(id(3), id(4))}));
}

TEST(InventoryIndex, RemoveWorkerDropsMembershipsAndReusesItsSlot) {
  InventoryIndex index;
  WorkerSlot a = index.add_worker("a");
  index.add_worker("b");
  index.add(a, std::vector<Digest>{id(1)});
  index.remove_worker("a");
  EXPECT_FALSE(index.slot_of("a").has_value());
  EXPECT_FALSE(index.find(id(1)).has_value());
  EXPECT_EQ(index.add_worker("c"), a);
  EXPECT_EQ(index.size_of(a), 0u);
}

// Holder sets move from inline to arrays to bitsets and back as workers come
// and go; membership must be exact at every size.
TEST(InventoryIndex, HolderSetsStayExactAcrossRepresentations) {
  InventoryIndex index;
  std::vector<WorkerSlot> slots;
  for (int w = 0; w < 300; ++w) slots.push_back(index.add_worker("w" + std::to_string(w)));
  std::mt19937 rng(7);
  std::set<std::pair<int, int>> truth;  // (worker, id)
  for (int round = 0; round < 20000; ++round) {
    int w = static_cast<int>(rng() % 300);
    int i = static_cast<int>(rng() % 20);
    Digest d = id(i);
    if (rng() % 3 != 0) {
      index.add(slots[w], std::span<const Digest>(&d, 1));
      truth.insert({w, i});
    } else {
      index.remove(slots[w], std::span<const Digest>(&d, 1));
      truth.erase({w, i});
    }
  }
  for (int i = 0; i < 20; ++i) {
    std::vector<WorkerSlot> expected;
    for (int w = 0; w < 300; ++w) {
      if (truth.contains({w, i})) expected.push_back(slots[w]);
    }
    EXPECT_EQ(holders(index, id(i)), expected) << "id " << i;
    if (auto ref = index.find(id(i))) {
      for (int w = 0; w < 300; ++w) EXPECT_EQ(index.holds(slots[w], *ref), truth.contains({w, i}));
    }
  }
  for (int w = 0; w < 300; ++w) {
    std::size_t n = 0;
    for (int i = 0; i < 20; ++i) n += truth.contains({w, i});
    EXPECT_EQ(index.size_of(slots[w]), n);
  }
}

TEST(InventoryIndex, ManyIdsSurviveRehashAndDeletion) {
  InventoryIndex index;
  WorkerSlot a = index.add_worker("a");
  std::vector<Digest> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(id(i));
  index.add(a, ids);
  std::vector<Digest> odd;
  for (int i = 1; i < 5000; i += 2) odd.push_back(id(i));
  index.remove(a, odd);
  for (int i = 0; i < 5000; ++i) EXPECT_EQ(index.find(id(i)).has_value(), i % 2 == 0) << i;
  EXPECT_EQ(index.distinct_ids(), 2500u);
}

TEST(InventoryIndex, SetDigestIsTheIdSetDigestOfTheIds) {
  InventoryIndex index;
  WorkerSlot a = index.add_worker("a");
  std::vector<Digest> ids = {id(5), id(1), id(9)};
  index.add(a, ids);
  IdSetDigest expected;
  for (const Digest& d : ids) expected.add(d);
  EXPECT_EQ(index.set_digest(a), expected.value());
  // Order of arrival does not matter; content does.
  InventoryIndex other;
  WorkerSlot b = other.add_worker("b");
  other.add(b, std::vector<Digest>{id(9), id(5), id(1)});
  EXPECT_EQ(other.set_digest(b), index.set_digest(a));
  other.remove(b, std::vector<Digest>{id(9)});
  EXPECT_NE(other.set_digest(b), index.set_digest(a));
}

// The memory bound, on a scaled-down farm (the full 1,000 x 100,000 case is
// measured by bench/placement_benchmark.cc): 100 workers x 10,000 ids drawn
// from a 40,000-id universe with popular ids.
TEST(InventoryIndex, MemoryIsPerDistinctIdNotPerMembership) {
  InventoryIndex index;
  std::mt19937_64 rng(1);
  std::vector<Digest> universe;
  for (int i = 0; i < 40000; ++i) universe.push_back(id(i));
  for (int w = 0; w < 100; ++w) {
    WorkerSlot slot = index.add_worker("w" + std::to_string(w));
    std::vector<Digest> ids;
    std::set<int> chosen;
    while (chosen.size() < 10000) {
      // Squared uniform: low-numbered ids are far more popular.
      double u = std::uniform_real_distribution<double>(0, 1)(rng);
      chosen.insert(static_cast<int>(u * u * universe.size()));
    }
    for (int i : chosen) ids.push_back(universe[i]);
    index.add(slot, ids);
  }
  // 1,000,000 memberships. Per distinct id: 32 + 16 + hash slots + holders
  // (at most a 16-byte bitset here), with vectors' doubling slack up to 2x.
  std::size_t per_id_bound = 2 * (32 + 16 + 6 + 16);
  EXPECT_LE(index.memory_bytes(), index.distinct_ids() * per_id_bound);
  EXPECT_LT(index.memory_bytes(), 5'000'000u);  // < 5 bytes per membership
}

// set_digest is kept up to date with every change, and is the IdSetDigest of
// exactly the worker's ids, whatever path they came by.
TEST(InventoryIndex, SetDigestFollowsEveryChange) {
  InventoryIndex index;
  WorkerSlot w = index.add_worker("w1");
  WorkerSlot other = index.add_worker("w2");
  auto expect_digest = [&](std::initializer_list<const char*> names) {
    IdSetDigest d;
    for (const char* n : names) d.add(step_digest(n));
    EXPECT_EQ(index.set_digest(w), d.value());
  };
  expect_digest({});
  index.add(w, std::vector<Digest>{step_digest("a"), step_digest("b"), step_digest("a")});
  index.add(other, std::vector<Digest>{step_digest("b"), step_digest("c")});
  expect_digest({"a", "b"});
  index.remove(w, std::vector<Digest>{step_digest("a"), step_digest("never-held")});
  expect_digest({"b"});
  IdRef b = index.add_one(w, step_digest("b"));  // already held: no change
  expect_digest({"b"});
  index.remove_one(w, b);
  expect_digest({});
  index.add(w, std::vector<Digest>{step_digest("x")});
  index.replace(w, std::vector<Digest>{step_digest("c"), step_digest("d")});
  expect_digest({"c", "d"});
  // A slot reused by another worker starts empty.
  index.remove_worker("w1");
  WorkerSlot again = index.add_worker("w3");
  EXPECT_EQ(again, w);
  EXPECT_EQ(index.set_digest(again), IdSetDigest().value());
}

}  // namespace
}  // namespace kiln::placement
