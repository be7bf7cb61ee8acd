#pragma once

// The partition actor (its lane's flusher is in flusher_actor.hpp, the payloads they pass in
// work.hpp). Follow one event here:
//
//   engine::submit ──submit_atom──▶ partition actor ─ apply (dedup, Model::apply, frame)
//        ▲                              │  take_flush() whenever no flush is in flight
//        │                              ▼
//        │                   lane flusher (detached: one thread per journal lane)
//        │                     collects the chunks of every partition of the lane that
//        │                     arrive before its own commit_atom, then one write + one
//        │                     fdatasync for all of them; checkpoint files in slices
//        │                      ◀──flushed─┘
//        └── completion ◀── partition actor: every batch whose LSNs are now durable
//
// Group commit falls out of the loops: while one flush runs, each partition applies and
// buffers new batches, and all of them go into its next flush the moment the running one
// returns; the lane flusher, handling its mailbox in order, puts every flush that came in
// before its commit message into one round. No acknowledgement precedes the sync that covers
// it, and nothing waits for an idle mailbox.

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "statefold/detail/messages.hpp"
#include "statefold/detail/source_fences.hpp"
#include "statefold/detail/work.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/log.hpp"
#include "statefold/partition_state.hpp"

namespace statefold::detail {

// -- partition actor -----------------------------------------------------------------------------

/// Where a partition actor is in its life. Events are applied while running (and while
/// closing: what was submitted before the close); the other phases say what it waits for.
enum class partition_phase {
  running,
  /// A handler threw: what was applied before it is made durable, then the state is reloaded
  /// from disk (finish_rebuild); events, marks and queries wait, in order, until then.
  rebuilding,
  /// engine::close or release: drains (flush, answers, the checkpoint asked for), then seals
  /// if asked, answers and stops (maybe_close). A close that comes during a rebuild waits for
  /// it (partition_actor_state::close).
  closing,
  closed,  ///< maybe_close answered; the actor quits
  failed,  ///< the lane or a reload failed: everyone answered failed; the actor quits
};

/// A close asked for (close_work): who to answer, and whether to seal (release).
struct close_request {
  std::function<void(status)> on_closed;
  bool seal = false;
};

template <class Model>
struct partition_actor_state {
  static inline const char* name = "statefold.partition";

  std::shared_ptr<partition_state<Model>> ps;
  caf::actor flusher;  // the lane's, shared with the other partitions of the lane
  partition_context ctx;
  // False once this actor is gone (set by the destructor): the flusher then abandons the
  // checkpoint writes it has of this partition.
  std::shared_ptr<std::atomic<bool>> alive = std::make_shared<std::atomic<bool>>(true);
  ~partition_actor_state() { alive->store(false); }
  std::deque<std::shared_ptr<submit_work<Model>>> waiting;   // applied, awaiting their sync
  std::deque<std::shared_ptr<submit_work<Model>>> stash;     // held back during a rebuild
  std::deque<std::shared_ptr<query_work<Model>>> held_queries;  // likewise: no half-changed reads
  std::deque<std::shared_ptr<mark_work>> held_marks;            // likewise: after the stashed events
  // engine::checkpoint() callers: `checkpoint_waiters` wait for a checkpoint that begins after
  // their request; `checkpoint_covered` for the one in progress, which began after theirs.
  std::vector<std::function<void(status)>> checkpoint_waiters;
  std::vector<std::function<void(status)>> checkpoint_covered;
  partition_phase phase = partition_phase::running;
  std::optional<close_request> close;  // set by close_atom; the phase says when it is acted on
  uint64_t taken_lsn = 0;             // highest LSN handed to the flusher
  uint64_t events_since_checkpoint = 0;
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();
  uint64_t syncs = 0;
  latency_histogram persist_latency;     // write + fdatasync, per group commit
  latency_histogram ack_latency;         // taken by the partition -> answered, per event
  latency_histogram checkpoint_latency;  // image handed to the flusher -> durable
  uint64_t checkpoint_bytes = 0;         // the last checkpoint written
  bool flushing = false;
  bool checkpoint_wanted = false;
  bool lane_checkpoint = false;  // the wanted checkpoint is for the lane's size limit
  std::chrono::steady_clock::time_point lane_checked{};
  bool checkpoint_stepping = false;                 // a ckpt_step message is on its way
  bool checkpoint_writing = false;                  // the flusher is writing one
  std::optional<checkpoint_job> checkpoint_ready;   // built, for the next flush to write
  bool tick_due = false;
};

template <class Model>
using partition_actor_type = caf::stateful_actor<partition_actor_state<Model>>;

template <class Model>
class partition_logic {
 public:
  using self_ptr = partition_actor_type<Model>*;

