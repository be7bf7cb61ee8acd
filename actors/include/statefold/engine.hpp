#pragma once

// engine<Model>: the runtime a service links in.
//
//   auto e = statefold::engine<my_model>::open({.dir = "data", .partitions = 4});
//   e.value()->submit(event, [](const statefold::submit_result& r) { ... });   // any thread
//   auto state = e.value()->get("booking-7");  // result<optional<state>>
//   e.value()->close();
//
// One CAF actor per partition owns that partition's state (partition_state<Model>); one
// detached flusher per journal lane commits the records of all the lane's partitions, one
// write and one fdatasync per round (journal_lane.hpp), and writes their checkpoints, so the
// thread count does not grow with the partitions; a supervisor restarts a partition whose log
// failed, after recovering it from disk, while the others keep running (all the partitions
// of a lane that failed are restarted, over the lane reopened and repaired). See
// detail/partition_actor.hpp for the path of one event and docs/semantics.md for what an
// acknowledgement means.
//
// Threading: every public member function may be called from any thread, concurrently,
// except close() and the destructor. Callbacks run on CAF worker threads, never on the
// submitting thread (a caller holding its own lock cannot deadlock on its own callback):
// keep them short, and never block in them on another submit to the same engine.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "statefold/data_dir.hpp"
#include "statefold/detail/flusher_actor.hpp"
#include "statefold/detail/messages.hpp"
#include "statefold/detail/partition_actor.hpp"
#include "statefold/detail/source_fences.hpp"
#include "statefold/detail/supervisor.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/live_progress.hpp"
#include "statefold/log.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/segment_preparer.hpp"

namespace statefold {

namespace detail {
/// The CAF configuration the engine runs with (threads, fairness), from its options.
void configure_actor_system(caf::actor_system_config& cfg, const engine_options& o);
}  // namespace detail

template <model Model>
class engine : private detail::supervised_engine {
 public:
  using event_type = typename Model::event;
  using state_type = typename Model::state;
  using event_callback = std::function<void(const submit_result&)>;
  using batch_callback = std::function<void(std::vector<submit_result>&)>;

  /// Opens (creating or recovering) the data directory: locks it, checks the MANIFEST,
  /// recovers every partition (in parallel), and starts the actors. Errors name the
  /// partition, file, offset and LSN.
  static result<std::unique_ptr<engine>> open(engine_options o);

  ~engine() { ignore(close()); }
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Submits one event; `done` runs once it is answered (see submit_result), on a CAF worker
  /// thread. Returns errc::busy (backpressure::reject, the partition is full: nothing was
  /// accepted) or failed (engine closed) without ever calling `done`. A busy event with a
  /// source position fences its source like a failed one (semantics.md).
  status submit(event_type e, event_callback done, event_meta meta = {});
  /// The same, answered through a future (busy and closed become its value).
  std::future<submit_result> submit(event_type e, event_meta meta = {});
  /// Submits many events: one message per partition. `done` runs once, on a CAF worker
  /// thread, with the answers in submission order, when every event is answered. Events for a
  /// full partition under backpressure::reject are answered `busy` there; the call itself
  /// fails only on a closed engine or mismatched `metas` (then `done` is not called).
  status submit_batch(std::vector<event_type> events, batch_callback done,
                      std::vector<event_meta> metas = {});

  /// A copy of the key's current state; it may include applied events that are not yet
  /// durable. nullopt for an unknown key. If the key's partition is down (restarting), waits
  /// for it up to `wait_for_restart`, then fails with errc::failed naming the partition, as
  /// export_all does: a down partition is never answered as "unknown key". Blocks the
  /// calling thread; never call it from a callback.
  result<std::optional<state_type>> get(
      std::string_view key, std::chrono::milliseconds wait_for_restart = std::chrono::seconds(30));
  /// Every entity, sorted by key: all partitions, or an error — never a partial export.
  /// Each partition is read at one point in its event order; partitions are read one after
  /// another (not one global instant).
  ///
  /// A partition that is down (its log failed and the supervisor is recovering it) is waited
  /// for: up to `wait_for_restart` in all, however many partitions are down. One still down
  /// then fails the export with errc::failed, naming every such partition and, if its
  /// recovery from disk failed, the last recovery error. Blocks the calling thread; never
  /// call it from a callback.
  result<std::vector<std::pair<std::string, state_type>>> export_all(
      std::chrono::milliseconds wait_for_restart = std::chrono::seconds(30));
  std::vector<engine_partition_stats> stats();
  /// One entry per journal lane: its durable end, segments, commit rounds, and what its last
  /// opening found (a torn tail cut, leftovers removed).
  std::vector<engine_lane_stats> lane_stats() {
    std::lock_guard lock(lanes_mu_);
    std::vector<engine_lane_stats> out;
    for (uint32_t l = 0; l < lanes_.size(); ++l) {
      engine_lane_stats s;
      s.lane = l;
      if (const auto& lane = lanes_[l].lane) {
        s.durable_lsn = lane->durable_lsn();
        s.segments = lane->segment_count();
        s.rounds = lane->rounds();
        s.bytes = lane->bytes_held();
      }
      s.recovery = lane_reports_[l];
      out.push_back(std::move(s));
    }
    return out;
  }

  /// Records that `source` is consumed below `progress.next`: every event of it before that
  /// position has been answered (applied, duplicate, conflict or rejected), or was skipped by
  /// the consumer (a malformed line). Each partition logs it (a `position` record, durable with
  /// its next sync), so that resume_point() reaches it in every partition, including those that
  /// got no event of the source lately. With a fingerprint of the input up to
  /// `progress.fingerprint_at`, a later consumer can check it reads the same input. Never past
  /// an event answered failed or busy: a partition that lost one ignores the marker.
  /// Returns failed on a closed engine.
  status mark_consumed(std::string source, source_progress progress);

  /// Where a consumer of `source` resumes: the lowest durable `next` over all partitions (0 if
  /// any partition has consumed nothing of it), and the newest fingerprint the partitions keep
  /// at or below it (so the consumer can check it on the way there) — or, when there is none,
  /// the nearest one beyond it, to check before sending anything past `next`.
  /// Waits for a partition that is down, like get().
  result<source_progress> resume_point(
      std::string_view source, std::chrono::milliseconds wait_for_restart = std::chrono::seconds(30));
  /// Checkpoints every active partition now; returns the first error.
  status checkpoint();

