#include "worker/daemon/inventory_reporter.h"

#include <algorithm>

#include "common/sha256.h"

namespace kiln::worker {
namespace {

// 64 hex characters -> 32 raw bytes (the inventory's id encoding).
std::string hex_to_bytes(const std::string& hex) {
  auto nibble = [](char c) -> int { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

}  // namespace

InventoryReporter::InventoryReporter(std::size_t chunk_ids, MessageOut& out)
    : chunk_ids_(std::max<std::size_t>(chunk_ids, 1)), out_(out) {}

std::string InventoryReporter::digest_bytes() const {
  Digest d = held_digest_.value();
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string InventoryReporter::heartbeat_digest() const {
  return full_sent_ ? digest_bytes() : std::string();
}

bool InventoryReporter::send_full(const std::vector<std::string>& ids_hex) {
  held_ids_.clear();
  for (const std::string& hex : ids_hex) {
    if (is_sha256_hex(hex)) held_ids_.insert(hex_to_bytes(hex));
  }
  // One message holds at most chunk_ids_ ids (a message must stay under
  // proto::kMaxBodyBytes): the first says full, the rest add to it. Each
  // carries the digest of everything sent so far.
  std::vector<std::string> sorted(held_ids_.begin(), held_ids_.end());
  std::size_t sent = 0;
  full_sent_ = false;
  held_digest_.clear();
  do {
    proto::Inventory m;
    m.full = sent == 0;
    std::size_t end = std::min(sorted.size(), sent + chunk_ids_);
    m.added.assign(sorted.begin() + static_cast<std::ptrdiff_t>(sent),
                   sorted.begin() + static_cast<std::ptrdiff_t>(end));
    for (const std::string& id : m.added) held_digest_.add(id);
    m.set_digest = digest_bytes();
    if (!out_.send_message(m)) return false;
    sent = end;
  } while (sent < sorted.size());
  full_sent_ = true;
  return true;
}

void InventoryReporter::send_delta(const std::vector<std::string>& added_hex,
                                   const std::vector<std::string>& removed_hex) {
  // Until a full inventory went out, changes are part of the next full one.
  if (!full_sent_) return;
  proto::Inventory m;
  for (const std::string& hex : added_hex) {
    if (!is_sha256_hex(hex)) continue;
    std::string id = hex_to_bytes(hex);
    if (held_ids_.insert(id).second) {
      held_digest_.add(id);
      m.added.push_back(std::move(id));
    }
  }
  for (const std::string& hex : removed_hex) {
    if (!is_sha256_hex(hex)) continue;
    std::string id = hex_to_bytes(hex);
    if (held_ids_.erase(id) > 0) {
      held_digest_.remove(id);
      m.removed.push_back(std::move(id));
    }
  }
  if (m.added.empty() && m.removed.empty()) return;
  m.set_digest = digest_bytes();
  // A lost change makes the digests disagree: held_digest_ includes it, so
  // the next heartbeat's digest differs from the scheduler's, which then asks
  // for the full set again.
  (void)out_.send_message(m);
}

}  // namespace kiln::worker
