#pragma once

// The parts both baselines share: the per-client split, open-loop pacing, the first error of
// several client threads, latency percentiles and /proc readings. Private to bench/baselines.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "baselines.hpp"
#include "statefold/status.hpp"

namespace statefold::bench {

using event_ref = const counter_model::event*;

/// Events split by key_hash(key) % clients, each client's list in input order.
std::vector<std::vector<event_ref>> split_by_key(const std::vector<counter_model::event>& events,
                                                 int clients);

uint64_t distinct_keys(const std::vector<counter_model::event>& events);

/// When a client sends its groups. Closed loop: now. Open loop: the client offers its share of
/// the total rate, so all clients finish together however unevenly the hash split them.
class group_pacer {
 public:
  group_pacer(const baseline_options& o, std::size_t client_events, std::size_t total_events,
              double t0);
  /// Waits until group n's intended send time (open loop) and returns that time; a client that
  /// is behind sends at once but keeps the intended time, so queueing shows in the latency.
  double intended_send(std::size_t n) const;

 private:
  double t0_;
  double interval_s_ = 0;
};

/// The first error reported by any client thread; the others stop at their next group.
class first_error {
 public:
  void set(status st);
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  status get() const;

 private:
  mutable std::mutex mu_;
  status st_;
  std::atomic<bool> failed_{false};
};

/// Sorts `ms` and fills p50/p99/p999 of `r`.
void fill_percentiles(std::vector<double>& ms, baseline_result& r);

/// What one client thread counted.
struct client_tally {
  uint64_t applied = 0, duplicates = 0;
  uint64_t retries = 0;              // Redis: groups redone because another client moved a key
  std::vector<double> latencies_ms;  // per group
};

/// Sums the clients' tallies into `r` (applied, duplicates, percentiles, events/s over
/// r.seconds); an error when not every event was answered.
status add_up(const char* who, std::vector<client_tally>& tallies, std::size_t events,
              baseline_result& r);

/// A "name: value" field of a /proc file (e.g. "write_bytes" in /proc/<pid>/io, "VmHWM" in
/// /proc/<pid>/status, in the unit the file uses). nullopt when unreadable or absent.
std::optional<uint64_t> proc_field(const std::string& path, std::string_view name);

/// Sum of the sizes of the regular files under `dir` (recursive); 0 when it does not exist.
uint64_t dir_bytes(const std::string& dir);

/// The last `max_bytes` of a text file, for error messages; "" when unreadable.
std::string file_tail(const std::string& path, std::size_t max_bytes = 2000);

}  // namespace statefold::bench