  static void on_submit(self_ptr self, const std::shared_ptr<submit_work<Model>>& w) {
    auto& st = self->state;
    w->accepted = std::chrono::steady_clock::now();
    if (st.phase == partition_phase::rebuilding || !st.stash.empty()) {
      st.stash.push_back(w);
      return;
    }
    apply_work(self, w);
    // The lane failed under another partition: this one's records cannot be made durable.
    if (st.ps->failed()) {
      fail(self, st.ps->failure());
      return;
    }
    maybe_flush(self);
  }

  // Applies events from w->next on; stops early (and stashes the rest) when a handler throws.
  static void apply_work(self_ptr self, const std::shared_ptr<submit_work<Model>>& w) {
    auto& st = self->state;
    auto& ps = *st.ps;
    auto& results = w->done->results;
    for (; w->next < w->events.size(); ++w->next) {
      const std::size_t i = w->next;
      submit_result& out = results[i];
      if (!w->metas.empty() && w->metas[i].source) {
        const source_position& pos = *w->metas[i].source;
        if (auto fence = st.ctx.fences->admit(pos.source, pos.offset)) {
          out.kind = outcome::failed;
          out.reason = "partition " + std::to_string(st.ctx.partition) + " refuses position " +
                       std::to_string(pos.offset) + " of source '" + pos.source +
                       "': its event at position " + std::to_string(*fence) +
                       " was not applied (the partition failed or was busy). Resubmit from "
                       "there, or from the source's durable position (engine::resume_point)";
          continue;
        }
      }
      apply_result r = w->metas.empty() ? ps.apply(w->events[i]) : ps.apply(w->events[i], w->metas[i]);
      out.kind = r.kind;
      out.lsn = r.lsn;
      out.reason = std::move(r.reason);
      out.verdict = r.verdict;
      if (r.kind == outcome::applied) {
        w->wait_lsn = std::max(w->wait_lsn, r.lsn);
        ++st.events_since_checkpoint;
      } else if (r.kind == outcome::duplicate) {
        // "duplicate" promises the original is durable: wait for everything applied so far.
        w->wait_lsn = std::max(w->wait_lsn, ps.next_lsn() - 1);
      } else if (ps.needs_rebuild()) {
        ++w->next;
        st.phase = partition_phase::rebuilding;
        st.stash.push_front(w);
        return;
      }
    }
    if (w->wait_lsn > ps.durable_lsn()) {
      st.waiting.push_back(w);
    } else {
      st.ack_latency.observe(std::chrono::steady_clock::now() - w->accepted, w->events.size());
      w->done->finish();
    }
  }