  // -- partitions at runtime (a source that owns some partitions at a time: Kafka) -----------
  /// Whether partition p runs in this engine (engine_options::start_released, release()).
  /// A released partition answers its events `failed` at once; get() of its keys fails;
  /// export_all(), resume_point(), checkpoint() and mark_consumed() cover the active ones.
  bool active(uint32_t p) const { return p < released_.size() && !released_[p]->load(std::memory_order_acquire); }
  /// Starts released partition p: recovers it from disk (a sealed one takes a checkpoint
  /// first and is unsealed, partition_state::open) and starts its actor, while the others
  /// keep running. Blocks until it takes events. invalid_argument when p is out of range or
  /// active; the recovery's error otherwise (p stays released).
  status activate(uint32_t p);
  /// Releases partition p while the others keep running: events submitted to it from now on
  /// are answered `failed` at once, those accepted before are answered; then it syncs,
  /// checkpoints, seals that checkpoint (its lane keeps nothing more for it: checkpoint.hpp,
  /// Sealing) and stops. Blocks. A partition that is down is waited for up to
  /// `wait_for_restart` first. invalid_argument when p is out of range or released already.
  status release(uint32_t p, std::chrono::milliseconds wait_for_restart = std::chrono::seconds(30));
  /// Stops taking events, waits until every submitted event is answered, syncs, checkpoints
  /// (checkpoint_on_close), stops the actors and releases the directory lock. Idempotent.
  status close();

  const partitioner& router() const noexcept { return router_; }
  uint32_t partitions() const noexcept { return router_.partitions(); }
  const manifest& info() const noexcept { return dir_->info(); }

 private:
  struct slot {  // one partition's live handle; replaced by the supervisor on restart
    caf::actor actor;
  };
  struct lane_slot {  // one journal lane and its flusher; replaced when the lane fails
    std::shared_ptr<journal_lane> lane;
    caf::actor flusher;
    bool broken = false;  // its flusher stopped unexpectedly: reopen it
  };

  explicit engine(engine_options o, std::unique_ptr<data_dir> dir)
      : options_(std::move(o)), dir_(std::move(dir)), router_(dir_->make_partitioner()) {}

  file_system& fs() const { return options_.fs ? *options_.fs : posix_file_system(); }
  partition_options partition_options_for(uint32_t p) const;
  result<std::shared_ptr<partition_state<Model>>> recover(uint32_t p);
  // The LSN of partition p's sealed checkpoint (checkpoint_store::sealed), read from disk.
  result<std::optional<uint64_t>> sealed_at(uint32_t p) const {
    return checkpoint_store::open_read_only(fs(), path_join(dir_->partition_dir(p), layout::checkpoint_dir), p)
        .sealed();
  }
  // Waits until every event submitted to partition p is answered.
  void await_answers(uint32_t p) {
    auto& n = flight_[p]->n;
    for (int64_t cur = n.load(); cur > 0; cur = n.load()) n.wait(cur);
  }
  // Asks partition p's actor to sync, checkpoint (checkpoint_on_close, or always when
  // sealing), seal if asked, and stop; waits for its answer.
  status close_partition(uint32_t p, bool seal);
  // The lane's current journal, opened anew (scanned, repaired) when the current one failed.
  result<std::shared_ptr<journal_lane>> lane_for(uint32_t lane);
  result<std::shared_ptr<journal_lane>> open_lane(uint32_t lane);
  journal_lane::options lane_options_for(uint32_t lane) const;
  void report_lane_open(uint32_t lane, const log_scan& scan);
  // At open: recovers the lane's partitions by one read of it (recover_lane), opens the lane
  // from that read, and puts each recovered partition in `out` (start_released: seals it).
  status open_lane_recovering(uint32_t lane, std::vector<std::shared_ptr<partition_state<Model>>>& out);
  void log_recovered(uint32_t p, const recovery_report& r) {
    log_with(*log_, spdlog::level::info,
             {.partition = p, .lsn = r.next_lsn > 1 ? std::optional<uint64_t>(r.next_lsn - 1) : std::nullopt}, "{}",
             r.summary());
  }
  void spawn_flusher(lane_slot& l) {
    l.flusher = sys_->template spawn<caf::detached>(detail::flusher_actor<Model>);
  }
  slot spawn_partition(uint32_t p, std::shared_ptr<partition_state<Model>> ps);
  caf::actor actor_for(uint32_t p) const {
    std::shared_lock lock(slots_mu_);
    return slots_[p].actor;
  }
  bool acquire(uint32_t p, int64_t n);
  // Whether acquire(p, n) would take the events now (backpressure::reject's answer).
  bool would_accept(uint32_t p, int64_t n) const;
  // Sends a query and waits for its answer. The promise lives only in the message, so a
  // partition that dies before answering breaks it: ask() then throws std::future_error.
  template <class T>
  T ask(uint32_t p, std::function<void(detail::query_work<Model>&, std::shared_ptr<std::promise<T>>)> fill);
  // ask(), and if partition p is down, again after each restart until `deadline`; nullopt
  // if it is still down then.
  template <class T>
  std::optional<T> ask_when_up(
      uint32_t p, std::chrono::steady_clock::time_point deadline,
      std::function<void(detail::query_work<Model>&, std::shared_ptr<std::promise<T>>)> fill);
  // Waits until partition p has been restarted since restarts_[p] read `seen`; false at
  // `deadline`.
  bool await_restart(uint32_t p, uint64_t seen, std::chrono::steady_clock::time_point deadline);
  // "partition 3 is restarting (...)", for errors about a partition that did not answer.
  std::string describe_outage(uint32_t p);
  void start_supervisor();
  // -- detail::supervised_engine: what the supervisor (detail/supervisor.hpp) does through us
  bool closing() const override { return closing_.load(); }
  uint32_t partition_count() const override { return router_.partitions(); }
  uint32_t lane_count() const override { return dir_->info().lanes; }
  bool released(uint32_t p) const override { return released_[p]->load(); }
  bool lane_work_pending(uint32_t p) const override { return lane_work_[p]->load() > 0; }
  caf::actor flusher_of(uint32_t lane) override {
    std::lock_guard lock(lanes_mu_);
    return lanes_[lane].flusher;
  }
  bool flusher_stopped(uint32_t lane, const caf::actor_addr& who) override {
    std::lock_guard lock(lanes_mu_);
    if (!lanes_[lane].flusher || lanes_[lane].flusher.address() != who) return false;
    lanes_[lane].broken = true;
    return true;
  }
  bool lane_failed(uint32_t lane) override {
    std::lock_guard lock(lanes_mu_);
    return lanes_[lane].broken || (lanes_[lane].lane && lanes_[lane].lane->failed());
  }
  result<caf::actor> start_partition(uint32_t p, bool activate) override;
  void recovery_failed(uint32_t p, const status& why) override {
    std::lock_guard lock(outage_mu_);
    ++outages_[p].failed_recoveries;
    outages_[p].last_recovery_error = why;
  }
  void restarted(uint32_t p) override {
    {
      std::lock_guard lock(outage_mu_);
      outages_[p] = {};
      restarts_[p]->fetch_add(1);
    }
    restarted_.notify_all();
  }

