// Fair start times between clients of a pool (OCluster's scheme), shared by
// the policies that order their queues by it ("kiln", "ocluster-hint").
//
//   FairShare fair;
//   fair.set_rate("linux", "nightly", 0.5);
//   double key = fair.priority_key("linux", "ci", /*cost=*/120, /*urgent=*/false, now, 600);
//   // jobs run in increasing key order
//
// Each (pool, client) has a next fair start time. A job's fair start is
// max(now, next); the client's next then moves on by cost / rate. A client
// that submits a burst therefore has its later jobs placed behind the work
// of clients that submit a little, in proportion to their rates. The
// priority key subtracts `urgent_advance` for urgent jobs: urgent work goes
// first, yet a non-urgent job that has waited longer than the advance
// competes with new urgent jobs as an equal (aging), so it cannot starve.
// Thread safety: none.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace kiln::placement {

class FairShare {
 public:
  // The job's priority key (smaller runs first); advances the client's clock.
  double priority_key(const std::string& pool, const std::string& client, double cost, bool urgent,
                      double now, double urgent_advance) {
    Client& c = clients_[{pool, client}];
    double start = std::max(now, c.next_start);
    c.next_start = start + std::max(cost, 0.0) / c.rate;
    return urgent ? start - urgent_advance : start;
  }

  // rate > 0; others are ignored.
  void set_rate(const std::string& pool, const std::string& client, double rate) {
    if (rate > 0) clients_[{pool, client}].rate = rate;
  }

  // "pool/client(rate)+delay ..." in name order.
  std::string dump(double now) const {
    std::string out;
    for (const auto& [key, c] : clients_) {
      out += fmt::format("{}{}/{}({:g})", out.empty() ? "" : " ", key.first, key.second, c.rate);
      if (c.next_start > now) out += fmt::format("+{:.0f}s", c.next_start - now);
    }
    return out;
  }

 private:
  struct Client {
    double next_start = -std::numeric_limits<double>::infinity();  // no job yet
    double rate = 1;
  };
  std::map<std::pair<std::string, std::string>, Client> clients_;
};

}  // namespace kiln::placement