  static void maybe_flush(self_ptr self) {
    auto& st = self->state;
    if (st.flushing || st.phase == partition_phase::failed || st.phase == partition_phase::closed) return;
    auto& ps = *st.ps;
    const auto& o = *st.ctx.options;
    const bool pending = ps.next_lsn() - 1 > st.taken_lsn;
    const auto now = std::chrono::steady_clock::now();
    const bool checkpoint_due =
        st.phase != partition_phase::rebuilding && !ps.checkpoint_in_progress() && !st.checkpoint_ready &&
        !st.checkpoint_writing &&
        (st.checkpoint_wanted ||
         (o.checkpoint_every_events > 0 && st.events_since_checkpoint >= o.checkpoint_every_events) ||
         (o.checkpoint_every.count() > 0 && st.events_since_checkpoint > 0 &&
          now - st.last_checkpoint >= o.checkpoint_every));
    if (checkpoint_due) start_checkpoint(self, now);
    const bool checkpoint_ready = st.checkpoint_ready.has_value();
    if (!pending && !checkpoint_ready) {
      // The reload reads the checkpoint directory: not while the flusher writes into it.
      if (st.phase == partition_phase::rebuilding) {
        if (!st.checkpoint_writing) finish_rebuild(self);
      } else if (st.phase == partition_phase::closing) {
        maybe_close(self);
      }
      return;
    }
    // Interval durability syncs on the timer; a checkpoint, a rebuild or a close goes now.
    if (o.mode == durability::interval && !checkpoint_ready && !st.tick_due && st.phase == partition_phase::running)
      return;
    st.tick_due = false;
    auto job = std::make_shared<flush_work<Model>>();
    job->ps = st.ps;
    job->batch = ps.take_flush();
    job->mode = o.mode == durability::none ? persist_mode::write_only : persist_mode::fdatasync;
    job->ticket = {st.ctx.lane_work, st.alive};
    job->ticket.take();
    st.taken_lsn = ps.next_lsn() - 1;
    // This flush covers the checkpoint's LSN (taken when it began, before everything taken
    // now), so the flusher may write it right after the sync.
    job->checkpoint = std::move(st.checkpoint_ready);
    st.checkpoint_ready.reset();
    if (job->checkpoint) st.checkpoint_writing = true;
    st.flushing = true;
    self->request(st.flusher, caf::infinite, persist_atom::value, work_ptr(job))
        .then([self](flushed_atom, work_ptr w) { on_flushed(self, work_cast<flush_work<Model>>(w)); },
              [self](caf::error& err) {
                fail(self, status{errc::failed, "flusher of partition " +
                                                    std::to_string(self->state.ctx.partition) +
                                                    " is gone: " + caf::to_string(err)});
              });
  }

  // Entities captured per step of an incremental checkpoint: about a millisecond of work, so
  // that events queued behind a step wait at most that long (partition_state::begin_checkpoint).
  static constexpr std::size_t checkpoint_step_entities = 8192;

  static void start_checkpoint(self_ptr self, std::chrono::steady_clock::time_point now) {
    auto& st = self->state;
    st.events_since_checkpoint = 0;
    st.last_checkpoint = now;
    st.checkpoint_wanted = false;
    st.checkpoint_covered = std::move(st.checkpoint_waiters);
    st.checkpoint_waiters.clear();
    const bool for_lane = std::exchange(st.lane_checkpoint, false);
    if (for_lane)
      log_with(*st.ctx.log, spdlog::level::info, {.partition = st.ctx.partition},
               "partition {}: checkpointing for its journal lane, which holds {} bytes (over "
               "max_lane_bytes {}) and keeps its oldest segment for this partition",
               st.ctx.partition, st.ps->lane().bytes_held(), st.ctx.options->max_lane_bytes);
    if (!st.ps->begin_checkpoint(for_lane)) {
      answer_covered(self, status::ok());  // nothing new since the last one
      return;
    }
    continue_checkpoint(self);
  }

  // One step; the next goes through the mailbox, behind the events that arrived meanwhile.
  static void continue_checkpoint(self_ptr self) {
    auto& st = self->state;
    auto r = st.ps->continue_checkpoint(checkpoint_step_entities);
    if (!r) {
      log_with(*st.ctx.log, spdlog::level::warn, {.partition = st.ctx.partition},
               "partition {}: checkpoint not written: {}", st.ctx.partition, r.error().to_string());
      st.lane_checked = std::chrono::steady_clock::now() + std::chrono::seconds(30);  // as below
      answer_covered(self, r.error());
      return;
    }
    if (*r) {
      st.checkpoint_ready = std::move(**r);
      maybe_flush(self);
      return;
    }
    if (!st.checkpoint_stepping) {
      st.checkpoint_stepping = true;
      self->send(self, ckpt_step_atom::value);
    }
  }

