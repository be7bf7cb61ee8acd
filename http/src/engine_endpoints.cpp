#include "statefold/http/engine_endpoints.hpp"

#include <algorithm>

namespace statefold::http {
namespace {

// One family, as totals over the partitions or one series per partition.
class by_partition {
 public:
  by_partition(metrics_text& m, const std::vector<engine_partition_stats>& stats, bool per_partition)
      : m_(m), stats_(stats), per_(per_partition) {}

  template <class F>
  void sum(std::string_view name, std::string_view type, std::string_view help, F value,
           const metric_labels& labels = {}, bool start = true) {
    if (start) m_.family(name, type, help);
    if (!per_) {
      double total = 0;
      for (const auto& s : stats_) total += static_cast<double>(value(s));
      m_.sample(name, labels, total);
      return;
    }
    for (const auto& s : stats_) {
      metric_labels l = labels;
      l.emplace_back("partition", std::to_string(s.partition));
      m_.sample(name, l, static_cast<double>(value(s)));
    }
  }
  template <class F>
  void histogram(std::string_view name, std::string_view help, F of) {
    m_.family(name, "histogram", help);
    if (!per_) {
      latency_histogram total;
      for (const auto& s : stats_) total += of(s);
      m_.histogram(name, {}, total);
      return;
    }
    for (const auto& s : stats_) m_.histogram(name, {{"partition", std::to_string(s.partition)}}, of(s));
  }

 private:
  metrics_text& m_;
  const std::vector<engine_partition_stats>& stats_;
  bool per_;
};

bool down(const engine_partition_stats& s) { return !s.failure.empty(); }

}  // namespace

std::string engine_metrics(const std::vector<engine_partition_stats>& stats, const engine_metrics_options& o) {
  metrics_text m;
  by_partition p(m, stats, o.per_partition);
  m.family("statefold_partitions", "gauge", "Partitions of the engine.");
  m.sample("statefold_partitions", static_cast<double>(stats.size()));
  m.family("statefold_partitions_active", "gauge", "Partitions running in this engine (the others are released).");
  m.sample("statefold_partitions_active",
           static_cast<double>(std::count_if(stats.begin(), stats.end(), [](const auto& s) { return s.active; })));
  m.family("statefold_partitions_down", "gauge", "Partitions failed or restarting (see /healthz).");
  m.sample("statefold_partitions_down", static_cast<double>(std::count_if(stats.begin(), stats.end(), down)));

  const char* events_help = "Events answered by the partitions, by outcome (applied, duplicate, conflict, rejected).";
  m.family("statefold_events_total", "counter", events_help);
  p.sum("statefold_events_total", "counter", events_help, [](const auto& s) { return s.core.applied; }, {{"outcome", "applied"}}, false);
  p.sum("statefold_events_total", "counter", events_help, [](const auto& s) { return s.core.duplicates; }, {{"outcome", "duplicate"}}, false);
  p.sum("statefold_events_total", "counter", events_help, [](const auto& s) { return s.core.conflicts; }, {{"outcome", "conflict"}}, false);
  p.sum("statefold_events_total", "counter", events_help, [](const auto& s) { return s.core.rejected; }, {{"outcome", "rejected"}}, false);

  p.sum("statefold_durable_records_total", "counter",
        "Log records made durable (the durable LSN; summed over partitions unless per partition).",
        [](const auto& s) { return s.core.durable_lsn; });
  p.sum("statefold_in_flight_events", "gauge", "Events submitted and not answered yet.",
        [](const auto& s) { return s.in_flight; });
  p.sum("statefold_waiting_for_sync_batches", "gauge", "Batches applied and waiting for their sync.",
        [](const auto& s) { return s.waiting_for_sync; });
  p.sum("statefold_syncs_total", "counter", "Group commits (a write and its fdatasync) completed.",
        [](const auto& s) { return s.syncs; });
  p.histogram("statefold_persist_seconds", "Duration of one group commit: the write and its fdatasync.",
              [](const auto& s) -> const latency_histogram& { return s.persist_latency; });
  p.histogram("statefold_ack_latency_seconds",
              "Per event: from its partition taking its batch to its answer (durable for applied).",
              [](const auto& s) -> const latency_histogram& { return s.ack_latency; });
  p.sum("statefold_checkpoints_total", "counter", "Checkpoints written.",
        [](const auto& s) { return s.core.checkpoints_written; });
  p.histogram("statefold_checkpoint_seconds", "Duration of a checkpoint write, from its image to durable.",
              [](const auto& s) -> const latency_histogram& { return s.checkpoint_latency; });
  p.sum("statefold_checkpoint_last_bytes", "gauge", "Size of the last checkpoint written.",
        [](const auto& s) { return s.checkpoint_bytes; });
  p.sum("statefold_entities", "gauge", "Entities (keys) held.", [](const auto& s) { return s.core.entities; });
  p.sum("statefold_dedup_window_entries", "gauge", "Event identities in the dedup window.",
        [](const auto& s) { return s.core.dedup_size; });
  p.sum("statefold_dedup_window_capacity", "gauge", "Capacity of the dedup window.",
        [](const auto& s) { return s.core.dedup_capacity; });
  p.sum("statefold_dedup_evictions_total", "counter", "Identities evicted from the dedup window.",
        [](const auto& s) { return s.core.dedup_evictions; });
  p.sum("statefold_restarts_total", "counter", "Partition restarts after a failure.",
        [](const auto& s) { return s.restarts; });
  p.sum("statefold_recovery_replayed_events", "gauge", "Events replayed by the last recovery.",
        [](const auto& s) { return s.recovery.events_replayed; });
  m.family("statefold_recovery_seconds", "gauge",
           o.per_partition ? "Duration of the partition's last recovery." : "Duration of the slowest partition's last recovery.");
  if (o.per_partition) {
    for (const auto& s : stats) m.sample("statefold_recovery_seconds", {{"partition", std::to_string(s.partition)}}, s.recovery.seconds);
  } else {
    double slowest = 0;
    for (const auto& s : stats) slowest = std::max(slowest, s.recovery.seconds);
    m.sample("statefold_recovery_seconds", slowest);
  }
  if (o.extra) o.extra(m);
  process_metrics(m);
  return m.take();
}

response engine_health(const std::vector<engine_partition_stats>& stats) {
  std::string body;
  for (const auto& s : stats)
    if (down(s)) body += "partition " + std::to_string(s.partition) + " is down: " + s.failure + "\n";
  if (body.empty()) return {200, "text/plain; charset=utf-8", "ok\n", {}};
  return {503, "text/plain; charset=utf-8", body, {}};
}

response engine_ready(const std::vector<engine_partition_stats>& stats, bool accepting) {
  if (!accepting) return {503, "text/plain; charset=utf-8", "not accepting events (starting or draining)\n", {}};
  auto h = engine_health(stats);
  if (h.status != 200) return h;
  return {200, "text/plain; charset=utf-8", "ready\n", {}};
}

}  // namespace statefold::http
