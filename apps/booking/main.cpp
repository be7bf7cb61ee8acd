// statefold-booking: the seed's ticket-booking consumer, as a real program on statefold.
//
//   statefold-booking run    [--data DIR] [--partitions N] [--durability sync|interval|none]
//                            [--input FILE|-] [--dedup-window N] [--ack-log FILE] [--strict]
//                            [--events N] [--bookings N] [--duplicates RATE] [--seed S]
//   statefold-booking get    [--data DIR] BOOKING_ID
//   statefold-booking export [--data DIR]
//
// Exit codes: 0 ok; 1 an error (message on stderr), events left unacknowledged, or an
// export that could not read every partition (nothing printed); 2 usage error, or --strict
// and a malformed line.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "booking_model.hpp"
#include "statefold/data_dir.hpp"
#include "statefold/engine.hpp"

namespace {

using booking_engine = statefold::engine<booking::model>;

struct run_options {
  std::string data = "./statefold-data";
  uint32_t partitions = 4;
  bool partitions_given = false;
  std::string durability = "sync";
  std::string input;
  std::size_t dedup_window = 1u << 18;
  std::string ack_log;
  bool strict = false;
  uint64_t events = 1'000'000;
  uint64_t bookings = 250'000;
  double duplicates = 0.02;
  uint64_t seed = 1;
};

std::shared_ptr<spdlog::logger> make_logger(spdlog::level::level_enum level) {
  auto log = spdlog::stderr_color_mt("statefold");
  log->set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  log->set_level(level);
  return log;
}

// Opens the engine on DIR. The partition count comes from the MANIFEST when the directory
// exists and --partitions was not given, so get/export/run never need to repeat it.
statefold::result<std::unique_ptr<booking_engine>> open_engine(const run_options& o,
                                                               std::shared_ptr<spdlog::logger> log,
                                                               bool must_exist) {
  statefold::engine_options eo;
  eo.dir = o.data;
  eo.partitions = o.partitions;
  eo.dedup_window = o.dedup_window;
  eo.logger = std::move(log);
  auto& fs = statefold::posix_file_system();
  auto m = statefold::read_manifest(fs, o.data);
  if (m && !o.partitions_given) eo.partitions = m->partitions;
  if (!m && must_exist)
    return statefold::status{statefold::errc::not_found,
                             o.data + ": no statefold data directory here (run first)"};
  if (o.durability == "sync") eo.mode = statefold::durability::sync;
  else if (o.durability == "interval") eo.mode = statefold::durability::interval;
  else if (o.durability == "none") eo.mode = statefold::durability::none;
  else return statefold::status{statefold::errc::invalid_argument, "--durability must be sync, interval or none"};
  return booking_engine::open(std::move(eo));
}

// -- the demo workload -------------------------------------------------------------------------

// Realistic bookings, interleaved as concurrent sessions would send them: created, sometimes
// a seat change, one to three payments, then confirmed (mostly) or cancelled; a few events
// break a rule (a payment after a cancellation, a confirmation before full payment), and
// `duplicates` of the events are sent again (redeliveries). Deterministic for a seed: the same
// command twice produces the same event IDs, so a rerun is all duplicates.
class workload {
 public:
  explicit workload(const run_options& o) : o_(o), rng_(o.seed) {}

