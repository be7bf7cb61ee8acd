#pragma once

// partition_state<Model>: the single-threaded heart of one partition.
//
// It owns the partition's entity states (a flat hash map key -> Model::state), its dedup
// window, its per-source offset high-water marks, its checkpoint store, and its side of the
// journal lane its records go to (journal_lane.hpp): a lane shared with other partitions
// (partition_options::lane, as an engine opens them), or, opened alone, a private lane in
// DIR/log. "LSN" in this class, its results and its checkpoint names is the partition's own
// sequence number (pseq: 1, 2, 3 ... per partition); in a private lane it is the lane's LSN.
//
//   open()        recover: newest usable checkpoint + replay of the log tail (recovery.hpp)
//   apply(e)      validate -> dedup -> Model::apply -> encode into the log buffer; returns the
//                 outcome and the LSN. NOT durable yet.
//   sync()        makes every applied event durable; returns the durable LSN. Acknowledge an
//                 event only when the durable LSN has reached its LSN.
//   checkpoint()  sync, write an atomic checkpoint, keep the newest `keep_checkpoints`, release
//                 log segments no kept checkpoint needs.
//   find(key)     the current state, which may include applied-but-not-yet-durable events.
//
// Outcomes: applied (logged, state changed); duplicate (the event's identity — key and event
// ID — is in the dedup window with the same body, or its source position is below what the
// partition has consumed of that source: nothing changes, nothing logged); conflict (the
// identity is in the window with another body: nothing changes, nothing logged); rejected
// (malformed, oversized, or Model::apply threw: nothing logged, state unchanged — a throwing
// handler makes the partition rebuild its state from disk before the next event); failed
// (the log failed earlier: the partition accepts nothing until reopened from disk).
//
// Threading: one OWNER (thread or actor) calls apply, find, take_flush, prepare_checkpoint,
// checkpoint_done and rebuild_from_disk; one PERSISTER calls persist and write_checkpoint, in
// the order the owner produced their inputs. They may be the same thread: sync() and
// checkpoint() do both halves in turn.

#include <chrono>
#include <deque>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>
#include <absl/strings/string_view.h>

#include "statefold/checkpoint.hpp"
#include "statefold/dedup_window.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/journal_lane.hpp"
#include "statefold/layout.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/model.hpp"
#include "statefold/outcome.hpp"
#include "statefold/partitioner.hpp"
#include "statefold/recovery.hpp"
#include "statefold/status.hpp"

namespace statefold {

struct apply_result {
  outcome kind = outcome::applied;
  uint64_t lsn = 0;        ///< for applied: the event's LSN (durable once durable_lsn >= lsn)
  std::string reason;      ///< for everything but applied
  std::string_view verdict;  ///< for applied: the business verdict Model::apply reported, if any
};

struct partition_options {
  std::string dir;                     ///< the partition's directory: ckpt/ (and log/ if alone)
  /// The journal lane to write to, opened (and repaired) by the caller for all the partitions
  /// it holds. nullptr: a private lane in DIR/log, opened and repaired here.
  std::shared_ptr<journal_lane> lane;
  uint32_t partition = 0;
  uint64_t epoch = 1;                  ///< owner epoch, written into new segment headers
  std::size_t dedup_window = 1u << 18; ///< event identities remembered (0 disables dedup)
  /// The directory's key-group count (MANIFEST): each identity in the window is kept with its
  /// key's key group, so that a rescale can split the window by key group.
  uint32_t key_groups = default_key_groups;
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
  log_options log;                     ///< for a private lane (max_record_bytes: always)
  std::size_t keep_checkpoints = 2;     ///< at least 2 (smaller values are raised to 2)
  /// Entities to make room for up front. The state map otherwise grows by doubling, and each
  /// doubling rehashes every entry while the partition waits (tens of ms at a million keys).
  std::size_t expected_entities = 0;
  std::function<void(uint64_t records, uint64_t bytes)> progress;  ///< during replay
  /// The time logged with each event, in µs since the Unix epoch; nullptr: the system clock.
  /// (A test kit's deterministic mode passes its own.)
  std::function<uint64_t()> clock;
  /// true: a throwing handler makes apply() sync and reload the state at once (single-
  /// threaded use). false: apply() only marks needs_rebuild(); the owner persists what is
  /// pending, then calls rebuild_from_disk() (the actor runtime, whose fsync is elsewhere).
  bool inline_rebuild = true;
};

/// A checkpoint image built by the owner, for the persister to write.
struct checkpoint_job {
  uint64_t lsn = 0;
  std::string image;
};

struct partition_stats {
  uint64_t applied = 0;
  uint64_t duplicates = 0;
  uint64_t conflicts = 0;
  uint64_t rejected = 0;
  uint64_t rebuilds = 0;           ///< state reloads after a throwing handler
  uint64_t next_lsn = 1;
  uint64_t durable_lsn = 0;
  uint64_t entities = 0;
  uint64_t dedup_size = 0;
  uint64_t dedup_capacity = 0;
  uint64_t dedup_evictions = 0;
  uint64_t last_checkpoint_lsn = 0;
  uint64_t checkpoints_written = 0;
  /// Checkpoints begun because the lane was over its size limit (journal_lane::holds_back).
  uint64_t lane_checkpoints = 0;
  uint64_t segments = 0;
};

/// Transparent string hashing for the entity map, so lookups by string_view do not allocate.
/// (Not the partition hash: within one partition its key-group bits are range-restricted.)
struct entity_key_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};
struct entity_key_eq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

