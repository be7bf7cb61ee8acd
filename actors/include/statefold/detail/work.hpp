#pragma once

// The payloads the engine's actors pass each other (every one a work_item behind a work_ptr,
// messages.hpp), and what a partition actor gets from its engine. Shared by the partition
// actor (partition_actor.hpp), the lane flusher (flusher_actor.hpp) and the engine.

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "statefold/detail/messages.hpp"
#include "statefold/detail/source_fences.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/log.hpp"
#include "statefold/partition_state.hpp"

namespace statefold::detail {

/// Events submitted to one partition and not answered yet. Submitters wait on it.
struct flight_counter {
  std::atomic<int64_t> n{0};
  void release(int64_t k) {
    n.fetch_sub(k, std::memory_order_acq_rel);
    n.notify_all();
  }
};

/// The answers for one batch of events sent to one partition. finish() runs the callbacks
/// once; if the batch is destroyed unanswered (its partition died, its message was dropped),
/// the destructor answers every event `failed` — a submitter is never left hanging.
/// An event with a source position answered `failed` or `busy` fences its source in the
/// partition (source_fences.hpp) before anyone hears of it.
struct batch_completion {
  using event_callback = std::function<void(const submit_result&)>;
  using batch_callback = std::function<void(std::vector<submit_result>&)>;

  std::vector<submit_result> results;
  std::vector<event_callback> per_event;  // empty, or one per event
  batch_callback on_batch;
  flight_counter* flight = nullptr;
  const std::vector<event_meta>* metas = nullptr;  // the batch's: empty, or one per event
  source_fences* fences = nullptr;
  bool done = false;

  /// Fences the source of every event answered failed or busy (finish() does it too).
  void fence_failures() {
    if (!fences || !metas || metas->empty()) return;
    for (std::size_t i = 0; i < results.size(); ++i)
      if ((results[i].kind == outcome::failed || results[i].kind == outcome::busy) && (*metas)[i].source)
        fences->fail((*metas)[i].source->source, (*metas)[i].source->offset);
  }

  void finish() {
    if (done) return;
    done = true;
    fence_failures();
    for (std::size_t i = 0; i < per_event.size(); ++i)
      if (per_event[i]) per_event[i](results[i]);
    if (on_batch) on_batch(results);
    if (flight) flight->release(static_cast<int64_t>(results.size()));
  }

  /// Turns every answer that still waits for durability into `failed` with `why`, then
  /// finishes. Unprocessed events are `failed` already.
  void fail_pending(const std::string& why) {
    for (auto& r : results) {
      if (r.kind == outcome::applied || r.kind == outcome::duplicate) {
        r.kind = outcome::failed;
        r.reason = "not acknowledged: " + why +
                   " (the event may or may not be in the log; resubmit it, duplicates are "
                   "detected)";
      }
    }
    finish();
  }

  ~batch_completion() {
    if (!done) fail_pending("the partition stopped before the event was durable");
  }
};

/// Answers computed off the partitions (busy, an empty batch), delivered by the engine's
/// answerer actor so that callbacks never run on the submitting thread.
struct answer_work final : work_item {
  std::shared_ptr<work_item> keep;  // what `done` points into (its batch's metas): outlives it
  std::shared_ptr<batch_completion> done;
};

template <class Model>
struct submit_work final : work_item {
  std::vector<typename Model::event> events;
  std::vector<event_meta> metas;  // empty, or one per event; declared before `done`, which reads it
  std::shared_ptr<batch_completion> done;
  std::size_t next = 0;       // first event not applied yet (resumption after a rebuild)
  uint64_t wait_lsn = 0;      // answers wait until this LSN is durable
  std::chrono::steady_clock::time_point accepted{};  // when the partition took it (ack latency)
};

/// Work a partition has handed to its lane's flusher and not seen finished: the supervisor
/// restarts a failed partition only once it is 0 (no write of the old one is then in flight).
/// `alive` is false once the partition actor that handed it over is gone: its checkpoint
/// writes are then abandoned (the .tmp left is removed at the next open).
struct lane_work_ticket {
  std::atomic<int64_t>* outstanding = nullptr;
  std::shared_ptr<std::atomic<bool>> alive;
  void take() const {
    if (outstanding) outstanding->fetch_add(1, std::memory_order_acq_rel);
  }
  void done() const {
    if (outstanding) outstanding->fetch_sub(1, std::memory_order_acq_rel);
  }
};

template <class Model>
struct flush_work final : work_item {
  std::shared_ptr<partition_state<Model>> ps;
  lane_chunk batch;
  persist_mode mode = persist_mode::fdatasync;
  std::optional<checkpoint_job> checkpoint;  // to write once the batch is durable
  lane_work_ticket ticket;
  // Results, filled in by the flusher.
  status st;
  uint64_t durable = 0;
  double persist_seconds = 0;  // the write (and fdatasync) alone
};

/// A checkpoint image the flusher writes in steps, between the persists that keep arriving;
/// the partition actor hears of it (ckpt_done) when it is durable or has failed.
template <class Model>
struct checkpoint_write_work final : work_item {
  std::shared_ptr<partition_state<Model>> ps;
  caf::actor reply_to;
  lane_work_ticket ticket;
  uint64_t lsn = 0;
  uint64_t bytes = 0;
  std::chrono::steady_clock::time_point started{};
  status st;
};

/// Queries answered by the partition actor through a callback (run on the actor's thread).
template <class Model>
struct query_work final : work_item {
  enum kind_t { get, export_all, stats, checkpoint, sources } kind = get;
  std::string key;
  std::function<void(std::optional<typename Model::state>)> on_get;
  std::function<void(std::vector<std::pair<std::string, typename Model::state>>)> on_export;
  std::function<void(engine_partition_stats)> on_stats;
  std::function<void(status)> on_checkpoint;
  std::function<void(std::map<std::string, source_progress>)> on_sources;  // durable progress
};

/// A consumer's marker: `source` is consumed below `progress.next` (mark_consumed).
struct mark_work final : work_item {
  std::string source;
  source_progress progress;
};

struct close_work final : work_item {
  std::function<void(status)> on_closed;
  /// engine::release: checkpoint whatever the options say, then seal the partition
  /// (partition_state::seal) before stopping.
  bool seal = false;
};

/// What a partition actor needs from the engine; owned by the engine, outlives every actor.
struct partition_context {
  uint32_t partition = 0;
  const engine_options* options = nullptr;
  spdlog::logger* log = nullptr;
  flight_counter* flight = nullptr;
  std::atomic<uint64_t>* restarts = nullptr;
  source_fences* fences = nullptr;
  std::atomic<int64_t>* lane_work = nullptr;  // lane_work_ticket::outstanding
};
}  // namespace statefold::detail
