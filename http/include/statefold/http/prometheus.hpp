#pragma once

// Prometheus text exposition (format 0.0.4), written by hand: families with HELP and TYPE,
// samples with escaped label values, histograms as cumulative buckets with _sum and _count.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "statefold/histogram.hpp"
#include "statefold/http/server.hpp"

namespace statefold::http {

/// The content type of the text exposition format.
inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

using metric_labels = std::vector<std::pair<std::string, std::string>>;

class metrics_text {
 public:
  /// Starts a family: "# HELP" and "# TYPE" lines. `type`: counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const metric_labels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  /// A histogram's samples (its family started with type histogram): name_bucket{le=...}
  /// cumulative up to +Inf, name_sum (seconds), name_count.
  void histogram(std::string_view name, const metric_labels& labels, const latency_histogram& h);

  const std::string& text() const noexcept { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void labels_to(const metric_labels& labels, std::string_view extra_name, std::string_view extra_value);
  std::string out_;
};

/// A label value escaped for the text format (backslash, double quote, newline).
std::string escape_label_value(std::string_view v);

/// The process basics (process_cpu_seconds_total, process_resident_memory_bytes,
/// process_open_fds, process_threads, process_start_time_seconds), from /proc/self.
void process_metrics(metrics_text& m);

/// An HTTP server's own series, from server::stats(): statefold_http_requests_total{method,
/// route,code}, statefold_http_request_seconds{method,route} (histogram), and its connections
/// (accepted, refused over the limit, open). Route labels are the registered routes (route=""
/// for requests no route took), so the series stay bounded whatever paths clients send.
void server_metrics(metrics_text& m, const server::counters& c);

}  // namespace statefold::http