  // Why a partition is down, as far as the supervisor knows; reset when it is back.
  struct outage {
    uint64_t failed_recoveries = 0;
    status last_recovery_error;
  };

  engine_options options_;
  std::unique_ptr<data_dir> dir_;
  partitioner router_;
  std::shared_ptr<spdlog::logger> log_;
  // Makes log segments ahead of need for every partition; outlives the actors (their writers
  // wait for a running job of theirs when they are destroyed).
  std::shared_ptr<segment_preparer> preparer_ = std::make_shared<segment_preparer>();
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  mutable std::shared_mutex slots_mu_;
  std::vector<slot> slots_;
  std::vector<std::unique_ptr<detail::flight_counter>> flight_;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> restarts_;
  std::vector<std::unique_ptr<detail::source_fences>> fences_;
  // The supervisor bumps restarts_[p] under outage_mu_ and notifies restarted_, so a reader
  // waiting for a partition to come back cannot miss it.
  std::mutex outage_mu_;
  std::condition_variable restarted_;
  std::vector<outage> outages_;  // guarded by outage_mu_
  std::vector<detail::partition_context> contexts_;
  std::mutex lanes_mu_;
  std::vector<lane_slot> lanes_;                      // guarded by lanes_mu_
  std::vector<std::unique_ptr<std::atomic<int64_t>>> lane_work_;  // per partition (partition_context)
  std::vector<std::unique_ptr<std::atomic<bool>>> released_;      // per partition: not active here
  std::mutex membership_mu_;  // one activate() or release() at a time
  std::vector<std::string> lane_reports_;             // likewise: the last open of each
  caf::actor supervisor_;
  caf::actor answerer_;  // delivers answers decided on the submitting thread (busy, empty)
  std::atomic<bool> closing_{false};
  std::mutex close_mu_;
  bool closed_ = false;
  status close_status_;
};

// ---------------------------------------------------------------------------------------------

template <model Model>
partition_options engine<Model>::partition_options_for(uint32_t p) const {
  partition_options po;
  po.dir = dir_->partition_dir(p);
  po.partition = p;
  po.epoch = dir_->epoch();
  po.dedup_window = static_cast<std::size_t>(dir_->info().dedup_window);
  po.key_groups = dir_->info().key_groups;
  po.keep_checkpoints = options_.keep_checkpoints;
  const uint64_t share = options_.expected_entities / options_.partitions;
  po.expected_entities = static_cast<std::size_t>(share + share / 8);
  po.mode = options_.recovery;
  po.log = options_.log;  // max_record_bytes; the lane has the rest
  po.inline_rebuild = false;  // the actor persists first, then reloads (partition_actor.hpp)
  auto log = log_;
  po.progress = [log, p](uint64_t records, uint64_t) {
    log_with(*log, spdlog::level::info, {.partition = p}, "partition {}: replayed {} events so far", p, records);
  };
  return po;
}

template <model Model>
journal_lane::options engine<Model>::lane_options_for(uint32_t l) const {
  journal_lane::options lo;
  lo.membership = dir_->info().membership(l);
  lo.epoch = dir_->epoch();
  lo.mode = options_.recovery;
  lo.log = options_.log;
  if (lo.log.segment_bytes == 0) lo.log.segment_bytes = engine_segment_bytes(dir_->info().lanes);
  // Never below two segments: the current one and the oldest, which is what can go.
  lo.max_bytes = options_.max_lane_bytes == 0 ? 0 : std::max(options_.max_lane_bytes, 2 * lo.log.segment_bytes);
  if (!lo.log.preparer) lo.log.preparer = preparer_;
  const data_dir* d = dir_.get();
  lo.log.fence_check = [d] { return d->check_epoch(); };
  // Readers in other processes (data_reader: get, export, inspect) read up to here.
  lo.log.progress_file = path_join(lane_dir(dir_->path(), l), progress_file_name);
  return lo;
}

template <model Model>
void engine<Model>::report_lane_open(uint32_t l, const log_scan& sc) {
  std::string what = "journal lane " + std::to_string(l) + " open: " +
                     (sc.next_lsn > sc.first_lsn ? "LSN " + std::to_string(sc.first_lsn) + ".." +
                                                       std::to_string(sc.next_lsn - 1)
                                                 : "no records (next LSN " + std::to_string(sc.next_lsn) + ")") +
                     " in " + std::to_string(sc.segments.size()) + " segment(s)";
  if (sc.cut_bytes > 0) what += "; cut " + std::to_string(sc.cut_bytes) + " bytes: " + sc.damage;
  else if (!sc.damage.empty()) what += "; " + sc.damage;
  for (const auto& f : sc.stray_files) what += "; removed leftover " + f;
  for (const auto& f : sc.discard_segments) what += "; discarded segment " + f + " (point-in-time recovery)";
  log_->log(sc.cut_bytes > 0 || !sc.damage.empty() ? spdlog::level::warn : spdlog::level::info, "{}", what);
  lane_reports_[l] = std::move(what);
}

template <model Model>
result<std::shared_ptr<journal_lane>> engine<Model>::open_lane(uint32_t l) {
  const std::string ldir = lane_dir(dir_->path(), l);
  SF_RETURN_IF_ERROR(fs().create_dirs(ldir));
  auto lane = journal_lane::open(fs(), path_join(ldir, layout::log_dir), lane_options_for(l));
  if (!lane) return lane.error().with_context("journal lane " + std::to_string(l));
  report_lane_open(l, (*lane)->recovered());
  return lane;
}

template <model Model>
status engine<Model>::open_lane_recovering(uint32_t l, std::vector<std::shared_ptr<partition_state<Model>>>& out) {
  const manifest& info = dir_->info();
  std::vector<uint32_t> sealed;  // start_released: partitions left alone
  std::vector<std::unique_ptr<partition_state<Model>>> states;
  std::vector<partition_recovery> parts;
  for (uint32_t p = l; p < info.partitions; p += info.lanes) {
    if (options_.start_released) {
      auto at = sealed_at(p);
      if (!at) return at.error().with_context("partition " + std::to_string(p));
      if (*at) {
        sealed.push_back(p);
        continue;
      }
    }
    auto ps = partition_state<Model>::prepare(fs(), partition_options_for(p));
    if (!ps) return ps.error().with_context("partition " + std::to_string(p));
    parts.push_back((*ps)->recovery_part());
    states.push_back(std::move(ps).value());
  }
  journal_lane::options lo = lane_options_for(l);
  const std::string ldir = lane_dir(dir_->path(), l);
  SF_RETURN_IF_ERROR(fs().create_dirs(ldir));
  const std::string log_dir = path_join(ldir, layout::log_dir);
  lane_recovery_options ro;
  ro.lane = lo.membership;
  ro.max_epoch = lo.epoch;
  ro.mode = lo.mode;
  ro.threads = std::max(1u, std::thread::hardware_concurrency());
  auto rec = recover_lane(fs(), log_dir, ro, parts);
  if (!rec) return rec.error().with_context("journal lane " + std::to_string(l));
  auto lane = journal_lane::open_scanned(fs(), log_dir, std::move(lo), std::move(rec->scan));
  if (!lane) return lane.error().with_context("journal lane " + std::to_string(l));
  report_lane_open(l, (*lane)->recovered());
  {
    std::lock_guard lock(lanes_mu_);
    lanes_[l].lane = *lane;
  }
  for (uint32_t q : sealed) SF_RETURN_IF_ERROR((*lane)->need_from(q, UINT64_MAX));
  for (std::size_t i = 0; i < states.size(); ++i) {
    const uint32_t p = states[i]->partition();
    if (status st = states[i]->finish_open(*lane, std::move(rec->reports[i])); !st.is_ok())
      return st.with_context("partition " + std::to_string(p));
    log_recovered(p, states[i]->recovery());
    if (options_.start_released) {
      if (status st = states[i]->seal(); !st.is_ok()) return st.with_context("sealing partition " + std::to_string(p));
      log_with(*log_, spdlog::level::info, {.partition = p}, "partition {}: released (sealed at checkpoint {})", p,
               states[i]->stats().last_checkpoint_lsn);
    } else {
      out[p] = std::move(states[i]);
    }
  }
  return status::ok();
}

template <model Model>
result<std::shared_ptr<journal_lane>> engine<Model>::lane_for(uint32_t l) {
  std::lock_guard lock(lanes_mu_);
  lane_slot& s = lanes_[l];
  if (!s.lane || s.lane->failed() || s.broken) {
    if (s.lane)
      log_with(*log_, spdlog::level::warn, {}, "journal lane {} {}; reopening it from disk", l,
               s.broken ? std::string("lost its flusher") : "failed (" + s.lane->failure().to_string() + ")");
    // The old flusher's requests fail (their partitions restart onto the new lane).
    if (s.flusher) caf::anon_send_exit(s.flusher, caf::exit_reason::user_shutdown);
    s = lane_slot{};
    SF_ASSIGN_OR_RETURN(s.lane, open_lane(l));
    // A new lane has heard from no partition yet, and one that is released and sealed never
    // speaks again until activated: say for it that it needs nothing, or it pins the lane
    // from its start. (Released but not sealed, a release that failed, keeps the pin.)
    for (uint32_t q = l; q < released_.size(); q += dir_->info().lanes) {
      if (!released_[q]->load()) continue;
      auto sealed = sealed_at(q);
      if (!sealed) {  // keep the pin; activating it will report the damage
        log_with(*log_, spdlog::level::err, {.partition = q}, "partition {}: {}; its lane keeps its records",
                 q, sealed.error().to_string());
        continue;
      }
      if (*sealed) SF_RETURN_IF_ERROR(s.lane->need_from(q, UINT64_MAX));
    }
    if (sys_) spawn_flusher(s);
  }
  return s.lane;
}

template <model Model>
result<std::shared_ptr<partition_state<Model>>> engine<Model>::recover(uint32_t p) {
  auto po = partition_options_for(p);
  auto lane = lane_for(dir_->info().lane_of(p));
  if (!lane) return lane.error().with_context("partition " + std::to_string(p));
  po.lane = std::move(lane).value();
  auto ps = partition_state<Model>::open(fs(), std::move(po));
  if (!ps) return ps.error().with_context("partition " + std::to_string(p));
  log_recovered(p, (*ps)->recovery());
  return std::shared_ptr<partition_state<Model>>(std::move(ps).value());
}

template <model Model>
typename engine<Model>::slot engine<Model>::spawn_partition(
    uint32_t p, std::shared_ptr<partition_state<Model>> ps) {
  slot s;
  s.actor = sys_->spawn(detail::partition_actor<Model>, std::move(ps), flusher_of(dir_->info().lane_of(p)),
                        contexts_[p]);
  return s;
}

template <model Model>
result<std::unique_ptr<engine<Model>>> engine<Model>::open(engine_options o) {
  file_system& fs = o.fs ? *o.fs : posix_file_system();
  data_dir_config dc;
  dc.partitions = o.partitions;
  dc.lanes = o.lanes;
  dc.key_groups = o.key_groups;
  if (o.dedup_window) dc.dedup_window = *o.dedup_window;
  dc.allow_no_dedup = o.allow_no_dedup;
  dc.model = std::string(model_name_of<Model>());
  dc.codec_version = codec_version_of<Model>();
  SF_ASSIGN_OR_RETURN(auto dir, data_dir::open(fs, o.dir, dc));
  std::unique_ptr<engine> e(new engine(std::move(o), std::move(dir)));
  e->log_ = e->options_.logger ? e->options_.logger : spdlog::default_logger();
  for (const auto& note : e->dir_->notes()) e->log_->info("{}", note);
  const uint32_t n = e->router_.partitions();
  for (uint32_t p = 0; p < n; ++p) {
    e->flight_.push_back(std::make_unique<detail::flight_counter>());
    e->restarts_.push_back(std::make_unique<std::atomic<uint64_t>>(0));
    e->fences_.push_back(std::make_unique<detail::source_fences>());
    e->lane_work_.push_back(std::make_unique<std::atomic<int64_t>>(0));
    e->released_.push_back(std::make_unique<std::atomic<bool>>(e->options_.start_released));
    e->outages_.emplace_back();
    e->contexts_.push_back({p, &e->options_, e->log_.get(), e->flight_.back().get(),
                            e->restarts_.back().get(), e->fences_.back().get(),
                            e->lane_work_.back().get()});
  }

  // Each lane's partitions recover together (recover_lane: the lane read once per thread,
  // partitions applied in parallel), and the lane opens from the first thread's read.
  e->lanes_.resize(e->dir_->info().lanes);
  e->lane_reports_.resize(e->dir_->info().lanes);
  std::vector<std::shared_ptr<partition_state<Model>>> recovered(n);
  for (uint32_t l = 0; l < e->dir_->info().lanes; ++l) SF_RETURN_IF_ERROR(e->open_lane_recovering(l, recovered));

  e->cfg_ = std::make_unique<caf::actor_system_config>();
  detail::configure_actor_system(*e->cfg_, e->options_);
  e->sys_ = std::make_unique<caf::actor_system>(*e->cfg_);
  {
    std::lock_guard lock(e->lanes_mu_);
    for (auto& l : e->lanes_) e->spawn_flusher(l);
  }
  e->slots_.resize(n);
  for (uint32_t p = 0; p < n; ++p)
    if (recovered[p]) e->slots_[p] = e->spawn_partition(p, std::move(recovered[p]));
  e->answerer_ = e->sys_->spawn([]() -> caf::behavior {
    return {[](detail::answer_atom, detail::work_ptr w) { detail::work_cast<detail::answer_work>(w)->done->finish(); }};
  });
  e->start_supervisor();
  e->log_->info("statefold engine open: {} ({} partitions{}, {} journal lane(s), {} key groups, epoch {}, durability {})",
                e->dir_->path(), n, e->options_.start_released ? ", all released" : "", e->dir_->info().lanes,
                e->router_.key_groups(), e->dir_->epoch(), to_string(e->options_.mode));
  return e;
}

template <model Model>
void engine<Model>::start_supervisor() {
  std::vector<caf::actor> partitions;
  {
    std::shared_lock lock(slots_mu_);
    for (const auto& s : slots_) partitions.push_back(s.actor);
  }
  std::vector<caf::actor> flushers;
  {
    std::lock_guard lock(lanes_mu_);
    for (const auto& l : lanes_) flushers.push_back(l.flusher);
  }
  supervisor_ = detail::spawn_supervisor(*sys_, *this, options_, *log_, std::move(partitions), std::move(flushers));
}

template <model Model>
result<caf::actor> engine<Model>::start_partition(uint32_t p, bool activate) {
  auto ps = recover(p);
  if (!ps) return ps.error();
  slot s = spawn_partition(p, std::move(ps).value());
  std::unique_lock lock(slots_mu_);
  if (closing_.load()) {  // close() began while we recovered: stop what we started
    caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
    return status{errc::failed, std::string(activate ? "activate" : "restart") + ": the engine was closed meanwhile"};
  }
  slots_[p] = s;
  if (activate) released_[p]->store(false, std::memory_order_release);
  return s.actor;
}

template <model Model>
bool engine<Model>::would_accept(uint32_t p, int64_t n) const {
  const int64_t cur = flight_[p]->n.load(std::memory_order_acquire);
  return cur == 0 || cur + n <= static_cast<int64_t>(options_.max_in_flight);
}

template <model Model>
bool engine<Model>::acquire(uint32_t p, int64_t n) {
  auto& c = flight_[p]->n;
  const auto max = static_cast<int64_t>(options_.max_in_flight);
  int64_t cur = c.load(std::memory_order_acquire);
  for (;;) {
    // An idle partition always takes a batch, however large: progress is guaranteed.
    if (cur == 0 || cur + n <= max) {
      if (c.compare_exchange_weak(cur, cur + n, std::memory_order_acq_rel)) return true;
      continue;
    }
    if (options_.when_full == backpressure::reject) return false;
    c.wait(cur, std::memory_order_acquire);
    cur = c.load(std::memory_order_acquire);
  }
}

template <model Model>
status engine<Model>::submit_batch(std::vector<event_type> events, batch_callback done,
                                   std::vector<event_meta> metas) {
  if (closing_.load()) return {errc::failed, "engine is closed"};
  if (!metas.empty() && metas.size() != events.size())
    return {errc::invalid_argument, "submit_batch: metas must be empty or one per event"};
  const std::size_t total = events.size();
  if (total == 0) {
    auto a = std::make_shared<detail::answer_work>();
    a->done = std::make_shared<detail::batch_completion>();
    a->done->on_batch = std::move(done);
    caf::anon_send(answerer_, detail::answer_atom::value, detail::work_ptr(std::move(a)));
    return status::ok();
  }
  // Group by partition, remembering each event's place in the caller's order.
  const uint32_t n = router_.partitions();
  std::vector<std::vector<std::size_t>> where(n);
  for (std::size_t i = 0; i < total; ++i) where[router_.partition_of(Model::key(events[i]))].push_back(i);

  struct gather {
    std::vector<submit_result> all;
    std::atomic<std::size_t> parts_left{0};
    batch_callback done;
  };
  auto g = std::make_shared<gather>();
  g->all.resize(total);
  g->done = std::move(done);
  std::size_t parts = 0;
  for (auto& w : where) parts += !w.empty();
  g->parts_left.store(parts);

  auto part_done = [g](const std::vector<std::size_t>& idx, std::vector<submit_result>& rs) {
    for (std::size_t k = 0; k < idx.size(); ++k) g->all[idx[k]] = std::move(rs[k]);
    if (g->parts_left.fetch_sub(1, std::memory_order_acq_rel) == 1 && g->done) g->done(g->all);
  };

  for (uint32_t p = 0; p < n; ++p) {
    auto& idx = where[p];
    if (idx.empty()) continue;
    auto w = std::make_shared<detail::submit_work<Model>>();
    w->events.reserve(idx.size());
    for (std::size_t i : idx) w->events.push_back(std::move(events[i]));
    if (!metas.empty())
      for (std::size_t i : idx) w->metas.push_back(std::move(metas[i]));
    auto c = std::make_shared<detail::batch_completion>();
    c->results.resize(idx.size());
    for (auto& r : c->results) {
      r.partition = p;
      r.reason = "not processed: the partition stopped before it got to the event";
    }
    c->metas = &w->metas;  // `c` finishes while `w` lives: below, or in w's actor or destructor
    c->fences = fences_[p].get();
    c->on_batch = [part_done, idx](std::vector<submit_result>& rs) { part_done(idx, rs); };
    const bool released = released_[p]->load(std::memory_order_acquire);
    if (released || !acquire(p, static_cast<int64_t>(idx.size()))) {
      for (auto& r : c->results) {
        r.kind = released ? outcome::failed : outcome::busy;
        r.reason = released ? "partition " + std::to_string(p) +
                                  " is released: not active in this engine (engine::activate)"
                            : "partition " + std::to_string(p) + " has " +
                                  std::to_string(options_.max_in_flight) + " events in flight (backpressure)";
      }
      // Fence now, on this thread: a later submit of the same source must already see it.
      c->fence_failures();
      auto a = std::make_shared<detail::answer_work>();
      a->done = std::move(c);
      a->keep = w;  // the metas the completion points to
      caf::anon_send(answerer_, detail::answer_atom::value, detail::work_ptr(std::move(a)));
      continue;
    }
    c->flight = flight_[p].get();
    w->done = std::move(c);
    // If the partition is down (restarting), the message is dropped and the completion's
    // destructor answers `failed`.
    caf::anon_send(actor_for(p), detail::submit_atom::value, detail::work_ptr(std::move(w)));
  }
  return status::ok();
}

template <model Model>
status engine<Model>::submit(event_type e, event_callback done, event_meta meta) {
  if (closing_.load()) return {errc::failed, "engine is closed"};
  const uint32_t p = router_.partition_of(Model::key(e));
  // Backpressure is decided here, so that `busy` is this call's answer, not the callback's.
  if (options_.when_full == backpressure::reject && !would_accept(p, 1)) {
    if (meta.source) fences_[p]->fail(meta.source->source, meta.source->offset);
    return {errc::busy, "partition " + std::to_string(p) + " has " +
                            std::to_string(options_.max_in_flight) + " events in flight (backpressure)"};
  }
  std::vector<event_type> one;
  one.push_back(std::move(e));
  std::vector<event_meta> metas;
  if (meta.source || !meta.session.empty() || !meta.correlation.empty() || !meta.causation.empty())
    metas.push_back(std::move(meta));
  return submit_batch(std::move(one),
                      [done = std::move(done)](std::vector<submit_result>& rs) {
                        if (done) done(rs[0]);
                      },
                      std::move(metas));
}

template <model Model>
std::future<submit_result> engine<Model>::submit(event_type e, event_meta meta) {
  auto pr = std::make_shared<std::promise<submit_result>>();
  auto f = pr->get_future();
  const uint32_t p = router_.partition_of(Model::key(e));
  status st = submit(std::move(e), [pr](const submit_result& r) { pr->set_value(r); }, std::move(meta));
  if (!st.is_ok())
    pr->set_value(submit_result{st.code() == errc::busy ? outcome::busy : outcome::failed, 0, p, st.to_string()});
  return f;
}

template <model Model>
template <class T>
T engine<Model>::ask(uint32_t p,
                     std::function<void(detail::query_work<Model>&, std::shared_ptr<std::promise<T>>)> fill) {
  auto pr = std::make_shared<std::promise<T>>();
  auto f = pr->get_future();
  auto q = std::make_shared<detail::query_work<Model>>();
  fill(*q, std::move(pr));
  caf::anon_send(actor_for(p), detail::query_atom::value, detail::work_ptr(std::move(q)));
  return f.get();
}

template <model Model>
template <class T>
std::optional<T> engine<Model>::ask_when_up(
    uint32_t p, std::chrono::steady_clock::time_point deadline,
    std::function<void(detail::query_work<Model>&, std::shared_ptr<std::promise<T>>)> fill) {
  for (;;) {
    if (closing_.load()) return std::nullopt;  // nothing restarts any more
    // Read before asking: a restart that lands after the failed ask is then not missed.
    const uint64_t seen = restarts_[p]->load();
    try {
      return ask<T>(p, fill);
    } catch (const std::future_error&) {
      // The partition stopped before answering: it is down, and the supervisor restarts it
      // (unless it was released meanwhile: then nothing will bring it back).
    }
    if (!active(p) || !await_restart(p, seen, deadline)) return std::nullopt;
  }
}

template <model Model>
result<std::optional<typename Model::state>> engine<Model>::get(
    std::string_view key, std::chrono::milliseconds wait_for_restart) {
  using R = std::optional<state_type>;
  const std::string k(key);
  const uint32_t p = router_.partition_of(key);
  if (!active(p))
    return status{errc::failed, "get " + k + ": partition " + std::to_string(p) +
                                    " is released: not active in this engine (engine::activate)"};
  std::optional<R> s = ask_when_up<R>(p, std::chrono::steady_clock::now() + wait_for_restart,
                                      [&](detail::query_work<Model>& q, auto pr) {
                                        q.kind = detail::query_work<Model>::get;
                                        q.key = k;
                                        q.on_get = [pr](R v) { pr->set_value(std::move(v)); };
                                      });
  if (!s && closing_.load()) return status{errc::failed, "get: the engine is closed"};  // before or during
  if (!s)
    return status{errc::failed, "get " + k + ": " + describe_outage(p) + "; not back within " +
                                    std::to_string(wait_for_restart.count()) + " ms"};
  return std::move(*s);
}

template <model Model>
bool engine<Model>::await_restart(uint32_t p, uint64_t seen,
                                  std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(outage_mu_);
  return restarted_.wait_until(lock, deadline,
                               [&] { return restarts_[p]->load() != seen || closing_.load(); });
}

template <model Model>
std::string engine<Model>::describe_outage(uint32_t p) {
  if (!active(p)) return "partition " + std::to_string(p) + " is released: not active in this engine (engine::activate)";
  std::string s = "partition " + std::to_string(p) + " is restarting";
  std::lock_guard lock(outage_mu_);
  const outage& o = outages_[p];
  if (o.failed_recoveries > 0)
    s += " (its recovery from disk failed " + std::to_string(o.failed_recoveries) +
         (o.failed_recoveries == 1 ? " time" : " times") + ", last: " +
         o.last_recovery_error.to_string() + ")";
  return s;
}

template <model Model>
result<std::vector<std::pair<std::string, typename Model::state>>> engine<Model>::export_all(
    std::chrono::milliseconds wait_for_restart) {
  using R = std::vector<std::pair<std::string, state_type>>;
  if (closing_.load()) return status{errc::failed, "export_all: the engine is closed"};
  const auto deadline = std::chrono::steady_clock::now() + wait_for_restart;
  R all;
  std::vector<uint32_t> down;
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) continue;
    std::optional<R> part = ask_when_up<R>(p, deadline, [](detail::query_work<Model>& q, auto pr) {
      q.kind = detail::query_work<Model>::export_all;
      q.on_export = [pr](R v) { pr->set_value(std::move(v)); };
    });
    if (!part) {
      down.push_back(p);
      continue;
    }
    std::move(part->begin(), part->end(), std::back_inserter(all));
  }
  if (!down.empty() && closing_.load())
    return status{errc::failed, "export_all: the engine was closed during the export"};
  if (!down.empty()) {
    std::string why;
    for (uint32_t p : down) why += (why.empty() ? "" : "; ") + describe_outage(p);
    return status{errc::failed,
                  "export_all: " + why + "; not back within " +
                      std::to_string(wait_for_restart.count()) +
                      " ms, so nothing was exported. The engine keeps retrying (its log has the "
                      "cause); export again once " +
                      (down.size() == 1 ? "the partition is" : "the partitions are") + " back"};
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return all;
}

