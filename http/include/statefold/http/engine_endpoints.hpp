#pragma once

// /metrics, /healthz and /readyz for an engine<Model>, to serve next to it:
//
//   auto routes = statefold::http::engine_routes(*engine);
//   auto http = statefold::http::server::start({.listen = "127.0.0.1:9100"}, std::move(routes));
//
// docs/metrics.md lists every series. Totals by default; with per_partition, every
// per-partition series carries a partition="N" label instead (1024 partitions make about 30
// thousand series then: ask for it when you need it).

#include <functional>
#include <string>
#include <vector>

#include "statefold/engine.hpp"
#include "statefold/http/prometheus.hpp"
#include "statefold/http/server.hpp"

namespace statefold::http {

struct engine_metrics_options {
  bool per_partition = false;
  /// More families appended to /metrics (an application's own counters); may be empty.
  std::function<void(metrics_text&)> extra;
  /// /readyz: false while the service does not take events (starting, draining); empty: true.
  std::function<bool()> accepting;
};

/// The engine's figures and the process basics, in the text format.
std::string engine_metrics(const std::vector<engine_partition_stats>& stats, const engine_metrics_options& o);
/// 200 "ok", or 503 with one line per partition that is down, and why.
response engine_health(const std::vector<engine_partition_stats>& stats);
/// 200 "ready" once every partition is recovered and running and the service accepts events;
/// 503 with the reason otherwise.
response engine_ready(const std::vector<engine_partition_stats>& stats, bool accepting);

/// GET /metrics, /healthz and /readyz on `e`, which must outlive the server.
template <class Model>
std::vector<route> engine_routes(engine<Model>& e, engine_metrics_options o = {}) {
  return {
      {"GET", "/metrics", false,
       [&e, o](request&, responder answer) {
         answer({200, std::string(prometheus_content_type), engine_metrics(e.stats(), o), {}});
       }},
      {"GET", "/healthz", false, [&e](request&, responder answer) { answer(engine_health(e.stats())); }},
      {"GET", "/readyz", false,
       [&e, o](request&, responder answer) { answer(engine_ready(e.stats(), !o.accepting || o.accepting())); }},
  };
}

}  // namespace statefold::http