template <model Model>
class partition_state {
 public:
  using state_type = typename Model::state;
  using event_type = typename Model::event;

  /// Recovers the partition from `o.dir` (creating it if new) and opens its log for appending.
  /// A sealed partition (released before, seal()) takes a checkpoint at once and is unsealed:
  /// from then on it holds its lane again.
  static result<std::unique_ptr<partition_state>> open(file_system& fs, partition_options o);

  // -- Opening the partitions of a lane together (engine::open): recover_lane reads the lane
  //    once for all of them, open() is prepare + recover_lane with one part + finish_open.
  /// The partition, its directory created, its state not loaded yet.
  static result<std::unique_ptr<partition_state>> prepare(file_system& fs, partition_options o);
  /// Its part in recover_lane (which calls it from its own threads).
  partition_recovery recovery_part();
  /// After recover_lane: starts the partition on `lane` (opened from the lane's scan).
  status finish_open(std::shared_ptr<journal_lane> lane, recovery_report report);

  apply_result apply(const event_type& e, const event_meta& meta = {});
  /// Records that `source` is consumed below `p.next` (and the consumer's fingerprint), when
  /// that is news: a `position` record, durable with the next sync. A consumer calls it for
  /// positions whose events are all answered, so that a rerun resumes there. Returns the
  /// record's LSN, 0 when nothing was news, or an error (the log failed).
  result<uint64_t> mark_consumed(std::string_view source, const source_progress& p);
  /// Durable LSN after writing and syncing everything applied so far (both halves below).
  result<uint64_t> sync();
  /// See the class comment. An error writing the checkpoint (e.g. ENOSPC) leaves the previous
  /// checkpoints and all segments in place; the partition keeps working. `even_if_unchanged`:
  /// a new checkpoint (after a no-op record) even when the last one covers everything.
  status checkpoint(bool even_if_unchanged = false);
  /// Releases the partition from its lane for good (engine::release): syncs, checkpoints what
  /// is new, seals that checkpoint (checkpoint.hpp, Sealing) and tells the lane it needs
  /// nothing more of it. The partition must not take events after; it is closed next. The
  /// next open() unseals it.
  status seal();

  // -- the two halves, for an owner and a persister on different threads --------------------
  /// Owner: everything applied so far, for persist().
  lane_chunk take_flush() { return journal_->take(); }
  /// Persister: commits a chunk to the lane (write and, in fdatasync mode, sync, together with
  /// other partitions' chunks); returns the durable LSN.
  result<uint64_t> persist(lane_chunk& c, persist_mode mode = persist_mode::fdatasync) {
    return journal_->persist(c, mode);
  }
  /// Persister: a chunk of this partition that its lane's flusher committed together with
  /// other partitions' (journal_lane::commit_all) is durable; returns the durable LSN.
  uint64_t committed(const lane_chunk& c) { return journal_->committed(c); }
  /// Owner: the state as of the last applied event, or nothing when the last checkpoint
  /// already covers it (or a state is too large for the format). Persist every batch taken
  /// up to now before writing it. All at once: begin_checkpoint + continue_checkpoint(all).
  std::optional<checkpoint_job> prepare_checkpoint(bool even_if_unchanged = false);