template <model Model>
std::vector<engine_partition_stats> engine<Model>::stats() {
  std::vector<engine_partition_stats> out;
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) {
      engine_partition_stats s;
      s.partition = p;
      s.active = false;
      out.push_back(std::move(s));
      continue;
    }
    try {
      out.push_back(ask<engine_partition_stats>(p, [](detail::query_work<Model>& q, auto pr) {
        q.kind = detail::query_work<Model>::stats;
        q.on_stats = [pr](engine_partition_stats s) { pr->set_value(std::move(s)); };
      }));
    } catch (const std::future_error&) {
      engine_partition_stats s;
      s.partition = p;
      s.failure = "restarting";
      s.restarts = restarts_[p]->load();
      out.push_back(std::move(s));
    }
  }
  return out;
}

template <model Model>
status engine<Model>::mark_consumed(std::string source, source_progress progress) {
  if (closing_.load()) return {errc::failed, "mark_consumed: the engine is closed"};
  if (source.empty()) return {errc::invalid_argument, "mark_consumed: empty source name"};
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) continue;  // its sealed progress stays; a new owner resumes from it
    auto m = std::make_shared<detail::mark_work>();
    m->source = source;
    m->progress = progress;
    // A partition that is down misses it: its progress stays where it was (a rerun then
    // re-reads a little more, all of it answered duplicate).
    caf::anon_send(actor_for(p), detail::mark_atom::value, detail::work_ptr(std::move(m)));
  }
  return status::ok();
}