  bool next(booking::event& e) {
    if (emitted_ >= o_.events) return false;
    if (!history_.empty() && unit() < o_.duplicates) {
      e = history_[rng_() % history_.size()];
      ++emitted_;
      return true;
    }
    while (active_.size() < 64 && started_ < o_.bookings) active_.push_back(start(started_++));
    if (active_.empty()) return false;
    const std::size_t i = rng_() % active_.size();
    script& s = active_[i];
    e = s.events[s.next++];
    if (s.next == s.events.size()) {
      active_[i] = std::move(active_.back());
      active_.pop_back();
    }
    if (history_.size() < 100'000) history_.push_back(e);
    else history_[rng_() % history_.size()] = e;
    ++emitted_;
    return true;
  }

 private:
  struct script {
    std::vector<booking::event> events;
    std::size_t next = 0;
  };

  double unit() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  script start(uint64_t n) {
    static const char* shows[] = {"Hamlet", "Cats", "Tosca", "Les Miserables", "Rent", "Evita"};
    script s;
    const std::string id = "B" + std::to_string(100000 + n);
    const std::string session = "sess-" + std::to_string(rng_() % 1'000'000);
    int k = 0;
    auto add = [&](booking::event_type t) -> booking::event& {
      booking::event& e = s.events.emplace_back();
      e.event_id = id + "-" + std::to_string(++k);
      e.booking_id = id;
      e.type = t;
      e.session = session;
      return e;
    };
    auto& c = add(booking::event_type::created);
    c.show = shows[rng_() % 6];
    c.customer = "customer-" + std::to_string(rng_() % 50'000);
    int64_t seats = 1 + static_cast<int64_t>(rng_() % 6);
    const int64_t price = 2500 + static_cast<int64_t>(rng_() % 20) * 500;
    c.seats = seats;
    c.price_cents = price;
    if (unit() < 0.2) {
      seats = 1 + static_cast<int64_t>(rng_() % 6);
      add(booking::event_type::seats_changed).seats = seats;
    }
    const double fate = unit();
    if (fate < 0.03) add(booking::event_type::confirmed);  // before paying: breaks a rule
    int64_t due = seats * price;
    const int payments = 1 + static_cast<int>(rng_() % 3);
    for (int p = 0; p < payments && due > 0; ++p) {
      const int64_t amount = p + 1 == payments ? due : std::max<int64_t>(1, due / 2);
      add(booking::event_type::payment).amount_cents = amount;
      due -= amount;
    }
    if (fate < 0.12) {
      add(booking::event_type::cancelled).reason = "customer request";
      if (unit() < 0.3) add(booking::event_type::payment).amount_cents = 1000;  // after cancel
    } else {
      add(booking::event_type::confirmed);
    }
    return s;
  }

  const run_options& o_;
  std::mt19937_64 rng_;
  uint64_t emitted_ = 0;
  uint64_t started_ = 0;
  std::vector<script> active_;
  std::vector<booking::event> history_;
};

// -- run ---------------------------------------------------------------------------------------

struct counters {
  std::atomic<uint64_t> submitted{0}, answered{0}, applied{0}, duplicates{0}, rejected{0},
      failed{0};
  uint64_t malformed = 0;
  std::mutex mu;
  std::vector<double> latency_ms;
};

// Shows progress on stderr: a bar on a terminal, a plain line every 2 s otherwise.
class progress {
 public:
  progress(counters& c, uint64_t total) : c_(c), total_(total), tty_(::isatty(2)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~progress() {
    stop_ = true;
    thread_.join();
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  void loop() {
    const auto t0 = std::chrono::steady_clock::now();
    auto last_line = t0;
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto now = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(now - t0).count();
      const uint64_t done = c_.answered.load();
      const double rate = secs > 0 ? done / secs : 0;
      if (tty_) {
        const int width = 30;
        const double frac = total_ ? std::min(1.0, double(done) / double(total_)) : 0;
        std::string bar(static_cast<std::size_t>(frac * width), '#');
        bar.resize(width, '.');
        std::fprintf(stderr, "\r[%s] %5.1f%%  %" PRIu64 " events  %.0f events/s ", bar.c_str(),
                     frac * 100, done, rate);
      } else if (now - last_line >= std::chrono::seconds(2)) {
        last_line = now;
        std::fprintf(stderr, "progress: %" PRIu64 " events answered, %.0f events/s\n", done, rate);
      }
    }
  }
  counters& c_;
  uint64_t total_;
  bool tty_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

int cmd_run(run_options o) {
  auto log = make_logger(spdlog::level::info);
  auto opened = open_engine(o, log, /*must_exist=*/false);
  if (!opened) {
    std::fprintf(stderr, "statefold-booking: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto& e = *opened.value();
  FILE* ack_log = nullptr;
  if (!o.ack_log.empty() && !(ack_log = std::fopen(o.ack_log.c_str(), "a"))) {
    std::fprintf(stderr, "statefold-booking: cannot open --ack-log %s\n", o.ack_log.c_str());
    return 1;
  }
  counters c;
  std::vector<booking::event> batch;
  std::vector<statefold::event_meta> metas;
  auto send = [&] {
    if (batch.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(batch.size());
    for (const auto& ev : batch) ids.push_back(ev.event_id);
    const auto t0 = std::chrono::steady_clock::now();
    c.submitted += batch.size();
    auto st = e.submit_batch(std::move(batch), [&, ids = std::move(ids), t0](std::vector<statefold::submit_result>& rs) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard lock(c.mu);
      c.latency_ms.push_back(ms);
      for (std::size_t i = 0; i < rs.size(); ++i) {
        switch (rs[i].kind) {
          case statefold::outcome::applied: ++c.applied; break;
          case statefold::outcome::duplicate: ++c.duplicates; break;
          case statefold::outcome::rejected:
            ++c.rejected;
            std::fprintf(stderr, "event %s rejected: %s\n", ids[i].c_str(), rs[i].reason.c_str());
            break;
          default:
            ++c.failed;
            std::fprintf(stderr, "event %s not acknowledged: %s\n", ids[i].c_str(), rs[i].reason.c_str());
        }
        if (ack_log && (rs[i].kind == statefold::outcome::applied || rs[i].kind == statefold::outcome::duplicate))
          std::fprintf(ack_log, "%s\n", ids[i].c_str());
      }
      if (ack_log) std::fflush(ack_log);  // flushed per batch, after the acknowledgement
      c.answered += rs.size();
    }, std::move(metas));
    batch.clear();
    metas.clear();
    if (!st.is_ok()) std::fprintf(stderr, "statefold-booking: %s\n", st.to_string().c_str());
  };
  auto add = [&](booking::event ev) {
    statefold::event_meta m;
    m.session = ev.session;
    metas.push_back(std::move(m));
    batch.push_back(std::move(ev));
    if (batch.size() == 256) send();
  };

  const auto t0 = std::chrono::steady_clock::now();
  int exit_code = 0;
  {
    progress bar(c, o.input.empty() ? o.events : 0);
    if (o.input.empty()) {
      workload w(o);
      for (booking::event ev; w.next(ev);) add(std::move(ev));
    } else {
      std::ifstream file;
      std::istream* in = &std::cin;
      if (o.input != "-") {
        file.open(o.input);
        if (!file) {
          std::fprintf(stderr, "statefold-booking: cannot read %s\n", o.input.c_str());
          return 1;
        }
        in = &file;
      }
      const std::string name = o.input == "-" ? "stdin" : o.input;
      std::string line, why;
      for (uint64_t n = 1; std::getline(*in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto ev = booking::parse_event(line, why);
        if (!ev) {
          ++c.malformed;
          std::fprintf(stderr, "%s:%" PRIu64 ": malformed event: %s\n", name.c_str(), n, why.c_str());
          if (o.strict) {
            exit_code = 2;
            break;
          }
          continue;
        }
        add(std::move(*ev));
      }
    }
    send();
    while (c.answered.load() < c.submitted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // What the demo built: bookings by status and rule violations, from the live state.
  uint64_t by_status[4] = {}, violations = 0;
  const auto all = e.export_all();
  if (all) {
    for (const auto& [id, s] : *all) {
      ++by_status[static_cast<int>(s.status)];
      violations += s.rejected;
    }
  } else {
    std::fprintf(stderr, "statefold-booking: %s\n", all.error().to_string().c_str());
    exit_code = exit_code ? exit_code : 1;
  }
  std::vector<std::string> recoveries;
  for (const auto& s : e.stats()) recoveries.push_back(s.recovery.summary());
  if (auto st = e.close(); !st.is_ok()) {
    std::fprintf(stderr, "statefold-booking: close: %s\n", st.to_string().c_str());
    exit_code = exit_code ? exit_code : 1;
  }
  if (ack_log) std::fclose(ack_log);

  std::printf("statefold-booking run: %" PRIu64 " events in %.2f s (%.0f events/s), data in %s\n",
              c.submitted.load() + c.malformed, secs, (c.submitted.load() + c.malformed) / std::max(secs, 1e-9),
              o.data.c_str());
  std::printf("  applied     %" PRIu64 "\n  duplicates  %" PRIu64 "\n  rejected    %" PRIu64
              " (malformed or refused by the handler)\n  malformed   %" PRIu64 " (lines skipped)\n",
              c.applied.load(), c.duplicates.load(), c.rejected.load(), c.malformed);
  if (c.failed) std::printf("  NOT ACKNOWLEDGED %" PRIu64 " (rerun the same input: duplicates are detected)\n", c.failed.load());
  std::printf("  ack latency p50 %.2f ms, p99 %.2f ms (per batch of up to 256 events)\n",
              percentile(c.latency_ms, 0.5), percentile(c.latency_ms, 0.99));
  if (all)
    std::printf("  bookings    %zu: %" PRIu64 " pending, %" PRIu64 " confirmed, %" PRIu64
                " cancelled, %" PRIu64 " never created; %" PRIu64 " business-rule rejections\n",
                all->size(), by_status[1], by_status[2], by_status[3], by_status[0], violations);
  else
    std::printf("  bookings    unknown: the export failed (see stderr)\n");
  for (const auto& r : recoveries) std::printf("  recovery: %s\n", r.c_str());
  if (c.failed && exit_code == 0) exit_code = 1;
  return exit_code;
}

int cmd_get(const run_options& o, const std::string& id) {
  auto opened = open_engine(o, make_logger(spdlog::level::warn), /*must_exist=*/true);
  if (!opened) {
    std::fprintf(stderr, "statefold-booking: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto got = opened.value()->get(id);
  if (!got) {
    std::fprintf(stderr, "statefold-booking: get %s: %s\n", id.c_str(), got.error().to_string().c_str());
    return 1;
  }
  const auto& s = *got;
  if (!s || s->status == booking::booking_status::unknown) {
    std::fprintf(stderr, "statefold-booking: booking '%s' is unknown in %s\n", id.c_str(), o.data.c_str());
    return 1;
  }
  std::printf("%s\n", booking::to_json(id, *s).dump(2).c_str());
  return opened.value()->close().is_ok() ? 0 : 1;
}

int cmd_export(const run_options& o) {
  auto opened = open_engine(o, make_logger(spdlog::level::warn), /*must_exist=*/true);
  if (!opened) {
    std::fprintf(stderr, "statefold-booking: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  // All or nothing: a partition that does not come back fails the export before any line
  // is printed, so stdout never holds a partial export.
  auto all = opened.value()->export_all();
  if (!all) {
    std::fprintf(stderr, "statefold-booking: export: %s\n", all.error().to_string().c_str());
    statefold::ignore(opened.value()->close());  // the export error is the one to report
    return 1;
  }
  for (const auto& [id, s] : *all) std::printf("%s\n", booking::to_json(id, s).dump().c_str());
  return opened.value()->close().is_ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  run_options o;
  std::string booking_id;
  CLI::App app{"statefold-booking: the ticket-booking consumer on statefold"};
  app.require_subcommand(1);
  auto add_data = [&](CLI::App* cmd) {
    cmd->add_option("--data", o.data, "data directory")->capture_default_str();
  };
  auto* run = app.add_subcommand("run", "consume events until the input ends, then checkpoint and exit");
  add_data(run);
  run->add_option("--partitions", o.partitions, "partitions (a new directory; else from its MANIFEST)")
      ->each([&](const std::string&) { o.partitions_given = true; });
  run->add_option("--durability", o.durability, "sync | interval | none")->capture_default_str();
  run->add_option("--input", o.input, "JSON Lines file, or - for stdin (default: a generated demo workload)");
  run->add_option("--dedup-window", o.dedup_window, "event IDs remembered per partition")->capture_default_str();
  run->add_option("--ack-log", o.ack_log, "append each acknowledged event_id to this file");
  run->add_flag("--strict", o.strict, "stop at the first malformed line (exit 2)");
  run->add_option("--events", o.events, "demo workload: events")->capture_default_str();
  run->add_option("--bookings", o.bookings, "demo workload: bookings")->capture_default_str();
  run->add_option("--duplicates", o.duplicates, "demo workload: fraction re-sent")->capture_default_str();
  run->add_option("--seed", o.seed, "demo workload: seed")->capture_default_str();
  auto* get = app.add_subcommand("get", "print one booking's state as JSON");
  add_data(get);
  get->add_option("BOOKING_ID", booking_id)->required();
  auto* exp = app.add_subcommand("export", "print every booking as JSON Lines, sorted by booking_id");
  add_data(exp);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*run) return cmd_run(o);
  if (*get) return cmd_get(o, booking_id);
  return cmd_export(o);
}
