#include "scheduler/http/metrics.h"

#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace kiln::http {
namespace {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Label values may hold anything a worker or client chose as a name.
std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integral values print without a fraction, so counters read naturally.
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    return fmt::format("{}", static_cast<std::int64_t>(value));
  return fmt::format("{}", value);
}

// Writes families one at a time: HELP and TYPE, then that family's samples,
// as the exposition format requires all samples of a family to be together.
class Writer {
 public:
  // `names` (optional) collects every family name, for metric_family_names().
  explicit Writer(std::vector<std::string>* names = nullptr) : names_(names) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    if (names_ != nullptr) names_->emplace_back(name);
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }

  // A sample of the current family; `suffix` for a histogram's _bucket,
  // _sum and _count.
  void sample(const Labels& labels, double value, std::string_view suffix = "") {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, label_value] : labels) {
        if (!first) out_ += ',';
        first = false;
        fmt::format_to(std::back_inserter(out_), "{}=\"{}\"", key, escape_label_value(label_value));
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += format_value(value);
    out_ += '\n';
  }

  std::string take() { return std::move(out_); }

 private:
  std::vector<std::string>* names_;
  std::string name_;
  std::string out_;
};

double ratio_or_nan(const std::optional<double>& ratio) {
  return ratio ? *ratio : std::numeric_limits<double>::quiet_NaN();
}