template <model Model>
result<source_progress> engine<Model>::resume_point(std::string_view source,
                                                    std::chrono::milliseconds wait_for_restart) {
  using R = std::map<std::string, source_progress>;
  const auto deadline = std::chrono::steady_clock::now() + wait_for_restart;
  std::vector<source_progress> each;
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) continue;
    std::optional<R> part = ask_when_up<R>(p, deadline, [](detail::query_work<Model>& q, auto pr) {
      q.kind = detail::query_work<Model>::sources;
      q.on_sources = [pr](R v) { pr->set_value(std::move(v)); };
    });
    if (!part && closing_.load()) return status{errc::failed, "resume_point: the engine is closed"};
    if (!part)
      return status{errc::failed, "resume_point of '" + std::string(source) + "': " + describe_outage(p) +
                                      "; not back within " + std::to_string(wait_for_restart.count()) + " ms"};
    auto it = part->find(std::string(source));
    each.push_back(it == part->end() ? source_progress{} : it->second);
  }
  source_progress out;
  out.next = each.empty() ? 0 : each.front().next;
  for (const auto& e : each) out.next = std::min(out.next, e.next);
  // The newest fingerprint a consumer can check on its way to `next`; without one, the
  // nearest one beyond it (the consumer checks it before it sends anything past `next`).
  for (const auto& e : each)
    if (e.fingerprint_at <= out.next && e.fingerprint_at > out.fingerprint_at) {
      out.fingerprint_at = e.fingerprint_at;
      out.fingerprint = e.fingerprint;
    }
  if (out.fingerprint_at == 0)
    for (const auto& e : each)
      if (e.fingerprint_at > out.next && (out.fingerprint_at == 0 || e.fingerprint_at < out.fingerprint_at)) {
        out.fingerprint_at = e.fingerprint_at;
        out.fingerprint = e.fingerprint;
      }
  return out;
}