  /// Owner, incremental: a checkpoint of the state as of the last applied event, built a
  /// slice at a time by continue_checkpoint() while events go on being applied. An entity is
  /// captured either by the slice that reaches it or, if an event is about to change it
  /// first, just before that change (copy on write); entities created meanwhile are not in
  /// it. So the image is exactly the state at its LSN, and no single step costs more than
  /// its budget (the whole image at once was a 145 ms pause at a million entities).
  /// false: nothing new since the last checkpoint; nothing started. `for_lane`: the lane asked
  /// for it (lane_wants_checkpoint); with nothing new, a no-op record is appended first, so
  /// that the checkpoint is a newer one and the lane can release what the older needed. (It
  /// is durable, like the records before it, only with the next persist.)
  bool begin_checkpoint(bool for_lane = false);
  /// Owner: the partition's lane is over its size limit and this partition holds its oldest
  /// segment (journal_lane::holds_back): it should checkpoint, with begin_checkpoint(true).
  bool lane_wants_checkpoint() const { return lane_->holds_back(o_.partition); }
  bool checkpoint_in_progress() const noexcept { return ckpt_.has_value(); }
  /// Captures up to `budget` more entities. nullopt while entities remain; then the job, and
  /// no checkpoint is in progress any more. An error (a state too large for the format)
  /// also ends it. Persist every batch taken up to the job's LSN before writing it.
  result<std::optional<checkpoint_job>> continue_checkpoint(std::size_t budget);
  /// Persister: writes the image durably, prunes old checkpoints, releases segments.
  status write_checkpoint(checkpoint_job job);
  /// Persister, the same in steps: begin, then continue until it returns true; persists may
  /// run in between (the actor runtime's flusher does, so that log syncs never wait for a
  /// whole image). One at a time; an error ends it (the old checkpoints and segments stay).
  status begin_checkpoint_write(checkpoint_job job);
  result<bool> continue_checkpoint_write(std::size_t bytes);
  bool checkpoint_write_in_progress() const noexcept { return writing_.has_value(); }
  /// Owner: record a checkpoint the persister wrote.
  void checkpoint_done(uint64_t lsn) {
    counters_.last_checkpoint_lsn = lsn;
    have_checkpoint_ = true;
    ++counters_.checkpoints_written;
  }
  /// With inline_rebuild = false: a handler threw; apply() refuses until rebuild_from_disk().
  bool needs_rebuild() const noexcept { return needs_rebuild_; }
  /// Owner: reload the state from disk. Everything taken must have been persisted.
  status rebuild_from_disk();