void write_all(Writer& w, const FarmView& view, const FarmStats& stats) {
  w.family("kiln_scheduler_info", "gauge",
           "Always 1; labels name the scheduler instance and its placement policy.");
  w.sample({{"scheduler_id", view.scheduler_id}, {"placement_policy", view.placement_policy}}, 1);
  w.family("kiln_scheduler_start_time_seconds", "gauge", "When the scheduler process started (Unix time).");
  if (view.started_at_ms > 0) w.sample({}, static_cast<double>(view.started_at_ms) / 1000.0);
  w.family("kiln_jobs", "gauge", "Jobs in the scheduler's database by state.");
  for (const char* state : kJobStates)
    w.sample({{"state", state}}, static_cast<double>(stats.jobs_by_state.at(state)));

  // ---- workers ----
  auto each_worker = [&](auto&& value_of) {
    for (const WorkerSummary& s : stats.workers) {
      auto value = value_of(s);
      if (value) w.sample({{"pool", s.info->pool}, {"worker", s.info->name}}, *value);
    }
  };
  auto always = [](double v) { return std::optional<double>(v); };
  auto num = [](auto v) { return std::optional<double>(static_cast<double>(v)); };

  w.family("kiln_worker_up", "gauge", "1 while the worker is connected to the scheduler.");
  each_worker([&](const WorkerSummary& s) { return always(s.info->connected ? 1 : 0); });
  w.family("kiln_worker_state", "gauge",
           "1 for the worker's current state (active, paused, draining, disconnected).");
  for (const WorkerSummary& s : stats.workers) {
    for (const char* state : {"active", "paused", "draining", "disconnected"}) {
      w.sample({{"pool", s.info->pool}, {"worker", s.info->name}, {"state", state}},
               s.info->state == state ? 1 : 0);
    }
  }
  w.family("kiln_worker_healthy", "gauge",
           "1 when the worker's health is ok (connected, fresh heartbeat, healthy, enough disk).");
  each_worker([&](const WorkerSummary& s) { return always(s.health == "ok" ? 1 : 0); });
  w.family("kiln_worker_accepting", "gauge", "1 when the worker can be given new jobs.");
  each_worker([&](const WorkerSummary& s) { return always(s.accepting ? 1 : 0); });
  w.family("kiln_worker_low_disk", "gauge", "1 when the worker's free disk is below the low-disk threshold.");
  each_worker([&](const WorkerSummary& s) { return always(s.low_disk ? 1 : 0); });
  w.family("kiln_worker_capacity_jobs", "gauge", "Jobs the worker runs at once.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->capacity); });
  w.family("kiln_worker_running_jobs", "gauge", "Jobs the worker reports running.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.running_jobs); });
  w.family("kiln_worker_disk_free_bytes", "gauge", "Free space on the worker's store filesystem.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.disk_free_bytes); });
  w.family("kiln_worker_disk_total_bytes", "gauge", "Size of the worker's store filesystem.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.disk_total_bytes); });
  w.family("kiln_worker_store_items", "gauge", "Snapshots (cached build steps) in the worker's store.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.store_items); });
  w.family("kiln_worker_store_bytes", "gauge", "Bytes used by the worker's store.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.store_bytes); });
  w.family("kiln_worker_image_cache_bytes", "gauge", "Bytes used by the worker's registry blob cache.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.image_cache_bytes); });
  w.family("kiln_worker_cache_hits_total", "counter", "Build steps the worker found in its cache.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.cache_hits); });
  w.family("kiln_worker_cache_misses_total", "counter", "Build steps the worker had to build.");
  each_worker([&](const WorkerSummary& s) { return num(s.info->stats.cache_misses); });
  w.family("kiln_worker_cache_hit_ratio", "gauge",
           "Cache hits / (hits + misses); absent before the first lookup.");
  each_worker([&](const WorkerSummary& s) { return s.cache_hit_rate; });
  w.family("kiln_worker_last_heartbeat_timestamp_seconds", "gauge",
           "When the worker was last heard from (Unix time).");
  each_worker([&](const WorkerSummary& s) {
    return s.info->last_heartbeat_ms > 0 ? num(static_cast<double>(s.info->last_heartbeat_ms) / 1000.0)
                                         : std::nullopt;
  });
  w.family("kiln_worker_heartbeat_age_seconds", "gauge", "Seconds since the worker was last heard from.");
  each_worker([&](const WorkerSummary& s) {
    return s.info->last_heartbeat_ms > 0 ? always(s.heartbeat_age_seconds) : std::nullopt;
  });

  // ---- pools ----
  auto each_pool = [&](auto&& value_of) {
    for (const PoolSummary& p : stats.pools) w.sample({{"pool", p.name}}, value_of(p));
  };
  w.family("kiln_pool_queued_jobs", "gauge", "Jobs waiting in the pool's queue, by urgency.");
  for (const PoolSummary& p : stats.pools) {
    w.sample({{"pool", p.name}, {"urgency", "urgent"}}, static_cast<double>(p.queued_urgent));
    w.sample({{"pool", p.name}, {"urgency", "normal"}}, static_cast<double>(p.queued_normal));
  }
  w.family("kiln_pool_running_jobs", "gauge", "Jobs assigned to or running on the pool's workers.");
  each_pool([](const PoolSummary& p) { return static_cast<double>(p.running_jobs); });
  w.family("kiln_pool_backlog_seconds", "gauge",
           "Expected build seconds of the queued jobs plus the remaining seconds of the running ones.");
  each_pool([](const PoolSummary& p) { return p.backlog_seconds; });
  w.family("kiln_pool_expected_wait_seconds", "gauge",
           "Backlog divided by the accepting workers' slots; +Inf when work waits and no worker accepts.");
  each_pool([](const PoolSummary& p) {
    return p.expected_wait_seconds ? *p.expected_wait_seconds : std::numeric_limits<double>::infinity();
  });
  w.family("kiln_pool_target_wait_seconds", "gauge", "The queue wait the pool should meet.");
  each_pool([](const PoolSummary& p) { return p.target_wait_seconds; });
  w.family("kiln_pool_workers", "gauge",
           "The pool's known workers by state (active, paused, draining, disconnected).");
  for (const PoolSummary& p : stats.pools) {
    w.sample({{"pool", p.name}, {"state", "active"}}, p.workers_active);
    w.sample({{"pool", p.name}, {"state", "paused"}}, p.workers_paused);
    w.sample({{"pool", p.name}, {"state", "draining"}}, p.workers_draining);
    w.sample({{"pool", p.name}, {"state", "disconnected"}}, p.workers_known - p.workers_connected);
  }
  w.family("kiln_pool_workers_accepting", "gauge", "The pool's workers that can be given new jobs.");
  each_pool([](const PoolSummary& p) { return static_cast<double>(p.workers_accepting); });
  w.family("kiln_pool_workers_wanted", "gauge",
           "Workers the pool needs for its expected wait to meet the target (docs/api.md has the formula).");
  each_pool([](const PoolSummary& p) { return static_cast<double>(p.workers_wanted); });
  w.family("kiln_pool_capacity_jobs", "gauge", "Job slots of the pool's accepting workers.");
  each_pool([](const PoolSummary& p) { return static_cast<double>(p.capacity_slots); });
  w.family("kiln_pool_cache_hit_ratio", "gauge",
           "Cache hits / (hits + misses) over the pool's workers; NaN before any lookup.");
  each_pool([](const PoolSummary& p) { return ratio_or_nan(p.cache_hit_rate); });
  w.family("kiln_pool_jobs_started_total", "counter",
           "Jobs given to one of the pool's workers (the end of a queue wait) since the scheduler started.");
  for (const PoolSummary& p : stats.pools) {
    auto it = view.pool_counters.find(p.name);
    w.sample({{"pool", p.name}},
             it == view.pool_counters.end() ? 0.0 : static_cast<double>(it->second.jobs_started));
  }
  w.family("kiln_pool_jobs_finished_total", "counter",
           "The pool's jobs that ended (succeeded, failed, cancelled) since the scheduler started.");
  for (const PoolSummary& p : stats.pools) {
    auto it = view.pool_counters.find(p.name);
    w.sample({{"pool", p.name}},
             it == view.pool_counters.end() ? 0.0 : static_cast<double>(it->second.jobs_finished));
  }
  w.family("kiln_pool_queue_wait_seconds", "histogram",
           "How long the pool's jobs waited from submit to being given to a worker.");
  for (const PoolSummary& p : stats.pools) {
    auto it = view.pool_counters.find(p.name);
    const PoolCounters counters = it == view.pool_counters.end() ? PoolCounters{} : it->second;
    for (std::size_t i = 0; i < kQueueWaitBucketsSeconds.size(); ++i) {
      w.sample({{"pool", p.name}, {"le", format_value(kQueueWaitBucketsSeconds[i])}},
               static_cast<double>(counters.waits[i]), "_bucket");
    }
    w.sample({{"pool", p.name}, {"le", "+Inf"}}, static_cast<double>(counters.wait_count), "_bucket");
    w.sample({{"pool", p.name}}, counters.wait_sum_seconds, "_sum");
    w.sample({{"pool", p.name}}, static_cast<double>(counters.wait_count), "_count");
  }
  w.family("kiln_pool_low_disk_workers", "gauge",
           "The pool's connected workers below the low-disk threshold.");
  each_pool([](const PoolSummary& p) { return static_cast<double>(p.low_disk_warnings.size()); });

  // ---- clients ----
  w.family("kiln_client_submitted_jobs", "gauge",
           "Jobs the client has submitted (all in the scheduler's database).");
  for (const ClientSummary& c : stats.clients)
    w.sample({{"client", c.name}}, static_cast<double>(c.submitted));
  w.family("kiln_client_jobs", "gauge",
           "The client's unfinished jobs: state waiting (queued) or running (assigned or running).");
  for (const ClientSummary& c : stats.clients) {
    w.sample({{"client", c.name}, {"state", "waiting"}}, static_cast<double>(c.waiting));
    w.sample({{"client", c.name}, {"state", "running"}}, static_cast<double>(c.running));
  }
  w.family("kiln_client_share_ratio", "gauge", "The client's share of all assigned and running jobs.");
  for (const ClientSummary& c : stats.clients) w.sample({{"client", c.name}}, c.share);
}

}  // namespace

std::string render_metrics(const FarmView& view, const FarmStats& stats) {
  Writer writer;
  write_all(writer, view, stats);
  return writer.take();
}

std::vector<std::string> metric_family_names() {
  std::vector<std::string> names;
  Writer writer(&names);
  FarmView empty;
  write_all(writer, empty, compute_stats(empty));
  return names;
}

}  // namespace kiln::http