  static void on_checkpoint_step(self_ptr self) {
    auto& st = self->state;
    st.checkpoint_stepping = false;
    // A rebuild in between abandons the checkpoint (the state was reloaded): start again.
    if (!st.ps->checkpoint_in_progress()) {
      if (!st.checkpoint_ready && !st.checkpoint_covered.empty()) {
        for (auto& f : st.checkpoint_covered) st.checkpoint_waiters.push_back(std::move(f));
        st.checkpoint_covered.clear();
        st.checkpoint_wanted = true;
      }
      maybe_flush(self);
      return;
    }
    continue_checkpoint(self);
    maybe_close(self);
  }

  static void on_flushed(self_ptr self, const std::shared_ptr<flush_work<Model>>& job) {
    auto& st = self->state;
    st.flushing = false;
    if (!job->st.is_ok()) {
      fail(self, job->st);
      return;
    }
    ++st.syncs;
    st.persist_latency.observe(job->persist_seconds);
    const auto now = std::chrono::steady_clock::now();
    while (!st.waiting.empty() && st.waiting.front()->wait_lsn <= job->durable) {
      auto& w = *st.waiting.front();
      st.ack_latency.observe(now - w.accepted, w.events.size());
      w.done->finish();
      st.waiting.pop_front();
    }
    maybe_flush(self);
  }

  static void on_checkpoint_written(self_ptr self, const std::shared_ptr<checkpoint_write_work<Model>>& cw) {
    auto& st = self->state;
    st.checkpoint_writing = false;
    if (cw->st.is_ok()) {
      st.ps->checkpoint_done(cw->lsn);
      st.checkpoint_latency.observe(std::chrono::steady_clock::now() - cw->started);
      st.checkpoint_bytes = cw->bytes;
    } else {
      // The old checkpoints and every segment are still there: keep going, say so.
      log_with(*st.ctx.log, spdlog::level::warn, {.partition = st.ctx.partition, .lsn = cw->lsn},
               "partition {}: checkpoint at LSN {} failed: {}", st.ctx.partition, cw->lsn, cw->st.to_string());
      // Not again for the lane's size limit at every tick: a full disk would have the whole
      // image rebuilt every second. Half a minute, then the lane may ask again.
      st.lane_checked = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    }
    answer_covered(self, cw->st);
    maybe_flush(self);
    maybe_close(self);
  }

  static void finish_rebuild(self_ptr self) {
    auto& st = self->state;
    // Everything applied before the throwing event is durable now: reload from disk. This
    // reads on the actor's thread; it happens only after a handler threw.
    if (status s = st.ps->rebuild_from_disk(); !s.is_ok()) {
      fail(self, s);
      return;
    }
    st.phase = st.close ? partition_phase::closing : partition_phase::running;
    while (!st.held_queries.empty()) {
      answer(self, st.held_queries.front());
      st.held_queries.pop_front();
    }
    while (!st.stash.empty() && st.phase != partition_phase::rebuilding) {
      auto w = st.stash.front();
      st.stash.pop_front();
      apply_work(self, w);
    }
    while (!st.held_marks.empty() && st.phase != partition_phase::rebuilding && st.stash.empty()) {
      on_mark(self, *st.held_marks.front());
      st.held_marks.pop_front();
    }
    maybe_flush(self);
  }

  static void answer_covered(self_ptr self, const status& s) {
    auto waiters = std::move(self->state.checkpoint_covered);
    self->state.checkpoint_covered.clear();
    for (auto& f : waiters) f(s);
  }

  static void answer_checkpoint_waiters(self_ptr self, const status& s) {
    answer_covered(self, s);
    auto waiters = std::move(self->state.checkpoint_waiters);
    self->state.checkpoint_waiters.clear();
    for (auto& f : waiters) f(s);
  }