template <model Model>
status engine<Model>::checkpoint() {
  status first;
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) continue;
    status st;
    try {
      st = ask<status>(p, [](detail::query_work<Model>& q, auto pr) {
        q.kind = detail::query_work<Model>::checkpoint;
        q.on_checkpoint = [pr](status s) { pr->set_value(std::move(s)); };
      });
    } catch (const std::future_error&) {
      st = {errc::failed, "partition " + std::to_string(p) + " is restarting"};
    }
    if (!st.is_ok() && first.is_ok()) first = st;
  }
  return first;
}

template <model Model>
status engine<Model>::activate(uint32_t p) {
  std::lock_guard lock(membership_mu_);
  if (closing_.load()) return {errc::failed, "activate: the engine is closed"};
  if (p >= partitions())
    return {errc::invalid_argument, "activate: no partition " + std::to_string(p) + " (the directory has " +
                                        std::to_string(partitions()) + ")"};
  if (active(p)) return {errc::invalid_argument, "activate: partition " + std::to_string(p) + " is active already"};
  auto pr = std::make_shared<std::promise<status>>();
  auto fut = pr->get_future();
  auto w = std::make_shared<detail::activate_work>();
  w->partition = p;
  w->done = [pr](status s) { pr->set_value(std::move(s)); };
  caf::anon_send(supervisor_, detail::activate_atom::value, detail::work_ptr(std::move(w)));
  try {
    return fut.get();
  } catch (const std::future_error&) {
    return {errc::failed, "activate: the engine was closed meanwhile"};
  }
}

