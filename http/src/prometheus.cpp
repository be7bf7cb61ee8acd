#include "statefold/http/prometheus.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace statefold::http {
namespace {

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void metrics_text::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ");
  for (char c : help) {  // HELP escapes backslash and newline
    if (c == '\\') out_ += "\\\\";
    else if (c == '\n') out_ += "\\n";
    else out_ += c;
  }
  out_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void metrics_text::labels_to(const metric_labels& labels, std::string_view extra_name, std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out_ += ',';
    first = false;
    out_.append(k).append("=\"").append(escape_label_value(v)).append("\"");
  }
  if (!extra_name.empty()) {
    if (!first) out_ += ',';
    out_.append(extra_name).append("=\"").append(extra_value).append("\"");
  }
  out_ += '}';
}

void metrics_text::sample(std::string_view name, const metric_labels& labels, double value) {
  out_.append(name);
  labels_to(labels, {}, {});
  out_.append(" ").append(number(value)).append("\n");
}

void metrics_text::histogram(std::string_view name, const metric_labels& labels, const latency_histogram& h) {
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    out_.append(name).append("_bucket");
    labels_to(labels, "le", i < latency_histogram::bounds.size() ? number(latency_histogram::bounds[i]) : "+Inf");
    out_.append(" ").append(number(static_cast<double>(cumulative))).append("\n");
  }
  out_.append(name).append("_sum");
  labels_to(labels, {}, {});
  out_.append(" ").append(number(h.sum_seconds)).append("\n");
  out_.append(name).append("_count");
  labels_to(labels, {}, {});
  out_.append(" ").append(number(static_cast<double>(h.count))).append("\n");
}

void process_metrics(metrics_text& m) {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  m.family("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
  m.sample("process_cpu_seconds_total", cpu);

  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  m.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  m.sample("process_resident_memory_bytes", static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)));

  double fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++fds;
    ::closedir(d);
  }
  m.family("process_open_fds", "gauge", "Number of open file descriptors.");
  m.sample("process_open_fds", fds);

  // /proc/self/stat: field 20 is num_threads, field 22 starttime (clock ticks after boot).
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  double threads = 0, start_ticks = 0;
  if (auto close = line.rfind(')'); close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    for (int i = 3; rest >> field; ++i) {  // the fields after "pid (comm)" start at 3
      if (i == 20) threads = std::stod(field);
      if (i == 22) {
        start_ticks = std::stod(field);
        break;
      }
    }
  }
  m.family("process_threads", "gauge", "Number of OS threads in the process.");
  m.sample("process_threads", threads);
  double boot_time = 0;
  std::ifstream pstat("/proc/stat");
  for (std::string l; std::getline(pstat, l);)
    if (l.rfind("btime ", 0) == 0) boot_time = std::stod(l.substr(6));
  m.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  m.sample("process_start_time_seconds", boot_time + start_ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)));
}

void server_metrics(metrics_text& m, const server::counters& c) {
  m.family("statefold_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& a : c.answers)
    m.sample("statefold_http_requests_total",
             {{"method", a.method}, {"route", a.route}, {"code", std::to_string(a.status)}},
             static_cast<double>(a.answers));
  m.family("statefold_http_request_seconds", "histogram",
           "From a request read whole to its answer written, by route.");
  for (const auto& l : c.latency) m.histogram("statefold_http_request_seconds", {{"method", l.method}, {"route", l.route}}, l.seconds);
  m.family("statefold_http_connections_total", "counter", "Connections accepted.");
  m.sample("statefold_http_connections_total", static_cast<double>(c.connections));
  m.family("statefold_http_connections_refused_total", "counter",
           "Connections answered 503 because the server had its maximum open.");
  m.sample("statefold_http_connections_refused_total", static_cast<double>(c.refused));
  m.family("statefold_http_open_connections", "gauge", "Connections open now.");
  m.sample("statefold_http_open_connections", static_cast<double>(c.open));
}

}  // namespace statefold::http
