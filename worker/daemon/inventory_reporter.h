// Tells the scheduler which step results the worker's store holds
// (docs/protocol.md, "Cache inventory"): the full set after each
// registration, in chunks of at most `chunk_ids` ids (the first marked
// full, the rest adding to it), then additions and removals as they happen.
// Every message carries the IdSetDigest of everything the scheduler has been
// told, and so does every heartbeat once the full set went out: the
// scheduler's drift check.
//
//   InventoryReporter inventory(100000, out);
//   if (!inventory.send_full(ids_hex)) ...        // register again
//   inventory.send_delta({step_id_hex}, {});       // a step was built
//   heartbeat.inventory_digest = inventory.heartbeat_digest();
//
// Contract: ids are 64 lowercase hex characters (anything else is skipped)
// and travel as 32 raw bytes. Until a full set has gone out, deltas are not
// sent (the next full set lists them). A delta that cannot be sent is still
// counted in the digest, so the next heartbeat disagrees with the
// scheduler, which then asks for the full set again.
// Thread safety: none; the event loop's thread.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "common/id_set_digest.h"
#include "worker/daemon/message_out.h"

namespace kiln::worker {

class InventoryReporter {
 public:
  InventoryReporter(std::size_t chunk_ids, MessageOut& out);

  // Replaces the held set with `ids_hex` and sends all of it. False when a
  // message could not be sent: the scheduler has only part of the set, and
  // the worker should register again (which sends it all again).
  bool send_full(const std::vector<std::string>& ids_hex);
  // Sends the ids that are new to, or gone from, the held set; nothing
  // before a full set went out.
  void send_delta(const std::vector<std::string>& added_hex, const std::vector<std::string>& removed_hex);
  // A new registration: nothing is known to have reached the scheduler
  // until the next send_full().
  void reset() { full_sent_ = false; }

  bool full_sent() const { return full_sent_; }
  // The digest heartbeats carry (32 bytes), or empty before the full set went out.
  std::string heartbeat_digest() const;
  std::size_t size() const { return held_ids_.size(); }

 private:
  std::string digest_bytes() const;

  std::size_t chunk_ids_;
  MessageOut& out_;
  std::set<std::string> held_ids_;  // binary step ids the scheduler was told about
  IdSetDigest held_digest_;         // of held_ids_
  bool full_sent_ = false;
};

}  // namespace kiln::worker
