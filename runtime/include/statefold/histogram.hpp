#pragma once

// latency_histogram: counts of durations in fixed buckets (Prometheus-style cumulative on
// output), with their count and sum. Owned by one thread (a partition actor); copied out
// with its stats. Bucket bounds are fixed so that histograms of all partitions add up.

#include <array>
#include <chrono>
#include <cstdint>

namespace statefold {

struct latency_histogram {
  /// Upper bounds, in seconds (the last bucket, +Inf, is implicit).
  static constexpr std::array<double, 14> bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,  2.5};
  std::array<uint64_t, bounds.size() + 1> counts{};  ///< per bucket (not cumulative); last: +Inf
  uint64_t count = 0;
  double sum_seconds = 0;

  void observe(double seconds, uint64_t times = 1) noexcept {
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) ++i;
    counts[i] += times;
    count += times;
    sum_seconds += seconds * static_cast<double>(times);
  }
  void observe(std::chrono::steady_clock::duration d, uint64_t times = 1) noexcept {
    observe(std::chrono::duration<double>(d).count(), times);
  }
  latency_histogram& operator+=(const latency_histogram& o) noexcept {
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    count += o.count;
    sum_seconds += o.sum_seconds;
    return *this;
  }
};

}  // namespace statefold