template <model Model>
status engine<Model>::release(uint32_t p, std::chrono::milliseconds wait_for_restart) {
  std::lock_guard lock(membership_mu_);
  if (closing_.load()) return {errc::failed, "release: the engine is closed"};
  if (p >= partitions())
    return {errc::invalid_argument, "release: no partition " + std::to_string(p) + " (the directory has " +
                                        std::to_string(partitions()) + ")"};
  if (!active(p)) return {errc::invalid_argument, "release: partition " + std::to_string(p) + " is released already"};
  // A partition that is down comes back first: what is sealed is what it recovers.
  const auto up = ask_when_up<bool>(p, std::chrono::steady_clock::now() + wait_for_restart,
                                    [](detail::query_work<Model>& q, auto pr) {
                                      q.kind = detail::query_work<Model>::stats;
                                      q.on_stats = [pr](engine_partition_stats) { pr->set_value(true); };
                                    });
  if (!up)
    return {errc::failed, "release: " + describe_outage(p) + "; not back within " +
                              std::to_string(wait_for_restart.count()) + " ms; it stays active"};
  // From here on, its events are answered failed at once; those accepted before are answered.
  released_[p]->store(true, std::memory_order_release);
  await_answers(p);
  const status st = close_partition(p, /*seal=*/true);
  {
    std::unique_lock l(slots_mu_);
    slots_[p].actor = nullptr;
  }
  if (!st.is_ok()) {
    log_with(*log_, spdlog::level::err, {.partition = p},
             "partition {}: released, but not sealed: {}; its lane keeps its records until it is activated again", p,
             st.to_string());
    return st.with_context("release of partition " + std::to_string(p) +
                           " (it is released, not sealed: its lane keeps its records until activate)");
  }
  log_with(*log_, spdlog::level::info, {.partition = p}, "partition {} released (sealed)", p);
  return status::ok();
}