  const state_type* find(std::string_view key) const {
    auto it = entities_.find(key);
    return it == entities_.end() ? nullptr : &it->second.state;
  }
  /// Visits every (key, state); order unspecified.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [k, slot] : entities_) f(std::string_view(k), slot.state);
  }
  uint64_t next_lsn() const noexcept { return journal_->next_pseq(); }
  uint64_t durable_lsn() const noexcept { return journal_->durable_pseq(); }
  /// ok while healthy; else why the partition refuses work.
  status failure() const { return failure_.is_ok() ? journal_->failure() : failure_; }
  /// failure() is not ok; cheap (no lock), for a check per message.
  bool failed() const noexcept { return !failure_.is_ok() || journal_->failed(); }
  journal_lane& lane() const noexcept { return *lane_; }
  partition_stats stats() const;
  const recovery_report& recovery() const noexcept { return report_; }
  uint32_t partition() const noexcept { return o_.partition; }
  /// How far each source is consumed, events not yet durable included.
  const std::map<std::string, source_progress, std::less<>>& sources() const noexcept { return sources_; }
  /// How far each source is consumed DURABLY: what may be committed to the source (e.g. a
  /// Kafka consumer group) without risking loss, and where a rerun resumes. Owner thread.
  const std::map<std::string, source_progress>& committed_sources() {
    const uint64_t durable = journal_->durable_pseq();
    while (!pending_sources_.empty() && pending_sources_.front().lsn <= durable) {
      committed_sources_[pending_sources_.front().source] = pending_sources_.front().progress;
      pending_sources_.pop_front();
    }
    return committed_sources_;
  }

 private:
  partition_state(file_system& fs, partition_options o, checkpoint_store store)
      : fs_(fs), o_(std::move(o)), store_(std::move(store)), window_(o_.dedup_window) {}

  std::string log_dir() const { return lane_ ? lane_->log_dir() : path_join(o_.dir, layout::log_dir); }
  result<recovery_result> load_from_disk(bool repair);
  recovery_hooks recovery_hooks_();
  void loaded(recovery_report& report);  // after recovery, whichever way it ran (idempotent)
  // Tells the lane from where on this partition still needs it: the position of the older of
  // its kept checkpoints (a damaged newest one falls back to it), from the start while it has
  // fewer than two, nothing while it has neither checkpoints nor records.
  status update_need();
  status rebuild();
  void reset() {
    ckpt_.reset();  // its cursor points into the map
    entities_.clear();
    entities_.reserve(o_.expected_entities);
    window_.clear();
    sources_.clear();
    pending_sources_.clear();
  }
  // The key's state for a change, default-constructed on first use (the key is copied only
  // then). During a checkpoint: the state is captured first if the checkpoint still needs it.
  state_type& entity(std::string_view key) { return entity_at(key)->second.state; }
  auto entity_at(std::string_view key) {
    auto it = entities_.find(key);
    if (it == entities_.end()) {
      // A new entity is not part of a checkpoint in progress. An insert that grows the map
      // moves every entry and invalidates the checkpoint's cursor: capture the rest first.
      if (ckpt_ && entities_.size() + 1 >= entities_.capacity() - entities_.capacity() / 8)
        capture_rest();
      it = entities_.emplace(std::string(key), entity_slot{state_type{}, ckpt_ ? ckpt_gen_ : 0u}).first;
    } else if (ckpt_ && it->second.ckpt_gen != ckpt_gen_) {
      capture(it);
    }
    return it;
  }
  // Runs Model::apply on the key's entity (created if new) and carries out its effect: an
  // erased entity leaves the map (captured first by a checkpoint in progress, like any change).
  effect apply_to_entity(std::string_view key, const event_type& e, const event_context& ctx) {
    auto it = entity_at(key);
    effect ef = apply_event<Model>(it->second.state, e, ctx);
    if (ef.erase) {
      if (ckpt_ && ckpt_->cursor == it) ++ckpt_->cursor;  // other iterators stay valid
      entities_.erase(it);
    }
    return ef;
  }
  // The key's key group (partitioner.hpp), kept with its identities in the dedup window.
  uint32_t key_group_of(std::string_view key) const noexcept {
    return key_group_of_hash(key_hash(key), o_.key_groups);
  }
  uint64_t now_us() const {
    if (o_.clock) return o_.clock();
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  }

  struct entity_slot {
    state_type state;
    uint32_t ckpt_gen = 0;  // == ckpt_gen_: captured by (or created after) the current checkpoint
  };
  using entity_map = absl::flat_hash_map<std::string, entity_slot, entity_key_hash, entity_key_eq>;
  struct checkpoint_in_progress_t {
    checkpoint_builder builder;
    uint64_t lsn;
    uint64_t remaining;  // entities of the image not captured yet
    typename entity_map::iterator cursor;
    uint64_t total = 0;     // entities in the image
    bool reserved = false;  // the image's room was made, from the first entities' size
    bool complete = false;  // every entity captured (capture_rest); waiting to be collected
  };
  void capture(typename entity_map::iterator it) {
    ckpt_->builder.add_entity(it->first, [&](std::string& out) { Model::encode_state(it->second.state, out); });
    it->second.ckpt_gen = ckpt_gen_;
    --ckpt_->remaining;
  }
  // Captures up to `budget` entities from the cursor on; true when the cursor reached the end.
  bool capture_from_cursor(std::size_t budget) {
    auto& c = *ckpt_;
    if (!c.reserved && c.total - c.remaining >= 1024) {
      // Room for the whole image, estimated from what the first entities took (+1/8).
      const std::size_t per = c.builder.size() / (c.total - c.remaining) + 1;
      c.builder.reserve(c.builder.size() + (per + per / 8) * c.remaining);
      c.reserved = true;
    }
    for (; c.cursor != entities_.end() && budget > 0; ++c.cursor) {
      if (c.cursor->second.ckpt_gen == ckpt_gen_) continue;  // captured already, or new
      capture(c.cursor);
      --budget;
    }
    return c.cursor == entities_.end();
  }
  void capture_rest() {
    capture_from_cursor(SIZE_MAX);
    ckpt_->complete = true;
  }
  // An applied event: its identity goes into the window, its position into its source's
  // progress. Returns the source's progress after it (null without a source).
  const source_progress* remember(const dedup_entry& d, std::string_view source, uint64_t offset,
                                  bool has_source) {
    window_.insert(d);  // never present: apply() checked, and replay only sees logged events
    if (!has_source) return nullptr;
    auto it = sources_.find(source);
    if (it == sources_.end()) it = sources_.emplace(std::string(source), source_progress{}).first;
    it->second.next = std::max(it->second.next, offset + 1);
    return &it->second;
  }
  // A position record: the source is consumed below p.next; a newer fingerprint replaces the
  // older one. False when it tells nothing new.
  bool advance(source_progress& cur, const source_progress& p) {
    bool news = false;
    if (p.next > cur.next) cur.next = p.next, news = true;
    if (p.fingerprint_at > cur.fingerprint_at) {
      cur.fingerprint_at = p.fingerprint_at;
      cur.fingerprint = p.fingerprint;
      news = true;
    }
    return news;
  }

  file_system& fs_;
  partition_options o_;
  checkpoint_store store_;
  std::shared_ptr<journal_lane> lane_;
  std::unique_ptr<partition_journal> journal_;
  entity_map entities_;
  dedup_window window_;
  std::optional<checkpoint_in_progress_t> ckpt_;
  uint32_t ckpt_gen_ = 0;
  std::optional<checkpoint_store::staged_write> writing_;  // persister side
  std::map<std::string, source_progress, std::less<>> sources_;
  struct pending_source {
    uint64_t lsn;
    std::string source;
    source_progress progress;  // the source's progress once this record is durable
  };
  std::deque<pending_source> pending_sources_;                   // applied, not yet durable
  std::map<std::string, source_progress> committed_sources_;     // durable progress
  recovery_report report_;
  partition_stats counters_;
  bool have_checkpoint_ = false;  // counters_.last_checkpoint_lsn names a checkpoint on disk
  status failure_;                // set when the in-memory state can no longer be trusted
  bool needs_rebuild_ = false;
};

// ---------------------------------------------------------------------------------------------

