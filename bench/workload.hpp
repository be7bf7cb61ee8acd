#pragma once

// The benchmark workload: seeded events with unique IDs, keys drawn uniformly or from a Zipf
// distribution, a share of redelivered duplicates, and padding so that each logged record has
// the size asked for. Every system in a run (statefold, the tight loop, Redis, RocksDB) gets
// the same vector.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "counter_model.hpp"

namespace statefold::bench {

using event = counter_model::event;

struct workload_spec {
  uint64_t events = 2'000'000;
  uint64_t keys = 1'000'000;
  bool zipf = false;        ///< Zipf-skewed keys (exponent `zipf_s`), else uniform
  double zipf_s = 0.99;
  double dup = 0.05;        ///< share of events that redeliver an earlier event (same ID, key)
  /// A redelivered event is one of the last `dup_lag` events, as when a consumer restarts
  /// from a committed offset that trails. Smaller than statefold's dedup window (2^18 IDs per
  /// partition), which bounds how far back duplicates are recognised (docs/semantics.md).
  uint64_t dup_lag = 100'000;
  uint32_t event_bytes = 100;
  uint64_t seed = 42;

  std::string describe() const {
    auto count = [](uint64_t n) {
      return n % 1'000'000 == 0 ? std::to_string(n / 1'000'000) + "M"
             : n % 1'000 == 0   ? std::to_string(n / 1'000) + "k"
                                : std::to_string(n);
    };
    return std::to_string(event_bytes) + " B, " + count(keys) + " keys " +
           (zipf ? "zipf" : "uniform") + ", " + std::to_string(static_cast<int>(dup * 100 + 0.5)) +
           "% dup";
  }
};

/// Ranks 0..n-1 with P(k) proportional to 1/(k+1)^s, by inverting a precomputed CDF.
class zipf_distribution {
 public:
  zipf_distribution(uint64_t n, double s) : cdf_(n) {
    double sum = 0;
    for (uint64_t k = 0; k < n; ++k) cdf_[k] = (sum += 1.0 / std::pow(static_cast<double>(k + 1), s));
    for (auto& c : cdf_) c /= sum;
  }
  template <class Rng>
  uint64_t operator()(Rng& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

/// Pads `e` so that its logged record (envelope + amount + pad) is about `bytes` long.
inline void pad_to(event& e, uint32_t bytes) {
  const std::size_t used = 1 + 1 + e.id.size() + 1 + e.key.size() + 8;
  e.pad.assign(bytes > used ? bytes - used : 0, 'x');
}

inline std::string key_name(uint64_t k) { return "k" + std::to_string(k); }

/// The measured events. IDs are "<prefix><i>"; a duplicate repeats an earlier event whole.
inline std::vector<event> make_events(const workload_spec& w, const std::string& prefix = "e") {
  std::mt19937_64 rng(w.seed);
  std::optional<zipf_distribution> zipf;
  if (w.zipf) zipf.emplace(w.keys, w.zipf_s);
  std::vector<event> v;
  v.reserve(w.events);
  std::vector<uint64_t> originals;  // indexes of first deliveries, ascending
  for (uint64_t i = 0; i < w.events; ++i) {
    if (i > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < w.dup) {
      // A first delivery among the last dup_lag events (never a copy of a copy, whose first
      // delivery could be further back).
      const auto from = std::lower_bound(originals.begin(), originals.end(), i > w.dup_lag ? i - w.dup_lag : 0);
      if (from != originals.end()) {
        v.push_back(v[*(from + static_cast<std::ptrdiff_t>(rng() % static_cast<uint64_t>(originals.end() - from)))]);
        continue;
      }
    }
    originals.push_back(i);
    event e;
    e.id = prefix + std::to_string(i);
    e.key = key_name(zipf ? (*zipf)(rng) : rng() % w.keys);
    e.amount = static_cast<int64_t>(i % 1000);
    pad_to(e, w.event_bytes);
    v.push_back(std::move(e));
  }
  return v;
}

/// Warm-up event i: one per key (key i), so that every key has state before the clock starts.
inline event warmup_event(uint64_t i, uint32_t bytes) {
  event e;
  e.id = "w" + std::to_string(i);
  e.key = key_name(i);
  e.amount = 1;
  pad_to(e, bytes);
  return e;
}

inline uint64_t distinct_ids(const std::vector<event>& events) {
  std::vector<std::string_view> ids;
  ids.reserve(events.size());
  for (const auto& e : events) ids.emplace_back(e.id);
  std::sort(ids.begin(), ids.end());
  return static_cast<uint64_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
}

}  // namespace statefold::bench
