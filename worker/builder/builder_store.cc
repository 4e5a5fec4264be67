// The Builder's operations on the results its store holds, as OBuilder's
// BUILDER has them (delete, prune, count, df, cache_stats, root) and the kiln
// additions the worker daemon uses instead of the store (disk_space,
// list_results, total_size, complete_deletes). Contracts in builder.h;
// builds are in builder.cc.
#include "worker/builder/builder.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>

namespace kiln::builder {

Status Builder::delete_result(const std::string& id, const DeleteLog& log) {
  KILN_ASSIGN_OR_RETURN(auto leaves,
                        store_.lru_leaves(std::chrono::system_clock::now() + std::chrono::hours(24 * 365),
                                          std::numeric_limits<std::size_t>::max()));
  // Every result built on `id` lies on the parent chain of some leaf; its
  // depth below `id` orders the deletes (deepest first).
  std::map<std::string, std::size_t> depth;
  for (const std::string& leaf : leaves) {
    std::vector<std::string> chain{leaf};
    while (chain.back() != id) {
      auto info = store_.info(chain.back());
      if (!info || !info->parent) break;
      chain.push_back(*info->parent);
    }
    if (chain.back() != id) continue;
    for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
      std::size_t d = chain.size() - 1 - i;
      depth[chain[i]] = std::max(depth[chain[i]], d);
    }
  }
  std::vector<std::pair<std::size_t, std::string>> order;
  for (const auto& [dependent, d] : depth) order.emplace_back(d, dependent);
  std::ranges::sort(order, std::greater<>());
  order.emplace_back(0, id);
  for (const auto& [d, victim] : order) {
    if (log) log(victim);
    KILN_RETURN_IF_ERROR(store_.delete_result(victim));
  }
  return {};
}

Result<std::size_t> Builder::prune(std::chrono::system_clock::time_point before, std::size_t limit,
                                   const DeleteLog& log, PruneReport* report) {
  PruneReport local_report;
  PruneReport& r = report != nullptr ? *report : local_report;
  r = {};
  std::set<std::string> kept;
  std::size_t removed = 0;
  while (removed < limit) {
    std::size_t pinned_count;
    {
      std::lock_guard lock(pins_mu_);
      pinned_count = pinned_.size();
    }
    // Ask for enough that pinned leaves cannot hide all the others.
    std::size_t wanted = limit - removed;
    wanted = wanted > std::numeric_limits<std::size_t>::max() - pinned_count
                 ? std::numeric_limits<std::size_t>::max()
                 : wanted + pinned_count;
    KILN_ASSIGN_OR_RETURN(auto leaves, store_.lru_leaves(before, wanted));
    std::size_t this_round = 0;
    for (const std::string& leaf : leaves) {
      if (removed == limit) break;
      // Checked and deleted under the pin lock, so no build can start using
      // it in between.
      std::lock_guard lock(pins_mu_);
      if (pinned_.contains(leaf)) {
        if (kept.insert(leaf).second) ++r.kept_in_use;
        continue;
      }
      auto info = store_.info(leaf);
      if (log) log(leaf);
      KILN_RETURN_IF_ERROR(store_.delete_result(leaf));
      ++removed;
      ++this_round;
      r.removed = removed;
      if (!info) continue;
      r.bytes += info->size_bytes;
      if (!r.oldest_last_used || info->last_used < *r.oldest_last_used) r.oldest_last_used = info->last_used;
      if (!r.newest_last_used || info->last_used > *r.newest_last_used) r.newest_last_used = info->last_used;
    }
    // Deleting leaves may have made their parents leaves: go round again.
    if (this_round == 0) break;
  }
  return removed;
}

Result<std::uint64_t> Builder::count() {
  KILN_ASSIGN_OR_RETURN(store::StoreStats stats, store_.stats());
  return stats.results;
}

Result<double> Builder::df() {
  return store_.df();
}

Result<CacheStats> Builder::cache_stats() {
  KILN_ASSIGN_OR_RETURN(store::StoreStats stats, store_.stats());
  return CacheStats{stats.cache_hits, stats.cache_misses};
}

const std::string& Builder::root() const {
  return store_.root();
}

Result<DiskSpace> Builder::disk_space() const {
  return builder::disk_space(store_.root());
}

Result<std::vector<std::string>> Builder::list_results() {
  return store_.list_results();
}

Result<std::uint64_t> Builder::total_size() {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> ids, store_.list_results());
  std::uint64_t bytes = 0;
  for (const std::string& id : ids) {
    if (auto info = store_.info(id)) bytes += info->size_bytes;
  }
  return bytes;
}

Status Builder::complete_deletes() {
  return store_.complete_deletes();
}

}  // namespace kiln::builder