  static void maybe_close(self_ptr self) {
    auto& st = self->state;
    if (st.phase != partition_phase::closing || st.flushing || !st.waiting.empty() || !st.stash.empty() ||
        st.checkpoint_wanted || st.ps->checkpoint_in_progress() || st.checkpoint_ready || st.checkpoint_writing)
      return;
    // Once: a handler may get here twice (maybe_flush, then the close handler itself), and a
    // second seal would write the seal file again while the releasing thread goes on.
    st.phase = partition_phase::closed;
    // Sealing writes one small file and fsyncs (about a millisecond, on this worker thread):
    // once per release, not per event.
    const status s = st.close->seal ? st.ps->seal() : status::ok();
    if (!s.is_ok())
      log_with(*st.ctx.log, spdlog::level::err, {.partition = st.ctx.partition},
               "partition {}: release could not seal it: {}", st.ctx.partition, s.to_string());
    if (auto answer = std::exchange(st.close->on_closed, nullptr)) answer(s);
    self->quit();
  }

  /// The log failed: nothing further is acknowledged; answer everyone, stop, let the
  /// supervisor recover the partition from disk.
  static void fail(self_ptr self, const status& s) {
    auto& st = self->state;
    if (st.phase == partition_phase::failed) return;
    st.phase = partition_phase::failed;
    log_with(*st.ctx.log, spdlog::level::err, {.partition = st.ctx.partition, .lsn = st.ps ? std::optional<uint64_t>(st.ps->durable_lsn()) : std::nullopt},
             "partition {} failed: {}; acknowledging nothing more, restarting from disk", st.ctx.partition,
             s.to_string());
    const std::string why = "partition " + std::to_string(st.ctx.partition) + " failed: " + s.to_string();
    for (auto& w : st.waiting) w->done->fail_pending(why);
    for (auto& w : st.stash) w->done->fail_pending(why);
    st.waiting.clear();
    st.stash.clear();
    answer_checkpoint_waiters(self, s);
    if (st.close && st.close->on_closed) std::exchange(st.close->on_closed, nullptr)(s);
    self->quit(make_error(actor_errc::partition_failed));
  }

  static void answer(self_ptr self, const std::shared_ptr<query_work<Model>>& q) {
    auto& st = self->state;
    switch (q->kind) {
      case query_work<Model>::get: {
        const auto* s = st.ps->find(q->key);
        q->on_get(s ? std::optional<typename Model::state>(*s) : std::nullopt);
        break;
      }
      case query_work<Model>::export_all: {
        std::vector<std::pair<std::string, typename Model::state>> all;
        st.ps->for_each([&](std::string_view k, const typename Model::state& s) {
          all.emplace_back(std::string(k), s);
        });
        q->on_export(std::move(all));
        break;
      }
      case query_work<Model>::stats:
        q->on_stats(stats(self));
        break;
      case query_work<Model>::checkpoint:
        st.checkpoint_waiters.push_back(std::move(q->on_checkpoint));
        st.checkpoint_wanted = true;
        maybe_flush(self);
        break;
      case query_work<Model>::sources:
        q->on_sources(st.ps->committed_sources());
        break;
    }
  }

  static void on_mark(self_ptr self, const mark_work& m) {
    auto& st = self->state;
    // Never past a fence: the consumer may not declare consumed what this partition lost.
    if (auto fence = st.ctx.fences->fence_of(m.source); fence && m.progress.next > *fence) {
      log_with(*st.ctx.log, spdlog::level::warn,
               {.partition = st.ctx.partition, .source = m.source, .position = m.progress.next},
               "partition {}: ignored a marker of source '{}' at {}: position {} of it was not applied here",
               st.ctx.partition, m.source, m.progress.next, *fence);
      return;
    }
    if (auto r = st.ps->mark_consumed(m.source, m.progress); !r) {
      log_with(*st.ctx.log, spdlog::level::warn,
               {.partition = st.ctx.partition, .source = m.source, .position = m.progress.next},
               "partition {}: marker of source '{}' not logged: {}", st.ctx.partition, m.source,
               r.error().to_string());
      return;
    }
    maybe_flush(self);
  }