template <model Model>
recovery_hooks partition_state<Model>::recovery_hooks_() {
  recovery_hooks hooks;
  hooks.reset = [this] { reset(); };
  hooks.load_checkpoint = [this](const loaded_checkpoint& c) -> status {
    reset();
    if (c.codec_version != codec_version_of<Model>())
      return {errc::unsupported, c.path + ": written with codec version " +
                                     std::to_string(c.codec_version) + " of the model, which has " +
                                     std::to_string(codec_version_of<Model>()) + " now"};
    for (const auto& [name, p] : c.sources) sources_[name] = p;
    for (const auto& d : c.dedup) window_.insert(d);
    window_.restore_evictions(c.dedup_evictions);
    entities_.reserve(c.entities.size());
    for (const auto& [key, bytes] : c.entities) {
      state_type s{};
      if (!Model::decode_state(bytes, s))
        return {errc::corruption, c.path + ": the model cannot decode the state of key '" +
                                      std::string(key) + "'"};
      entities_.insert_or_assign(std::string(key), entity_slot{std::move(s), 0});
    }
    return status::ok();
  };
  hooks.replay = [this](const log_record& r) -> status {
    auto where = [&] {
      return std::string(r.file) + " at offset " + std::to_string(r.offset) + " (LSN " +
             std::to_string(r.lsn) + ")";
    };
    if (r.type == log_format::record_type::noop) {
      if (auto t = decode_noop(r.payload); !t) return {errc::corruption, where() + ": " + t.error().message()};
      return status::ok();
    }
    if (r.type == log_format::record_type::position) {
      auto pos = decode_position(r.payload);
      if (!pos) return {errc::corruption, where() + ": " + pos.error().message()};
      auto it = sources_.find(pos->source);
      if (it == sources_.end()) it = sources_.emplace(std::string(pos->source), source_progress{}).first;
      advance(it->second, pos->progress);
      return status::ok();
    }
    auto env = decode_envelope(r.payload);
    if (!env) return {errc::corruption, where() + ": " + env.error().message()};
    const event_context ctx{env->event_id,    env->key,    env->session,       env->correlation,
                            env->causation,   env->source, env->source_offset, env->time_us};
    event_type e{};
    if (!Model::decode_event(env->body, ctx, e))
      return {errc::corruption, where() + ": the model cannot decode the logged event '" +
                                    std::string(env->event_id) + "'"};
    try {
      apply_to_entity(env->key, e, ctx);
    } catch (const std::exception& ex) {
      // A logged event was accepted once; a handler that now throws is not deterministic.
      return {errc::failed, where() + ": handler threw on replay of event '" +
                                std::string(env->event_id) + "' (non-deterministic apply?): " +
                                ex.what()};
    }
    const uint64_t tag = dedup_tag(key_group_of(env->key), body_digest_of(env->body));
    remember({identity_of(env->key, env->event_id), tag}, env->source, env->source_offset,
             env->has_source);
    return status::ok();
  };
  hooks.before_replay = [this] { window_.begin_bulk(); };
  return hooks;
}

template <model Model>
void partition_state<Model>::loaded(recovery_report& report) {
  window_.end_bulk();
  report.entities = entities_.size();
  committed_sources_ = {sources_.begin(), sources_.end()};  // everything on disk is durable
}

template <model Model>
result<recovery_result> partition_state<Model>::load_from_disk(bool repair) {
  recovery_options ro;
  ro.partition = o_.partition;
  if (lane_) ro.lane = lane_->membership();
  // Beside other partitions still writing to a shared lane: only what is durable.
  if (lane_) ro.max_lsn = lane_->durable_lsn();
  ro.max_epoch = o_.epoch;
  ro.mode = o_.mode;
  ro.repair = repair;
  ro.progress = o_.progress;
  auto rec = recover_partition(fs_, log_dir(), store_, ro, recovery_hooks_());
  if (rec) loaded(rec->report);
  else window_.end_bulk();
  return rec;
}

template <model Model>
result<std::unique_ptr<partition_state<Model>>> partition_state<Model>::prepare(file_system& fs,
                                                                                 partition_options o) {
  SF_RETURN_IF_ERROR(fs.create_dirs(o.dir));
  SF_ASSIGN_OR_RETURN(auto store, checkpoint_store::open(fs, path_join(o.dir, layout::checkpoint_dir), o.partition));
  return std::unique_ptr<partition_state>(new partition_state(fs, std::move(o), std::move(store)));
}

template <model Model>
partition_recovery partition_state<Model>::recovery_part() {
  return {o_.partition, &store_, recovery_hooks_(), o_.progress};
}

template <model Model>
result<std::unique_ptr<partition_state<Model>>> partition_state<Model>::open(file_system& fs,
                                                                              partition_options o) {
  SF_ASSIGN_OR_RETURN(auto p, prepare(fs, std::move(o)));
  p->lane_ = p->o_.lane;
  SF_ASSIGN_OR_RETURN(auto rec, p->load_from_disk(/*repair=*/true));
  std::shared_ptr<journal_lane> lane = p->lane_;
  if (!lane) {
    journal_lane::options lo;
    lo.membership = lane_membership::alone(p->o_.partition);
    lo.epoch = p->o_.epoch;
    lo.mode = p->o_.mode;
    lo.log = p->o_.log;
    SF_ASSIGN_OR_RETURN(lane, journal_lane::open_scanned(fs, p->log_dir(), std::move(lo), std::move(rec.scan)));
  }
  SF_RETURN_IF_ERROR(p->finish_open(std::move(lane), std::move(rec.report)));
  return p;
}

