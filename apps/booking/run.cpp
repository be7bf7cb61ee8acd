#include "run.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "run_common.hpp"
#include "statefold/engine.hpp"
#include "statefold/http/engine_endpoints.hpp"

namespace booking {
namespace {

using booking_engine = statefold::engine<model>;
// Which batches of the input are answered, so that the consumer marks as consumed only a
// prefix whose every event is answered (mark_consumed). A batch covers the input positions
// up to its `end`; `fingerprint` is the input's fingerprint at `fingerprint_at` (== end,
// except at a --strict stop, where end is the start of the malformed line).
class progress_tracker {
 public:
  struct batch {
    statefold::source_progress end;  // next = end position
    bool answered = false;
    bool failed = false;
  };

  uint64_t add(statefold::source_progress end) {
    std::lock_guard lock(mu_);
    batches_.push_back({end});
    ++added_;
    return first_seq_ + batches_.size() - 1;
  }
  void answered(uint64_t seq, bool failed) {
    std::lock_guard lock(mu_);
    auto& b = batches_[seq - first_seq_];  // never popped while unanswered
    b.answered = true;
    b.failed = failed;
    ++answered_;
    cv_.notify_all();
  }
  /// The progress of the longest answered, failure-free prefix (nullopt: nothing new).
  std::optional<statefold::source_progress> consumed() {
    std::lock_guard lock(mu_);
    std::optional<statefold::source_progress> out;
    while (!batches_.empty() && batches_.front().answered && !batches_.front().failed) {
      out = batches_.front().end;
      batches_.pop_front();
      ++first_seq_;
    }
    return out;
  }
  void wait_all() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return answered_ == added_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<batch> batches_;
  uint64_t first_seq_ = 0;  // sequence number of batches_.front()
  uint64_t added_ = 0;
  uint64_t answered_ = 0;
};

}  // namespace

int run(const run_options& o) {
  // Everything that can be checked is checked before the data directory is touched.
  statefold::durability mode;
  if (o.durability == "sync") mode = statefold::durability::sync;
  else if (o.durability == "interval") mode = statefold::durability::interval;
  else if (o.durability == "none") mode = statefold::durability::none;
  else {
    say(spdlog::level::err, {}, "statefold-booking: --durability must be sync, interval or none");
    return 2;
  }
  if (o.dedup_window == uint64_t{0} && !o.allow_no_dedup) {
    say(spdlog::level::err, {},
                 "statefold-booking: --dedup-window 0 turns deduplication by event ID off: an "
                 "event redelivered without a source position would be applied twice. Add "
                 "--unsafe-no-dedup if that is really what you want");
    return 2;
  }
  install_stop_handlers();
  run_io io;
  if (int rc = open_run_io(o, io); rc != 0) return rc;
  std::unique_ptr<event_input>& input = io.input;
  FILE* const ack_log = io.ack_log;

  statefold::engine_options eo;
  eo.dir = o.data;
  eo.mode = mode;
  eo.dedup_window = o.dedup_window;
  eo.allow_no_dedup = o.allow_no_dedup;
  eo.logger = engine_logger();
  auto m = statefold::read_manifest(statefold::posix_file_system(), o.data);
  eo.partitions = o.partitions.value_or(m ? m->partitions : 4);
  eo.lanes = o.lanes.value_or(0);  // 0: the directory's own, 1 for a new one
  auto opened = booking_engine::open(std::move(eo));
  if (!opened) {
    say(spdlog::level::err, {}, "statefold-booking: %s", opened.error().to_string().c_str());
    return 1;
  }
  auto& e = *opened.value();

  // Resume where this source's durable part ends, in every partition.
  auto from = e.resume_point(input->source());
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
  else if (m)  // an existing directory that has consumed nothing of this source
    say(spdlog::level::info, {},
                 "source '%s' is new to %s: nothing of it is consumed yet. (An input consumed "
                 "before under another name — a moved or copied file — would be applied again: "
                 "give it its old name with --source.)",
                 printable(input->source()).c_str(), o.data.c_str());
  const uint64_t items_before = input->items();

  counters c;
  std::atomic<bool> reading{true};  // /readyz: accepting events until the input ends
  std::unique_ptr<statefold::http::server> metrics;
  if (!o.metrics_listen.empty()) {
    statefold::http::engine_metrics_options mo;
    mo.per_partition = o.metrics_per_partition;
    mo.extra = [&c](statefold::http::metrics_text& m) { booking_metrics(m, c); };
    mo.accepting = [&reading] { return reading.load(); };
    statefold::http::server_options so;
    so.listen = o.metrics_listen;
    auto started = statefold::http::server::start(so, statefold::http::engine_routes(e, mo));
    if (!started) {
      say(spdlog::level::err, {}, "statefold-booking: --metrics-listen: %s", started.error().to_string().c_str());
      statefold::ignore(e.close());
      return 1;
    }
    metrics = std::move(started).value();
    say(spdlog::level::info, {}, "metrics: http://%s/metrics (and /healthz, /readyz)", metrics->address().c_str());
  }
  problem_log malformed_log(20), refused_log(20);
  progress_tracker tracker;
  std::atomic<uint64_t> read_pos{input->position()};
  std::atomic<bool> failed_flag{false};
  const std::string label = printable(input->label());

  std::vector<event> batch;
  std::vector<statefold::event_meta> metas;
  std::vector<uint64_t> lines;
  auto send = [&](statefold::source_progress end) {
    const uint64_t seq = tracker.add(end);
    if (batch.empty()) {
      tracker.answered(seq, false);
      return;
    }
    std::vector<std::string> ids;  // printable, for the ack log and the messages
    ids.reserve(batch.size());
    for (const auto& ev : batch) ids.push_back(printable(ev.event_id, ack_log ? 1024 : 120));
    std::vector<std::string> sessions;  // for the JSON log's lines about an event
    if (logging_json())
      for (const auto& ev : batch) sessions.push_back(printable(ev.session, 256));
    const auto t0 = clock_type::now();
    c.submitted += batch.size();
    auto done = [&, seq, t0, ids = std::move(ids), lines = std::move(lines), sessions = std::move(sessions)](
                    std::vector<statefold::submit_result>& rs) {
      const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
      bool failed = false;
      {
        std::lock_guard lock(c.mu);
        c.latency_ms.push_back(ms);
        for (std::size_t i = 0; i < rs.size(); ++i) {
          const auto& r = rs[i];
          const statefold::log_fields about{.partition = r.partition,
                                            .session = i < sessions.size() ? sessions[i] : std::string_view(),
                                            .source = label,
                                            .line = lines[i]};
          switch (r.kind) {
            case statefold::outcome::applied:
              ++c.applied;
              if (!r.verdict.empty()) ++c.violations;
              break;
            case statefold::outcome::duplicate: ++c.duplicates; break;
            case statefold::outcome::conflict:
              ++c.conflicts;
              refused_log.report(label + ":" + std::to_string(lines[i]) + ": conflict: event '" +
                                 ids[i] + "': " + r.reason, about);
              break;
            case statefold::outcome::rejected:
              ++c.handler_errors;
              refused_log.report(label + ":" + std::to_string(lines[i]) + ": refused: " + printable(r.reason, 400), about);
              break;
            default: {
              ++c.failed;
              failed = true;
              auto& f = c.failures[r.partition];
              if (f.events++ == 0) {
                f.first_line = lines[i];
                f.first_reason = r.reason;
                if (i < sessions.size()) f.first_session = sessions[i];
              }
            }
          }
          if (ack_log && (r.kind == statefold::outcome::applied || r.kind == statefold::outcome::duplicate))
            std::fprintf(ack_log, "%s\n", ids[i].c_str());
        }
        if (ack_log) std::fflush(ack_log);  // flushed per batch, after the acknowledgement
      }
      if (failed) failed_flag = true;
      c.answered += rs.size();
      tracker.answered(seq, failed);
    };
    auto st = e.submit_batch(std::move(batch), std::move(done), std::move(metas));
    batch.clear();
    metas.clear();
    lines.clear();
    if (!st.is_ok()) {
      say(spdlog::level::err, {}, "statefold-booking: %s", st.to_string().c_str());
      failed_flag = true;
    }
  };
  auto mark = [&] {
    if (auto p = tracker.consumed()) statefold::ignore(e.mark_consumed(input->source(), *p));
  };

  const auto t0 = clock_type::now();
  int exit_code = 0;
  std::string stopped_because;
  {
    progress_display bar(c, read_pos, input->total(), o.input.empty() ? "events" : "input");
    auto last_mark = clock_type::now();
    input_item item;
    // Where the last whole item ended, and the last fingerprint taken (at a batch's end): a
    // read cut by an error or a signal may leave the input's position inside a line.
    uint64_t item_end = input->position();
    statefold::source_progress snapshot{item_end, item_end, input->fingerprint()};
    bool announced = false;
    // The last item taken was the input's last line, with no newline (yet): a fingerprint
    // that a rerun can check must stop before it, since a producer may still add the '\n'.
    std::optional<statefold::source_progress> unterminated;
    // How far the input is read, with the newest fingerprint that can be checked later.
    auto end_here = [&]() -> statefold::source_progress {
      if (unterminated) return {item_end, unterminated->fingerprint_at, unterminated->fingerprint};
      if (input->position() == item_end) return {item_end, item_end, input->fingerprint()};
      return {item_end, snapshot.fingerprint_at, snapshot.fingerprint};
    };
    // Sends what is read. The first time, it announces the fingerprint to every partition
    // before the events: a partition that has an event of this run has it too, so a rerun
    // can check the input even if this run dies before its first marker.
    auto send_end = [&](const statefold::source_progress& end) {
      if (!announced && !batch.empty()) {
        statefold::ignore(e.mark_consumed(input->source(), {0, end.fingerprint_at, end.fingerprint}));
        announced = true;
      }
      send(end);
    };
    // Sends a batch once nothing is left to verify.
    auto flush = [&](bool at_end_of_batch) {
      if (input->awaiting_check()) return;
      const statefold::source_progress end = end_here();
      if (at_end_of_batch) snapshot = end;
      send_end(end);
    };
    bool last_line_held = false;  // an unterminated last line that does not parse: not consumed
    for (;;) {
      if (stop_requested.load()) {
        stopped_because = stop_signal.load() == SIGINT ? "SIGINT" : "SIGTERM";
        break;
      }
      if (failed_flag.load()) break;
      if (!batch.empty() && input->would_block()) flush(false);  // a trickle: send what is here
      auto more = input->next(item);
      if (!more) {
        if (stop_requested.load()) continue;  // interrupted: the loop head says why
        say(spdlog::level::err, {}, "statefold-booking: %s", more.error().to_string().c_str());
        exit_code = 1;
        break;
      }
      if (!*more) break;
      if (item.unterminated && !item.ev && !item.blank) {
        // Half a line at the end: a producer may still be writing it. Left for the next run.
        say(spdlog::level::warn, {.source = label, .line = item.line},
                     "%s:%" PRIu64 ": the last line has no newline and is not a whole event "
                     "(%s): not consumed; the next run reads it again",
                     label.c_str(), item.line, item.why.c_str());
        last_line_held = true;
        break;
      }
      item_end = input->position();
      if (item.unterminated) unterminated = {item.position, item.position, input->fingerprint_before_item()};
      if (item.blank) continue;
      if (!item.ev) {
        ++c.malformed;
        malformed_log.report(label + ":" + std::to_string(item.line) + ": malformed event: " + item.why,
                             {.source = label, .line = item.line});
        if (o.strict) {
          // Consumed up to the start of this line: a rerun reads it again.
          if (!input->awaiting_check())
            send_end({item.position, item.position, input->fingerprint_before_item()});
          exit_code = 2;
          break;
        }
        continue;
      }
      statefold::event_meta meta;
      meta.session = item.ev->session;
      meta.source = statefold::source_position{input->source(), item.position};
      metas.push_back(std::move(meta));
      lines.push_back(item.line);
      batch.push_back(std::move(*item.ev));
      if (batch.size() >= 256 && !input->awaiting_check()) {
        flush(true);
        read_pos = input->position();
        if (clock_type::now() - last_mark >= std::chrono::seconds(1)) {
          mark();
          last_mark = clock_type::now();
        }
      }
    }
    reading = false;  // /readyz: draining from here on
    if (!input->verified().is_ok()) {
      // Another input under this source's name: nothing read since the resume point is sent.
      exit_code = 1;
      batch.clear();
    } else if (exit_code != 2) {
      // Everything read so far (the input's end, or where a stop, a failure or a read error
      // left it) — except after --strict's malformed line, sent above. The fingerprint is
      // taken only where the input's position is a whole item's end.
      send_end(last_line_held ? statefold::source_progress{item.position, item.position,
                                                           input->fingerprint_before_item()}
                              : end_here());
    }
    read_pos = input->position();
    tracker.wait_all();
    mark();
    bar.stop();
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  malformed_log.finish("malformed lines");
  refused_log.finish("refused events");

  // One line per partition that failed, and where the rerun resumes.
  for (const auto& [p, f] : c.failures)
    say(spdlog::level::err, {.partition = p, .session = f.first_session, .source = label, .line = f.first_line},
                 "statefold-booking: partition %u: %" PRIu64 " events not acknowledged, the first at "
                 "%s:%" PRIu64 ": %s",
                 p, f.events, label.c_str(), f.first_line, f.first_reason.c_str());
  if (!c.failures.empty()) {
    if (auto at = e.resume_point(input->source()); at)
      say(spdlog::level::err, {.source = label, .position = at->next},
                   "statefold-booking: stopped reading at the first failure; everything before it "
                   "is durable. Rerun the same command once the cause is fixed: it resumes at "
                   "position %" PRIu64 " of %s",
                   at->next, label.c_str());
  }

  // What the run built: bookings by status, from the live state.
  uint64_t by_status[4] = {};
  const auto all = e.export_all();
  if (all) {
    for (const auto& [id, s] : *all) ++by_status[static_cast<int>(s.status)];
  } else {
    say(spdlog::level::err, {}, "statefold-booking: %s", all.error().to_string().c_str());
    exit_code = exit_code ? exit_code : 1;
  }
  uint64_t window = 0, evictions = 0;
  std::vector<std::string> recoveries;
  // One line per partition up to 8; beyond, one line for all (the log has each).
  uint64_t replayed = 0, damaged = 0;
  double slowest = 0;
  const auto stats = e.stats();
  for (const auto& s : stats) {
    if (stats.size() <= 8) recoveries.push_back(s.recovery.summary());
    replayed += s.recovery.events_replayed;
    damaged += s.recovery.bytes_cut > 0 || !s.recovery.damage.empty();
    slowest = std::max(slowest, s.recovery.seconds);
    window = s.core.dedup_capacity;
    evictions += s.core.dedup_evictions;
  }
  for (const auto& l : e.lane_stats()) recoveries.push_back(l.recovery);
  if (stats.size() > 8)
    recoveries.push_back(std::to_string(stats.size()) + " partitions recovered, the slowest in " +
                         std::to_string(slowest).substr(0, 5) + " s: " + std::to_string(replayed) +
                         " events replayed, " + std::to_string(damaged) +
                         " with damage cut (see the log above for each)");
  reading = false;
  if (metrics) metrics->stop();  // before close: /metrics reads the running engine
  say(spdlog::level::info, {}, "closing: syncing and checkpointing every partition ...");
  if (auto st = e.close(); !st.is_ok()) {
    say(spdlog::level::err, {}, "statefold-booking: close: %s", st.to_string().c_str());
    exit_code = exit_code ? exit_code : 1;
  }

  const uint64_t lines_read = input->items() - items_before;
  std::printf("statefold-booking run: %" PRIu64 " %s in %.2f s (%.0f events/s), data in %s\n",
              lines_read, o.input.empty() ? "events" : "lines", secs,
              c.submitted.load() / std::max(secs, 1e-9), o.data.c_str());
  if (!stopped_because.empty())
    std::printf("  stopped by %s: everything read before it is answered and durable; the next run resumes there\n",
                stopped_because.c_str());
  std::printf("  applied          %" PRIu64 "\n", c.applied.load());
  std::printf("  duplicates       %" PRIu64 " (already consumed, or an event ID seen within the dedup window)\n",
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
  std::printf("  dedup window     %" PRIu64 " event IDs per partition, %" PRIu64 " evicted so far\n",
              window, evictions);
  std::printf("  ack latency      p50 %.2f ms, p99 %.2f ms (per batch of up to 256 events)\n",
              percentile(c.latency_ms, 0.5), percentile(c.latency_ms, 0.99));
  if (all)
    std::printf("  bookings         %zu: %" PRIu64 " pending, %" PRIu64 " confirmed, %" PRIu64
                " cancelled, %" PRIu64 " never created\n",
                all->size(), by_status[1], by_status[2], by_status[3], by_status[0]);
  else
    std::printf("  bookings         unknown: the export failed (see stderr)\n");
  for (const auto& r : recoveries) std::printf("  recovery: %s\n", r.c_str());
  if (c.failed && exit_code == 0) exit_code = 1;
  return exit_code;
}

}  // namespace booking
