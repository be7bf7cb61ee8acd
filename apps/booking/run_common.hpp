#pragma once

// What statefold-booking's two runs share (run.cpp: the stateful engine; run_store.cpp: the
// stateless consumer over --store): stop signals, counters, the progress display, the
// problem log and percentiles, so both print the same progress and summary.

#include <signal.h>
#include <unistd.h>

#include <cstdarg>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "statefold/http/prometheus.hpp"
#include "statefold/log.hpp"

namespace booking {

using clock_type = std::chrono::steady_clock;

inline std::atomic<bool> stop_requested{false};
inline std::atomic<int> stop_signal{0};

extern "C" inline void on_stop_signal(int sig) {
  stop_signal.store(sig);
  stop_requested.store(true);
}

inline void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read waiting on a pipe returns, and sees the request
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// The program's own messages on stderr. With --log-format text, each is the line as written;
// with json, a JSON object through the same kind of logger as the engine's (logger
// "statefold-booking"), with the fields of what it is about, so that every line a log
// collector reads is JSON.
inline std::shared_ptr<spdlog::logger> json_log;  // null: text
inline statefold::log_style log_style_chosen = statefold::log_style::text;

/// Once, from main, before anything is printed: --log-format for every line that follows.
inline void setup_logging(const std::string& format) {
  log_style_chosen = statefold::parse_log_style(format).value_or(statefold::log_style::text);
  json_log = log_style_chosen == statefold::log_style::json
                 ? statefold::make_stderr_logger("statefold-booking", log_style_chosen)
                 : nullptr;
}

/// A logger for an engine, in the chosen style.
inline std::shared_ptr<spdlog::logger> engine_logger() { return statefold::make_stderr_logger("statefold", log_style_chosen); }

inline bool logging_json() { return json_log != nullptr; }

inline void say_text(spdlog::level::level_enum level, const statefold::log_fields& fields, const std::string& text) {
  if (json_log)
    statefold::log_with(*json_log, level, fields, "{}", text);
  else
    std::fprintf(stderr, "%s\n", text.c_str());
}

/// One message, printf-style, without its newline.
__attribute__((format(printf, 3, 4))) inline void say(spdlog::level::level_enum level,
                                                      const statefold::log_fields& fields, const char* format, ...) {
  va_list ap, again;
  va_start(ap, format);
  va_copy(again, ap);
  char small[512];
  const int n = std::vsnprintf(small, sizeof small, format, ap);
  std::string text;
  if (n >= 0 && static_cast<std::size_t>(n) < sizeof small) {
    text.assign(small, static_cast<std::size_t>(n));
  } else if (n >= 0) {
    text.resize(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(text.data(), text.size(), format, again);
    text.resize(static_cast<std::size_t>(n));
  }
  va_end(again);
  va_end(ap);
  say_text(level, fields, text);
}

// The first few of a kind of problem go to stderr one line each; then one line says how many
// more there were, so that a bad input cannot flood the terminal.
class problem_log {
 public:
  explicit problem_log(std::size_t limit) : limit_(limit) {}
  void report(const std::string& line, const statefold::log_fields& fields = {}) {
    std::lock_guard lock(mu_);
    if (++count_ <= limit_) say_text(spdlog::level::warn, fields, line);
  }
  void finish(const char* what) {
    std::lock_guard lock(mu_);
    if (count_ > limit_) say(spdlog::level::warn, {}, "... and %" PRIu64 " more %s (not shown)", count_ - limit_, what);
  }

 private:
  std::mutex mu_;
  std::size_t limit_;
  uint64_t count_ = 0;
};

struct counters {
  std::atomic<uint64_t> submitted{0}, answered{0}, applied{0}, duplicates{0}, conflicts{0},
      handler_errors{0}, failed{0}, violations{0};
  std::atomic<uint64_t> malformed{0};
  std::mutex mu;
  std::vector<double> latency_ms;
  // Failures per partition: how many, and the first (line, reason).
  struct failure {
    uint64_t events = 0;
    uint64_t first_line = 0;
    std::string first_reason;
    std::string first_session;  // with --log-format json
  };
  std::map<uint32_t, failure> failures;
};

// Progress on stderr: a bar on a terminal, a plain line every 2 s otherwise. By input
// position when the input's size is known, by events answered otherwise.
class progress_display {
 public:
  progress_display(counters& c, const std::atomic<uint64_t>& pos, std::optional<uint64_t> total,
                   const char* unit)
      : c_(c), pos_(pos), total_(total), unit_(unit), tty_(::isatty(2) && !logging_json()) {
    thread_ = std::thread([this] { loop(); });
  }
  ~progress_display() { stop(); }
  void stop() {
    if (stopped_.exchange(true)) return;
    thread_.join();
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  void loop() {
    const auto t0 = clock_type::now();
    auto last_line = t0;
    while (!stopped_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto now = clock_type::now();
      const double secs = std::chrono::duration<double>(now - t0).count();
      const uint64_t done = c_.answered.load();
      const double rate = secs > 0 ? done / secs : 0;
      const double frac =
          total_ && *total_ ? std::min(1.0, double(pos_.load()) / double(*total_)) : 0;
      if (tty_) {
        const int width = 30;
        std::string bar(static_cast<std::size_t>(frac * width), '#');
        bar.resize(width, '.');
        if (total_)
          std::fprintf(stderr, "\r[%s] %5.1f%% of the %s  %" PRIu64 " events  %.0f events/s ",
                       bar.c_str(), frac * 100, unit_, done, rate);
        else
          std::fprintf(stderr, "\r%" PRIu64 " events answered  %.0f events/s ", done, rate);
      } else if (now - last_line >= std::chrono::seconds(2)) {
        last_line = now;
        if (total_)
          say(spdlog::level::info, {}, "progress: %.1f%% of the %s, %" PRIu64 " events answered, %.0f events/s",
              frac * 100, unit_, done, rate);
        else
          say(spdlog::level::info, {}, "progress: %" PRIu64 " events answered, %.0f events/s", done, rate);
      }
    }
  }
  counters& c_;
  const std::atomic<uint64_t>& pos_;
  std::optional<uint64_t> total_;
  const char* unit_;
  bool tty_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

// The run's own counters on /metrics (--metrics-listen), beside the engine's or the store's:
// what the program answered, including what never reached a partition.
inline void booking_metrics(statefold::http::metrics_text& m, const counters& c) {
  const char* help = "Events and lines statefold-booking answered, by outcome.";
  m.family("statefold_booking_events_total", "counter", help);
  const std::pair<const char*, uint64_t> by[] = {
      {"applied", c.applied.load()},         {"duplicate", c.duplicates.load()},
      {"conflict", c.conflicts.load()},      {"rejected", c.handler_errors.load()},
      {"failed", c.failed.load()},           {"malformed", c.malformed.load()}};
  for (const auto& [outcome, n] : by) m.sample("statefold_booking_events_total", {{"outcome", outcome}}, static_cast<double>(n));
  m.family("statefold_booking_rule_violations_total", "counter",
           "Applied events that broke a booking rule (state, not errors).");
  m.sample("statefold_booking_rule_violations_total", static_cast<double>(c.violations.load()));
}

}  // namespace booking