template <model Model>
status partition_state<Model>::finish_open(std::shared_ptr<journal_lane> lane, recovery_report report) {
  lane_ = std::move(lane);
  report_ = std::move(report);
  loaded(report_);  // again when open() loaded it itself: idempotent
  counters_.last_checkpoint_lsn = report_.checkpoint_lsn;
  journal_ = std::make_unique<partition_journal>(o_.partition, report_.next_lsn, o_.log.max_record_bytes, lane_);
  have_checkpoint_ = report_.used_checkpoint;
  SF_RETURN_IF_ERROR(update_need());
  SF_ASSIGN_OR_RETURN(const std::optional<uint64_t> sealed, store_.sealed());
  if (sealed) {
    // Released before: its lane may have dropped what its sealed checkpoint replays from. A
    // checkpoint taken now replays from the lane's end, before the seal goes.
    SF_RETURN_IF_ERROR(checkpoint(/*even_if_unchanged=*/true));
    SF_RETURN_IF_ERROR(store_.unseal());
    report_.notes.push_back("unsealed: checkpoint " + std::to_string(counters_.last_checkpoint_lsn) +
                            " taken on activation");
  }
  return status::ok();
}

template <model Model>
status partition_state<Model>::update_need() {
  SF_ASSIGN_OR_RETURN(auto kept, store_.list());  // newest first
  uint64_t need = UINT64_MAX;
  if (kept.size() < 2) {
    if (!kept.empty() || journal_->next_pseq() > 1) need = 1;
  } else {
    for (uint64_t lsn : kept) {
      auto pos = store_.read_position(lsn);
      if (pos) need = std::min(need, *pos);
      else if (pos.error().code() == errc::io_error) return pos.error();
    }
    if (need == UINT64_MAX) need = 1;  // none readable: keep everything
  }
  return lane_->need_from(o_.partition, need);
}

template <model Model>
apply_result partition_state<Model>::apply(const event_type& e, const event_meta& meta) {
  if (journal_->failed() || !failure_.is_ok())
    return {outcome::failed, 0, "partition " + std::to_string(o_.partition) +
                                    " has failed: " + failure().to_string()};
  if (needs_rebuild_)
    return {outcome::failed, 0, "partition " + std::to_string(o_.partition) +
                                    " is reloading its state after a handler threw"};
  if constexpr (model_with_validate<Model>) {
    std::string why = Model::validate(e);
    if (!why.empty()) {
      ++counters_.rejected;
      return {outcome::rejected, 0, "malformed event: " + why};
    }
  }
  const std::string_view id = Model::event_id(e);
  const std::string_view key = Model::key(e);
  if (id.empty() || key.empty()) {
    ++counters_.rejected;
    return {outcome::rejected, 0, id.empty() ? "malformed event: empty event ID" : "malformed event: empty key"};
  }
  if (meta.source) {
    if (meta.source->source.empty()) {
      ++counters_.rejected;
      return {outcome::rejected, 0, "malformed event: source position with an empty source name"};
    }
    auto it = sources_.find(meta.source->source);
    if (it != sources_.end() && meta.source->offset < it->second.next) {
      ++counters_.duplicates;
      return {outcome::duplicate, 0, "source position already consumed"};
    }
  }
  const event_digest d = identity_of(key, id);
  if (const dedup_entry* seen = window_.find(d)) {
    // Rare: encode the body once more, to tell a redelivery from another event under the
    // same identity.
    std::string body;
    Model::encode_event(e, body);
    if (dedup_tag(key_group_of(key), body_digest_of(body)) != seen->tag) {
      ++counters_.conflicts;
      return {outcome::conflict, 0,
              "event ID already applied to this key with a different body (within the dedup "
              "window); not applied"};
    }
    ++counters_.duplicates;
    return {outcome::duplicate, 0, "event ID already applied (within the dedup window)"};
  }
  // Encode first, straight into the log buffer: an event too large to log is rejected before
  // it can touch the state. It becomes durable only with the next persist.
  const uint64_t time_us = now_us();
  uint64_t body_digest = 0;
  auto lsn = journal_->append_with(log_format::record_type::event, [&](std::string& out) {
    encode_envelope(out, time_us, id, key, meta, [&](std::string& b) {
      const std::size_t at = b.size();
      Model::encode_event(e, b);
      body_digest = body_digest_of(std::string_view(b).substr(at));
    });
  });
  if (!lsn) {
    if (lsn.error().code() == errc::invalid_argument) {
      ++counters_.rejected;
      return {outcome::rejected, 0, "event " + lsn.error().message()};
    }
    return {outcome::failed, 0, lsn.error().to_string()};  // the writer failed: reopen
  }
  std::string thrown;
  effect ef;
  try {
    const event_context ctx{id,
                            key,
                            meta.session,
                            meta.correlation,
                            meta.causation,
                            meta.source ? std::string_view(meta.source->source) : std::string_view{},
                            meta.source ? meta.source->offset : 0,
                            time_us};
    ef = apply_to_entity(key, e, ctx);
  } catch (const std::exception& ex) {
    thrown = std::string("handler threw: ") + ex.what();
  } catch (...) {
    thrown = "handler threw a non-standard exception";
  }
  if (!thrown.empty()) {
    // The record is in the log buffer already: take it back out (it must never be logged),
    // then reload the state, which the handler may have half-changed.
    journal_->unappend_last();
    ++counters_.rejected;
    if (!o_.inline_rebuild) {
      needs_rebuild_ = true;
      return {outcome::rejected, 0, thrown};
    }
    if (status st = rebuild(); !st.is_ok()) return {outcome::failed, 0, thrown + "; " + st.to_string()};
    return {outcome::rejected, 0, thrown};
  }
  const source_progress* progress =
      remember({d, dedup_tag(key_group_of(key), body_digest)},
               meta.source ? std::string_view(meta.source->source) : std::string_view{},
               meta.source ? meta.source->offset : 0, meta.source.has_value());
  if (progress) pending_sources_.push_back({*lsn, meta.source->source, *progress});
  ++counters_.applied;
  return {outcome::applied, *lsn, {}, ef.verdict};
}