  static engine_partition_stats stats(self_ptr self) {
    auto& st = self->state;
    engine_partition_stats s;
    s.partition = st.ctx.partition;
    s.core = st.ps->stats();
    s.in_flight = static_cast<uint64_t>(std::max<int64_t>(0, st.ctx.flight->n.load()));
    s.waiting_for_sync = st.waiting.size();
    s.syncs = st.syncs;
    s.persist_latency = st.persist_latency;
    s.ack_latency = st.ack_latency;
    s.checkpoint_latency = st.checkpoint_latency;
    s.checkpoint_bytes = st.checkpoint_bytes;
    s.restarts = st.ctx.restarts->load();
    s.failure = st.ps->failure().is_ok() ? std::string() : st.ps->failure().to_string();
    s.recovery = st.ps->recovery();
    s.committed_sources = st.ps->committed_sources();
    return s;
  }
};

template <class Model>
caf::behavior partition_actor(partition_actor_type<Model>* self,
                              std::shared_ptr<partition_state<Model>> ps, caf::actor flusher,
                              partition_context ctx) {
  using logic = partition_logic<Model>;
  auto& st = self->state;
  st.ps = std::move(ps);
  st.flusher = std::move(flusher);
  st.ctx = ctx;
  st.taken_lsn = st.ps->next_lsn() - 1;
  const auto& o = *ctx.options;
  const auto period = o.mode == durability::interval
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(o.sync_interval)
                          : std::chrono::milliseconds(1000);
  self->delayed_send(self, period, tick_atom::value);
  return {
      [self](submit_atom, work_ptr w) { logic::on_submit(self, work_cast<submit_work<Model>>(w)); },
      [self](mark_atom, work_ptr w) {
        // Behind a rebuild's stash, like the events it follows.
        auto m = work_cast<mark_work>(w);
        if (self->state.phase == partition_phase::rebuilding || !self->state.stash.empty())
          self->state.held_marks.push_back(std::move(m));
        else logic::on_mark(self, *m);
      },
      [self](ckpt_step_atom) { logic::on_checkpoint_step(self); },
      [self](ckpt_done_atom, work_ptr w) {
        logic::on_checkpoint_written(self, work_cast<checkpoint_write_work<Model>>(w));
      },
      [self, period](tick_atom) {
        auto& st = self->state;
        st.tick_due = true;
        // About once a second: is this partition what keeps its lane over its size limit?
        const auto now = std::chrono::steady_clock::now();
        if (now - st.lane_checked >= std::chrono::seconds(1)) {
          st.lane_checked = now;
          if (st.phase == partition_phase::running && st.ps->lane_wants_checkpoint()) {
            st.lane_checkpoint = true;
            st.checkpoint_wanted = true;
          }
        }
        logic::maybe_flush(self);
        self->delayed_send(self, period, tick_atom::value);
      },
      [self](query_atom, work_ptr w) {
        auto q = work_cast<query_work<Model>>(w);
        // While a throwing handler's half-changed state awaits its reload, reads wait too.
        if (self->state.phase == partition_phase::rebuilding) self->state.held_queries.push_back(std::move(q));
        else logic::answer(self, q);
      },
      [self](close_atom, work_ptr w) {
        auto& st = self->state;
        auto cw = work_cast<close_work>(w);
        st.close = close_request{cw->on_closed, cw->seal};
        if (st.phase == partition_phase::running) st.phase = partition_phase::closing;
        if (st.ctx.options->checkpoint_on_close || cw->seal) st.checkpoint_wanted = true;
        logic::maybe_flush(self);
        logic::maybe_close(self);
      },
  };
}
}  // namespace statefold::detail
