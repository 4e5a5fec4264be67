#include "worker/store/store_recovery.h"

#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "worker/store/fs_util.h"

namespace kiln::store {

bool RecoveryReport::repaired_anything() const {
  return mounts_removed + temporaries_removed + orphan_results_removed + records_dropped + index_keys_fixed +
             caches_repaired + unsynced_dropped >
         0;
}

std::string RecoveryReport::to_string() const {
  if (!repaired_anything()) return "nothing to repair";
  std::vector<std::string> parts;
  auto add = [&](int n, std::string_view what) {
    if (n > 0) parts.push_back(fmt::format("{} {}", n, what));
  };
  add(mounts_removed, "stale mounts unmounted");
  add(temporaries_removed, "unfinished temporaries removed");
  add(orphan_results_removed, "result directories without metadata removed");
  add(records_dropped, "metadata records of missing results dropped");
  add(index_keys_fixed, "index keys fixed");
  add(caches_repaired, "cache entries reconciled");
  add(unsynced_dropped, "results recorded after the last sync before a reboot dropped");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

Status recover_snapshot_store(const std::string& root, SnapshotBackend& backend, Metadata& metadata,
                              RecoveryReport& report) {
  KILN_ASSIGN_OR_RETURN(auto mounts, mounts_beneath(root));
  for (const auto& m : mounts) {
    spdlog::warn("store {}: unmounting left-over mount {}", root, m);
    KILN_RETURN_IF_ERROR(unmount(m));
    report.mounts_removed++;
  }
  for (const char* sub : {"/tmp", "/cache-tmp", "/result", "/cache"}) {
    KILN_ASSIGN_OR_RETURN(auto names, list_dir(root + sub));
    bool all_temporary = std::string_view(sub).ends_with("tmp");
    for (const auto& name : names) {
      // Ids and escaped cache names never start with '.': those are ours.
      if (!all_temporary && !name.starts_with('.')) continue;
      spdlog::warn("store {}: removing unfinished temporary {}{}/{}", root, root, sub, name);
      KILN_RETURN_IF_ERROR(backend.discard(root + sub + "/" + name));
      report.temporaries_removed++;
    }
  }
  // Views are recreated on demand; their mount points are empty directories.
  KILN_ASSIGN_OR_RETURN(auto views, list_dir(root + "/view"));
  for (const auto& v : views) KILN_RETURN_IF_ERROR(remove_tree(root + "/view/" + v));

  // Results: the database and result/ must agree, both ways.
  KILN_ASSIGN_OR_RETURN(auto on_disk_list, list_dir(root + "/result"));
  std::set<std::string> on_disk(on_disk_list.begin(), on_disk_list.end());
  KILN_ASSIGN_OR_RETURN(auto records, metadata.all_results());
  std::map<std::string, ResultRecord> known(records.begin(), records.end());
  for (const auto& name : on_disk) {
    if (!known.contains(name)) {
      // Committed on disk but never recorded (a crash between the two):
      // without its parent we cannot trust it, and it is only a cache.
      spdlog::warn("store {}: removing result {} (no metadata)", root, name);
      KILN_RETURN_IF_ERROR(backend.remove_snapshot(name, root + "/result/" + name));
      report.orphan_results_removed++;
    }
  }
  // A record is unusable if its directory, its content (docker: its
  // image) or any layer below it is gone.
  std::set<std::string> unusable, content_missing;
  for (const auto& [id, r] : known) {
    if (!on_disk.contains(id)) continue;
    KILN_ASSIGN_OR_RETURN(bool present, backend.present(id));
    if (!present) {
      unusable.insert(id);
      content_missing.insert(id);
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& [id, r] : known) {
      if (unusable.contains(id)) continue;
      if (!on_disk.contains(id) ||
          (!r.layered_on.empty() && (!known.contains(r.layered_on) || unusable.contains(r.layered_on)))) {
        unusable.insert(id);
        changed = true;
      }
    }
  }
  for (const auto& id : unusable) {
    spdlog::warn("store {}: dropping result {} ({})", root, id,
                 content_missing.contains(id) ? "its content is missing"
                 : on_disk.contains(id)       ? "a layer below it is missing"
                                              : "its directory is missing");
    KILN_RETURN_IF_ERROR(metadata.remove_result(id));
    if (on_disk.contains(id)) KILN_RETURN_IF_ERROR(backend.remove_snapshot(id, root + "/result/" + id));
    report.records_dropped++;
  }
  KILN_ASSIGN_OR_RETURN(report.index_keys_fixed, metadata.repair_indexes());

  // Caches: a directory without a record is adopted; a record without a directory dropped.
  KILN_ASSIGN_OR_RETURN(auto cache_dirs, list_dir(root + "/cache"));
  KILN_ASSIGN_OR_RETURN(auto cache_records, metadata.all_caches());
  std::set<std::string> cache_names;
  for (const auto& d : cache_dirs) cache_names.insert(unescape_name(d));
  for (const auto& name : cache_names) {
    KILN_ASSIGN_OR_RETURN(auto record, metadata.get_cache(name));
    if (!record) {
      KILN_RETURN_IF_ERROR(metadata.put_cache(name, CacheRecord{0, metadata_now_us(), metadata_now_us()}));
      report.caches_repaired++;
    }
  }
  for (const auto& [name, record] : cache_records) {
    if (!cache_names.contains(name)) {
      KILN_RETURN_IF_ERROR(metadata.remove_cache(name));
      report.caches_repaired++;
    }
  }
  std::set<std::string> live;
  for (const auto& [id, r] : known) {
    if (!unusable.contains(id)) live.insert(id);
  }
  return backend.reconcile(live, report);
}

}  // namespace kiln::store