template <model Model>
result<uint64_t> partition_state<Model>::mark_consumed(std::string_view source,
                                                       const source_progress& p) {
  if (journal_->failed() || !failure_.is_ok()) return failure();
  if (needs_rebuild_)
    return status{errc::failed, "partition " + std::to_string(o_.partition) +
                                    " is reloading its state after a handler threw"};
  if (source.empty()) return status{errc::invalid_argument, "mark_consumed: empty source name"};
  auto it = sources_.find(source);
  source_progress next = it == sources_.end() ? source_progress{} : it->second;
  if (!advance(next, p)) return uint64_t{0};
  auto lsn = journal_->append_with(log_format::record_type::position, [&](std::string& out) {
    encode_position(out, now_us(), source, next);
  });
  if (!lsn) return lsn.error();
  if (it == sources_.end()) it = sources_.emplace(std::string(source), next).first;
  else it->second = next;
  pending_sources_.push_back({*lsn, std::string(source), next});
  return *lsn;
}

template <model Model>
status partition_state<Model>::rebuild() {
  // Everything applied before the throwing event must be on disk to reload it from there.
  // If either step fails, the in-memory state is unknown (possibly reset): the partition
  // fails for good rather than apply or checkpoint on top of it.
  status st = sync().to_status();
  if (st.is_ok()) st = rebuild_from_disk();
  return st;
}

template <model Model>
status partition_state<Model>::rebuild_from_disk() {
  ++counters_.rebuilds;
  status st = journal_->buffered_bytes() == 0 && journal_->durable_pseq() + 1 == journal_->next_pseq()
                  ? load_from_disk(/*repair=*/false).to_status()
                  : status{errc::invalid_argument, "rebuild_from_disk with records not yet persisted"};
  if (!st.is_ok()) failure_ = st.with_context("rebuilding partition " + std::to_string(o_.partition));
  needs_rebuild_ = false;
  return st;
}

template <model Model>
result<uint64_t> partition_state<Model>::sync() {
  if (!failure_.is_ok()) return failure_;
  lane_chunk c = journal_->take();
  return journal_->persist(c);
}

template <model Model>
std::optional<checkpoint_job> partition_state<Model>::prepare_checkpoint(bool even_if_unchanged) {
  if (!ckpt_ && !begin_checkpoint(even_if_unchanged)) return std::nullopt;  // nothing new
  auto job = continue_checkpoint(SIZE_MAX);
  return job ? std::move(*job) : std::nullopt;  // an error: a state over 4 GiB; checkpoint() reports it
}

template <model Model>
bool partition_state<Model>::begin_checkpoint(bool for_lane) {
  if (ckpt_) return false;
  if (have_checkpoint_ && journal_->next_pseq() - 1 == counters_.last_checkpoint_lsn) {
    if (!for_lane || !failure_.is_ok() || needs_rebuild_) return false;
    auto noop = journal_->append_with(log_format::record_type::noop,
                                      [&](std::string& out) { encode_noop(out, now_us()); });
    if (!noop) return false;  // the lane failed: the partition will be restarted
  }
  const uint64_t lsn = journal_->next_pseq() - 1;
  if (for_lane) ++counters_.lane_checkpoints;
  // Every record of this partition after `lsn` will go into the lane after what it holds
  // durably now (checkpoint.hpp).
  const uint64_t position = lane_->durable_lsn() + 1;
  if (++ckpt_gen_ == 0) {  // wrapped: no entity may carry a stale mark that now matches
    for (auto& [k, slot] : entities_) slot.ckpt_gen = 0;
    ckpt_gen_ = 1;
  }
  checkpoint_builder b(o_.partition, lsn, o_.epoch, codec_version_of<Model>(),
                       lane_->membership().lane, position);
  b.add_sources({sources_.begin(), sources_.end()});
  b.add_dedup(window_);
  b.begin_entities(entities_.size());
  ckpt_.emplace(checkpoint_in_progress_t{std::move(b), lsn, entities_.size(), entities_.begin(),
                                         entities_.size()});
  return true;
}

