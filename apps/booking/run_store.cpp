// statefold-booking run --store URL: the seed's stateless consumer over an external store
// (statefold::stateless_consumer over statefold::stores::redis_store), with the stateful
// run's inputs, outputs and exit codes. Single-threaded: read a batch, process it (one read
// round trip, one atomic commit), acknowledge it, read the next.

#include <cerrno>
#include <cstring>

#include "run.hpp"
#include "run_common.hpp"
#include "statefold/http/server.hpp"
#include "statefold/stateless_consumer.hpp"
#include "statefold/stores/redis_store.hpp"

namespace booking {

statefold::result<std::unique_ptr<statefold::stores::redis_store>> open_store(const store_options& o,
                                                                             bool for_writing) {
  statefold::stores::redis_options ro;
  ro.prefix = o.prefix;
  ro.processed_ttl_s = o.processed_ttl_s;
  auto s = statefold::stores::redis_store::connect(o.url, ro);
  if (!s) return s.error();
  if (auto st = (*s)->check_model(model::name, model::codec_version, for_writing); !st.is_ok()) return st;
  return std::move(s).value();
}

statefold::status check_store_options(const store_options& o) {
  if (auto a = statefold::stores::parse_redis_url(o.url); !a) return a.error();
  statefold::stores::redis_options ro;
  ro.prefix = o.prefix;
  ro.processed_ttl_s = o.processed_ttl_s;
  return statefold::stores::check_redis_options(ro);
}

int open_run_io(const run_options& o, run_io& io) {
  if (o.input.empty()) {
    io.input = open_demo(o.demo);
  } else {
    auto in = open_lines(o.input, o.source, &stop_requested);
    if (!in) {
      say(spdlog::level::err, {}, "statefold-booking: %s", in.error().to_string().c_str());
      return 1;
    }
    io.input = std::move(in).value();
  }
  if (!o.ack_log.empty() && !(io.ack_log = std::fopen(o.ack_log.c_str(), "a"))) {
    say(spdlog::level::err, {}, "statefold-booking: cannot open --ack-log %s: %s", o.ack_log.c_str(),
                 std::strerror(errno));
    return 1;
  }
  return 0;
}

int run_stateless(const run_options& o) {
  install_stop_handlers();
  run_io io;
  if (int rc = open_run_io(o, io); rc != 0) return rc;
  std::unique_ptr<event_input>& input = io.input;
  FILE* const ack_log = io.ack_log;

  auto opened = open_store(o.store, true);
  if (!opened) {
    say(spdlog::level::err, {}, "statefold-booking: %s", opened.error().to_string().c_str());
    return 1;
  }
  auto& store = **opened;
  std::string durability = "unknown";
  if (auto d = store.durability(); d) {
    durability = d->text;
    if (!d->durable)
      say(spdlog::level::warn, {}, "statefold-booking: warning: %s runs with %s", store.name().c_str(),
                   d->text.c_str());
  }
  statefold::stateless_consumer<model, statefold::stores::redis_store> consumer(store);

  // Resume where the store says this source is consumed.
  auto from = store.progress(input->source());
  if (!from) {
    say(spdlog::level::err, {}, "statefold-booking: %s", from.error().to_string().c_str());
    return 1;
  }
  const auto resume_t0 = clock_type::now();
  if (auto st = input->resume(*from); !st.is_ok()) {
    say(spdlog::level::err, {}, "statefold-booking: %s", st.to_string().c_str());
    return 1;
  }
  if (from->next > 0)
    say(spdlog::level::info, {}, "resumed %s at %s %" PRIu64 " (position %" PRIu64 "; %.2f s to skip and check what was consumed)",
                 printable(input->label()).c_str(), o.input.empty() ? "event" : "line",
                 input->items() + 1, input->position(),
                 std::chrono::duration<double>(clock_type::now() - resume_t0).count());
  const uint64_t items_before = input->items();

  counters c;
  // --metrics-listen: the run's counters, the store's retries, its health.
  std::atomic<bool> reading{true};
  std::atomic<uint64_t> retries{0};
  std::mutex failure_mu;
  std::string store_failure;  // under failure_mu
  std::unique_ptr<statefold::http::server> metrics;
  if (!o.metrics_listen.empty()) {
    namespace sh = statefold::http;
    std::vector<sh::route> routes = {
        {"GET", "/metrics", false,
         [&](sh::request&, sh::responder answer) {
           sh::metrics_text m;
           booking_metrics(m, c);
           m.family("statefold_store_retries_total", "counter",
                    "Batches read and redone because another consumer changed what they read.");
           m.sample("statefold_store_retries_total", static_cast<double>(retries.load()));
           sh::process_metrics(m);
           answer({200, std::string(sh::prometheus_content_type), m.take(), {}});
         }},
        {"GET", "/healthz", false,
         [&](sh::request&, sh::responder answer) {
           std::lock_guard lock(failure_mu);
           if (store_failure.empty()) answer({200, "text/plain; charset=utf-8", "ok\n", {}});
           else answer({503, "text/plain; charset=utf-8", "store failed: " + store_failure + "\n", {}});
         }},
        {"GET", "/readyz", false, [&](sh::request&, sh::responder answer) {
           std::lock_guard lock(failure_mu);
           if (reading.load() && store_failure.empty()) answer({200, "text/plain; charset=utf-8", "ready\n", {}});
           else answer({503, "text/plain; charset=utf-8", "not accepting events\n", {}});
         }}};
    sh::server_options so;
    so.listen = o.metrics_listen;
    auto started = sh::server::start(so, std::move(routes));
    if (!started) {
      say(spdlog::level::err, {}, "statefold-booking: --metrics-listen: %s", started.error().to_string().c_str());
      return 1;
    }
    metrics = std::move(started).value();
    say(spdlog::level::info, {}, "metrics: http://%s/metrics (and /healthz, /readyz)", metrics->address().c_str());
  }
  problem_log malformed_log(20), refused_log(20);
  std::atomic<uint64_t> read_pos{input->position()};
  const std::string label = printable(input->label());
  int exit_code = 0;
  std::string stopped_because;

  std::vector<event> batch;
  std::vector<statefold::event_meta> metas;
  std::vector<uint64_t> lines;
  // Where the next commit's range starts: the store's position. (The input may be past it: a
  // last line consumed without its newline, which has arrived since, is skipped whole.)
  uint64_t batch_from = from->next;
  // Commits what is read, up to `to`; false when the store failed (nothing of it acknowledged).
  auto send = [&](const statefold::source_progress& to) -> bool {
    const auto t0 = clock_type::now();
    const statefold::source_span span{input->source(), batch_from, to};
    c.submitted += batch.size();
    auto rs = consumer.process(batch, metas, &span);
    retries = consumer.stats().retries;
    if (!rs) {
      {
        std::lock_guard lock(failure_mu);
        store_failure = rs.error().to_string();
      }
      c.failed += batch.size();
      auto& f = c.failures[0];
      if (f.events == 0 && !lines.empty()) f.first_line = lines.front();
      f.events += batch.size();
      f.first_reason = rs.error().to_string();
      say(spdlog::level::err, {}, "statefold-booking: %s", rs.error().to_string().c_str());
      return false;
    }
    c.latency_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    std::string session;
    auto about = [&](std::size_t i) {
      session = printable(batch[i].session, 256);
      return statefold::log_fields{.session = session, .source = label, .line = lines[i]};
    };
    for (std::size_t i = 0; i < rs->size(); ++i) {
      const auto& r = (*rs)[i];
      switch (r.kind) {
        case statefold::outcome::applied:
          ++c.applied;
          if (!r.verdict.empty()) ++c.violations;
          break;
        case statefold::outcome::duplicate: ++c.duplicates; break;
        case statefold::outcome::conflict:
          ++c.conflicts;
          refused_log.report(label + ":" + std::to_string(lines[i]) + ": conflict: event '" +
                                 printable(batch[i].event_id) + "': " + r.reason,
                             about(i));
          break;
        default:
          ++c.handler_errors;
          refused_log.report(label + ":" + std::to_string(lines[i]) + ": refused: " + printable(r.reason, 400), about(i));
      }
      if (ack_log && (r.kind == statefold::outcome::applied || r.kind == statefold::outcome::duplicate))
        std::fprintf(ack_log, "%s\n", printable(batch[i].event_id, 1024).c_str());
    }
    if (ack_log) std::fflush(ack_log);  // after the commit: an acknowledged event is in the store
    c.answered += rs->size();
    batch_from = to.next;
    batch.clear();
    metas.clear();
    lines.clear();
    return true;
  };

  const auto t0 = clock_type::now();
  {
    progress_display bar(c, read_pos, input->total(), o.input.empty() ? "events" : "input");
    input_item item;
    uint64_t item_end = input->position();
    // Where the last whole item ended and the fingerprint there (a read cut by an error or a
    // signal may leave the input's position inside a line). A fingerprint a rerun can check
    // stops before an unterminated last line: a producer may still add its '\n'.
    statefold::source_progress whole{item_end, item_end, input->fingerprint()};
    std::optional<statefold::source_progress> unterminated;
    auto end_here = [&]() -> statefold::source_progress {
      if (unterminated) return {item_end, unterminated->fingerprint_at, unterminated->fingerprint};
      return whole;
    };
    bool ok = true;
    for (;;) {
      if (stop_requested.load()) {
        stopped_because = stop_signal.load() == SIGINT ? "SIGINT" : "SIGTERM";
        break;
      }
      if (!batch.empty() && input->would_block() && !(ok = send(end_here()))) break;
      auto more = input->next(item);
      if (!more) {
        if (stop_requested.load()) continue;  // interrupted: the loop head says why
        say(spdlog::level::err, {}, "statefold-booking: %s", more.error().to_string().c_str());
        exit_code = 1;
        break;
      }
      if (!*more) break;
      if (item.unterminated && !item.ev && !item.blank) {
        say(spdlog::level::warn, {.source = label, .line = item.line},
                     "%s:%" PRIu64 ": the last line has no newline and is not a whole event "
                     "(%s): not consumed; the next run reads it again",
                     label.c_str(), item.line, item.why.c_str());
        break;
      }
      if (item.unterminated) unterminated = {item.position, item.position, input->fingerprint_before_item()};
      if (!item.ev && !item.blank) {
        ++c.malformed;
        malformed_log.report(label + ":" + std::to_string(item.line) + ": malformed event: " + item.why,
                             {.source = label, .line = item.line});
        if (o.strict) {
          // Consumed up to the start of this line: a rerun reads it again.
          ok = send({item.position, item.position, input->fingerprint_before_item()});
          exit_code = 2;
          break;
        }
      }
      item_end = input->position();
      whole = {item_end, item_end, input->fingerprint()};
      if (!item.ev) continue;
      statefold::event_meta meta;
      meta.session = item.ev->session;
      meta.source = statefold::source_position{input->source(), item.position};
      metas.push_back(std::move(meta));
      lines.push_back(item.line);
      batch.push_back(std::move(*item.ev));
      if (batch.size() >= o.store.batch) {
        if (!(ok = send(end_here()))) break;
        read_pos = input->position();
      }
    }
    reading = false;  // /readyz: draining from here on
    // Everything read so far (the input's end, or where a stop or a read error left it) —
    // unless the input is not the one consumed before, or --strict sent up to its line.
    if (!input->verified().is_ok()) exit_code = 1;
    else if (ok && exit_code != 2 && !(batch.empty() && batch_from == item_end)) ok = send(end_here());
    if (!ok) exit_code = 1;
    read_pos = input->position();
    bar.stop();
  }
  reading = false;
  if (metrics) metrics->stop();
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  malformed_log.finish("malformed lines");
  refused_log.finish("refused events");
  if (c.failed) {
    // The failed connection may be unusable (a timeout mid-reply): ask on a fresh one.
    auto fresh = open_store(o.store, false);
    auto at = fresh ? (*fresh)->progress(input->source())
                    : statefold::result<statefold::source_progress>(fresh.error());
    say(spdlog::level::err, {},
                 "statefold-booking: stopped at the first failure; everything acknowledged before it is "
                 "committed to %s. Rerun the same command once the cause is fixed: it resumes at "
                 "position %s of %s",
                 store.name().c_str(), at ? std::to_string(at->next).c_str() : "(unknown: the store is unreachable)",
                 label.c_str());
  }

  uint64_t by_status[4] = {};
  uint64_t bookings = 0;
  auto listed = store.for_each_state([&](std::string_view, const statefold::stored_state& s) {
    state st;
    if (!model::decode_state(s.bytes, st)) return statefold::status::ok();  // counted by export
    ++by_status[static_cast<int>(st.status)];
    ++bookings;
    return statefold::status::ok();
  });

  const uint64_t lines_read = input->items() - items_before;
  std::printf("statefold-booking run: %" PRIu64 " %s in %.2f s (%.0f events/s), state in %s (stateless)\n",
              lines_read, o.input.empty() ? "events" : "lines", secs,
              c.submitted.load() / std::max(secs, 1e-9), store.name().c_str());
  if (!stopped_because.empty())
    std::printf("  stopped by %s: everything read before it is answered and committed; the next run resumes there\n",
                stopped_because.c_str());
  std::printf("  applied          %" PRIu64 "\n", c.applied.load());
  std::printf("  duplicates       %" PRIu64 " (already consumed, or an event ID already processed)\n",
              c.duplicates.load());
  std::printf("  conflicts        %" PRIu64 " (an event ID seen with another body; not applied)\n",
              c.conflicts.load());
  std::printf("  handler errors   %" PRIu64 " (refused by the model's apply; not applied)\n",
              c.handler_errors.load());
  std::printf("  malformed        %" PRIu64 " (lines skipped)\n", c.malformed.load());
  std::printf("  rule violations  %" PRIu64 " (applied events that broke a booking rule: state, not errors)\n",
              c.violations.load());
  if (c.failed)
    std::printf("  NOT ACKNOWLEDGED %" PRIu64 " (see stderr; the rerun resumes before them)\n", c.failed.load());
  std::printf("  retries          %" PRIu64 " batches redone because another consumer changed what they read\n",
              consumer.stats().retries);
  std::printf("  store            %s; processed IDs %s\n", durability.c_str(),
              o.store.processed_ttl_s ? ("expire after " + std::to_string(o.store.processed_ttl_s) + " s").c_str()
                                      : "never expire");
  std::printf("  ack latency      p50 %.2f ms, p99 %.2f ms (per batch of up to %zu events)\n",
              percentile(c.latency_ms, 0.5), percentile(c.latency_ms, 0.99), o.store.batch);
  if (listed.is_ok())
    std::printf("  bookings         %" PRIu64 ": %" PRIu64 " pending, %" PRIu64 " confirmed, %" PRIu64
                " cancelled, %" PRIu64 " never created\n",
                bookings, by_status[1], by_status[2], by_status[3], by_status[0]);
  else
    std::printf("  bookings         unknown: %s\n", listed.to_string().c_str());
  return exit_code;
}

}  // namespace booking