template <model Model>
status engine<Model>::close_partition(uint32_t p, bool seal) {
  auto pr = std::make_shared<std::promise<status>>();
  auto fut = pr->get_future();
  auto w = std::make_shared<detail::close_work>();
  // The message holds the only reference: a dead partition breaks the promise.
  w->on_closed = [pr = std::move(pr)](status s) { pr->set_value(std::move(s)); };
  w->seal = seal;
  caf::anon_send(actor_for(p), detail::close_atom::value, detail::work_ptr(std::move(w)));
  try {
    return fut.get();
  } catch (const std::future_error&) {
    return {errc::failed, "partition " + std::to_string(p) + " stopped before " +
                              (seal ? "it was sealed" : "closing cleanly")};
  }
}

template <model Model>
status engine<Model>::close() {
  std::lock_guard lock(close_mu_);
  if (closed_) return close_status_;
  // Not in the middle of a release or an activation (they index slots_, which close clears).
  std::lock_guard membership(membership_mu_);
  closed_ = true;
  {
    std::lock_guard outage_lock(outage_mu_);  // a reader waiting for a restart sees it
    closing_.store(true);
  }
  restarted_.notify_all();
  if (!sys_) {  // open() failed before the actors started
    dir_.reset();
    return close_status_;
  }
  // 1. Wait until every submitted event is answered.
  for (uint32_t p = 0; p < router_.partitions(); ++p) await_answers(p);
  // 2. Each partition syncs, checkpoints and stops.
  for (uint32_t p = 0; p < router_.partitions(); ++p) {
    if (!active(p)) continue;
    const status st = close_partition(p, /*seal=*/false);
    if (!st.is_ok() && close_status_.is_ok()) close_status_ = st;
  }
  // 3. Stop the supervisor and every actor; the system waits for them.
  caf::anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(answerer_, caf::exit_reason::user_shutdown);
  {
    std::unique_lock l(slots_mu_);
    for (auto& s : slots_) caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
    slots_.clear();
  }
  {
    std::lock_guard l(lanes_mu_);
    // A detached actor's thread ends only once nothing holds its handle any more.
    for (auto& lane : lanes_) {
      if (lane.flusher) caf::anon_send_exit(lane.flusher, caf::exit_reason::user_shutdown);
      lane.flusher = nullptr;
    }
  }
  supervisor_ = nullptr;
  answerer_ = nullptr;
  sys_.reset();  // waits for every actor to finish
  cfg_.reset();
  {
    std::lock_guard l(lanes_mu_);
    lanes_.clear();
  }
  dir_.reset();  // releases the lock
  log_->info("statefold engine closed{}", close_status_.is_ok() ? "" : ": " + close_status_.to_string());
  return close_status_;
}

}  // namespace statefold