template <model Model>
result<std::optional<checkpoint_job>> partition_state<Model>::continue_checkpoint(std::size_t budget) {
  if (!ckpt_) return std::optional<checkpoint_job>();
  if (!ckpt_->complete && !capture_from_cursor(budget)) return std::optional<checkpoint_job>();
  checkpoint_in_progress_t c = std::move(*ckpt_);
  ckpt_.reset();
  if (c.remaining != 0)  // each entity of the image exactly once: a bug here, not bad data
    return status{errc::failed, "partition " + std::to_string(o_.partition) + ": checkpoint at LSN " +
                                    std::to_string(c.lsn) + " lost track of " +
                                    std::to_string(c.remaining) + " entities; not written"};
  if (!c.builder.ok())
    return status{errc::invalid_argument, "partition " + std::to_string(o_.partition) +
                                              ": an entity state exceeds 4 GiB; checkpoint not written"};
  return std::optional<checkpoint_job>(checkpoint_job{c.lsn, std::move(c.builder).finish()});
}

template <model Model>
status partition_state<Model>::write_checkpoint(checkpoint_job job) {
  SF_RETURN_IF_ERROR(begin_checkpoint_write(std::move(job)));
  return continue_checkpoint_write(SIZE_MAX).to_status();
}

template <model Model>
status partition_state<Model>::begin_checkpoint_write(checkpoint_job job) {
  if (writing_) return {errc::invalid_argument, "a checkpoint write is in progress already"};
  if (journal_->durable_pseq() < job.lsn)
    return {errc::invalid_argument, "checkpoint at LSN " + std::to_string(job.lsn) +
                                        " written before the log is durable up to it"};
  SF_ASSIGN_OR_RETURN(auto w, store_.begin_write(job.lsn, std::move(job.image)));
  writing_.emplace(std::move(w));
  return status::ok();
}

template <model Model>
result<bool> partition_state<Model>::continue_checkpoint_write(std::size_t bytes) {
  if (!writing_) return false;
  auto done = writing_->step(bytes);
  if (done && !*done) return false;
  status st = done ? writing_->finish() : done.error();
  writing_.reset();
  SF_RETURN_IF_ERROR(st);
  // Only now that the new checkpoint is durable may older checkpoints and segments go. Two
  // at least: segments are released up to the older kept checkpoint, so that a damaged
  // newest checkpoint can always fall back.
  SF_RETURN_IF_ERROR(store_.prune(std::max<std::size_t>(o_.keep_checkpoints, 2)));
  SF_RETURN_IF_ERROR(update_need());
  return true;
}

template <model Model>
status partition_state<Model>::checkpoint(bool even_if_unchanged) {
  SF_RETURN_IF_ERROR(sync().to_status());
  auto job = prepare_checkpoint(even_if_unchanged);
  // The no-op record it may have appended must be durable before the checkpoint covering it.
  if (job && even_if_unchanged) SF_RETURN_IF_ERROR(sync().to_status());
  if (!job) {
    if (have_checkpoint_ && journal_->next_pseq() - 1 == counters_.last_checkpoint_lsn)
      return status::ok();
    return {errc::invalid_argument, "partition " + std::to_string(o_.partition) +
                                        ": an entity state exceeds 4 GiB; checkpoint not written"};
  }
  const uint64_t lsn = job->lsn;
  SF_RETURN_IF_ERROR(write_checkpoint(std::move(*job)));
  checkpoint_done(lsn);
  return status::ok();
}

template <model Model>
status partition_state<Model>::seal() {
  SF_RETURN_IF_ERROR(checkpoint());
  SF_RETURN_IF_ERROR(store_.seal(counters_.last_checkpoint_lsn));
  return lane_->need_from(o_.partition, UINT64_MAX);
}

template <model Model>
partition_stats partition_state<Model>::stats() const {
  partition_stats s = counters_;
  s.next_lsn = journal_->next_pseq();
  s.durable_lsn = journal_->durable_pseq();
  s.entities = entities_.size();
  s.dedup_size = window_.size();
  s.dedup_capacity = window_.capacity();
  s.dedup_evictions = window_.evictions();
  s.segments = lane_->segment_count();
  return s;
}

}  // namespace statefold
