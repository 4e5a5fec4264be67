// Prometheus text exposition (format 0.0.4) of a FarmView and its derived
// stats: what the scheduler's /metrics endpoint serves.
//
//   FarmStats stats = compute_stats(*view);
//   std::string body = render_metrics(*view, stats);   // Content-Type: kMetricsContentType
//
// Every family is named kiln_<subject>_<what>[_<unit>][_total], has HELP and
// TYPE lines even when it has no sample, and uses the labels pool, worker,
// client, urgency and state. docs/api.md lists the families; the Grafana
// dashboard (docs/grafana/kiln-dashboard.json) uses only names that
// metric_family_names() lists, which tests/http checks. Output passes
// `promtool check metrics`. Pure; thread safety: values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "scheduler/http/farm_view.h"
#include "scheduler/http/stats.h"

namespace kiln::http {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string render_metrics(const FarmView& view, const FarmStats& stats);

// The names of every family render_metrics() writes, in output order.
std::vector<std::string> metric_family_names();

}  // namespace kiln::http
