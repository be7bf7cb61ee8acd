#pragma once

// stateless_consumer<Model, Store>: the seed's TicketBookingConsumer loop over an external
// state_store, made correct (docs/stores.md). For a batch of events:
//
//   1. read, in one round trip: the state and version of every key in the batch, whether
//      each event was processed already, and the source's consumed position;
//   2. decide each event as the engine would: below the source's position, or processed with
//      the same body -> duplicate; processed with another body -> conflict; invalid or
//      refused by the Model's apply -> rejected; else Model::apply on a working copy;
//   3. commit the batch atomically (each changed key's state from the version read, every
//      applied event marked processed, the source's position advanced), or, when anything
//      read has moved (another consumer got there first), nothing: then read again and redo
//      the batch, up to `max_attempts` times.
//
// The outcomes are the engine's for the same events and the same Model, so a user can switch
// between the designs. An event is acknowledged (applied, duplicate) once the commit
// returned: durable as far as the store's own durability goes (Redis: appendfsync always).
// Single-threaded: one consumer per thread, each with its own Store.

#include <chrono>
#include <algorithm>
#include <exception>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "statefold/dedup_window.hpp"
#include "statefold/envelope.hpp"
#include "statefold/model.hpp"
#include "statefold/outcome.hpp"
#include "statefold/state_store.hpp"
#include "statefold/status.hpp"

namespace statefold {

struct stateless_options {
  /// Times a batch is read and redone when other consumers keep changing what it read, before
  /// it fails with errc::busy (nothing of it committed).
  int max_attempts = 64;
};

/// The answer for one event.
struct stateless_result {
  outcome kind = outcome::failed;
  std::string reason;        ///< for everything but applied
  std::string_view verdict;  ///< for applied: the business verdict of Model::apply, if any
};

struct stateless_stats {
  uint64_t applied = 0, duplicates = 0, conflicts = 0, rejected = 0;
  uint64_t commits = 0;  ///< batches committed
  uint64_t retries = 0;  ///< batches read and redone because something moved (contention)
};

/// Where a batch lies in its source: every event's meta carries a position in [from, to.next),
/// in increasing order, and the commit marks [from, to.next) consumed.
struct source_span {
  std::string_view source;
  uint64_t from = 0;  ///< the end of the previous batch, or where the consumer resumed
  source_progress to;
};

template <model Model, class Store = state_store>
class stateless_consumer {
 public:
  using event_type = typename Model::event;
  using state_type = typename Model::state;

  explicit stateless_consumer(Store& store, stateless_options o = {}) : store_(store), o_(o) {}

  /// Checks (and on first use records) the Model's name and codec version in the store.
  status open() { return store_.check_model(model_name_of<Model>(), codec_version_of<Model>()); }

  /// Processes a batch (see the top of the file). `metas` is empty or one per event; with a
  /// `span`, each meta has a source position within it. An error means nothing of the batch
  /// is known to be committed: acknowledge none of it (a rerun sorts it out).
  result<std::vector<stateless_result>> process(std::span<const event_type> events,
                                                std::span<const event_meta> metas = {},
                                                const source_span* span = nullptr);

  /// The key's state as the store holds it (nullopt: none).
  result<std::optional<state_type>> get(std::string_view key) {
    SF_ASSIGN_OR_RETURN(auto s, store_.get_state(key));
    if (s.version == 0) return std::optional<state_type>{};
    state_type out;
    if (!Model::decode_state(s.bytes, out))
      return status(errc::corruption, store_.name() + ": the state of key '" + std::string(key) +
                                          "' (version " + std::to_string(s.version) +
                                          ") does not decode with this Model");
    return std::optional<state_type>(std::move(out));
  }

  const stateless_stats& stats() const noexcept { return stats_; }
  Store& store() noexcept { return store_; }

 private:
  // A key's state while a batch is decided.
  struct working {
    std::size_t read_index = 0;
    state_type state;
    bool decoded = false;
    bool erase = false;
    std::vector<committed_event> events;
  };

  status check_batch(std::span<const event_type> events, std::span<const event_meta> metas,
                     const source_span* span) const;
  // Counts a committed batch's outcomes.
  std::vector<stateless_result> tally(std::vector<stateless_result>& out) {
    for (const auto& r : out) {
      switch (r.kind) {
        case outcome::applied: ++stats_.applied; break;
        case outcome::duplicate: ++stats_.duplicates; break;
        case outcome::conflict: ++stats_.conflicts; break;
        default: ++stats_.rejected;
      }
    }
    return std::move(out);
  }

  Store& store_;
  stateless_options o_;
  stateless_stats stats_;
};

// --- implementation -----------------------------------------------------------------------

template <model Model, class Store>
status stateless_consumer<Model, Store>::check_batch(std::span<const event_type> events,
                                                     std::span<const event_meta> metas,
                                                     const source_span* span) const {
  if (!metas.empty() && metas.size() != events.size())
    return status(errc::invalid_argument, "stateless_consumer: " + std::to_string(metas.size()) +
                                              " metas for " + std::to_string(events.size()) + " events");
  if (!span) return status::ok();
  if (span->source.empty() || span->to.next < span->from)
    return status(errc::invalid_argument, "stateless_consumer: a source span needs a name and from <= to.next");
  if (metas.size() != events.size())
    return status(errc::invalid_argument, "stateless_consumer: a source span needs a meta per event");
  uint64_t last = span->from;
  for (const auto& m : metas) {
    if (!m.source || m.source->source != span->source || m.source->offset < last ||
        m.source->offset >= span->to.next)
      return status(errc::invalid_argument,
                    "stateless_consumer: every event of a source span needs a position of that "
                    "source, increasing, within [from, to.next)");
    last = m.source->offset;
  }
  return status::ok();
}

template <model Model, class Store>
result<std::vector<stateless_result>> stateless_consumer<Model, Store>::process(
    std::span<const event_type> events, std::span<const event_meta> metas, const source_span* span) {
  SF_RETURN_IF_ERROR(check_batch(events, metas, span));
  static const event_meta no_meta;
  const auto meta_of = [&](std::size_t i) -> const event_meta& {
    return metas.empty() ? no_meta : metas[i];
  };

  // What does not depend on the store is decided once: validity, and each body's digest.
  std::vector<stateless_result> out(events.size());
  std::vector<bool> valid(events.size(), false);
  std::vector<uint64_t> digests(events.size(), 0);
  std::string body;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if constexpr (model_with_validate<Model>) {
      if (std::string why = Model::validate(e); !why.empty()) {
        out[i] = {outcome::rejected, "malformed event: " + why, {}};
        continue;
      }
    }
    if (Model::event_id(e).empty() || Model::key(e).empty()) {
      out[i] = {outcome::rejected,
                Model::event_id(e).empty() ? "malformed event: empty event ID" : "malformed event: empty key",
                {}};
      continue;
    }
    body.clear();
    Model::encode_event(e, body);
    digests[i] = body_digest_of(body);
    valid[i] = true;
  }

  std::string last_moved;
  for (int attempt = 1; attempt <= o_.max_attempts; ++attempt) {
    // 1. Read.
    store_read rd;
    std::unordered_map<std::string_view, working> keys;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (!valid[i]) continue;
      const std::string_view k = Model::key(events[i]);
      auto [it, fresh] = keys.try_emplace(k);
      if (fresh) {
        it->second.read_index = rd.keys.size();
        rd.keys.push_back(k);
      }
      rd.events.push_back({k, Model::event_id(events[i])});
    }
    if (span) rd.source = span->source;
    store_read_reply got;
    SF_RETURN_IF_ERROR(store_.read(rd, got));
    const uint64_t consumed = span ? got.source.next : 0;
    if (span && consumed < span->from)
      return status(errc::failed,
                    store_.name() + ": source '" + std::string(span->source) + "' is consumed up to position " +
                        std::to_string(consumed) + ", yet this batch starts at " + std::to_string(span->from) +
                        ": the positions between were never committed (another input under the same "
                        "source name?)");

    // 2. Decide.
    std::map<std::pair<std::string_view, std::string_view>, uint64_t> in_batch;  // applied here
    // The position of the first event applied: if the source's position passes it before
    // the commit, another consumer applied it (or will): the batch is stale.
    uint64_t lowest = std::numeric_limits<uint64_t>::max();
    const auto now_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
    std::size_t probe = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (!valid[i]) continue;
      const auto& e = events[i];
      const std::string_view key = Model::key(e);
      const std::string_view id = Model::event_id(e);
      const auto& processed = got.processed[probe++];
      const event_meta& meta = meta_of(i);
      auto& r = out[i];
      r = {};
      if (span && meta.source->offset < consumed) {
        r = {outcome::duplicate, "source position already consumed", {}};
        continue;
      }
      uint64_t seen_digest = 0;
      bool seen = false;
      if (processed) {
        seen = true;
        seen_digest = *processed;
      } else if (auto it = in_batch.find({key, id}); it != in_batch.end()) {
        seen = true;
        seen_digest = it->second;
      }
      if (seen) {
        r = seen_digest == digests[i]
                ? stateless_result{outcome::duplicate, "event ID already processed", {}}
                : stateless_result{outcome::conflict,
                                   "event ID already processed for this key with a different body; not applied",
                                   {}};
        continue;
      }
      working& w = keys.find(key)->second;
      if (!w.decoded) {
        const stored_state& s = got.states[w.read_index];
        if (s.version != 0 && !Model::decode_state(s.bytes, w.state))
          return status(errc::corruption, store_.name() + ": the state of key '" + std::string(key) +
                                              "' (version " + std::to_string(s.version) +
                                              ") does not decode with this Model");
        w.decoded = true;
      }
      state_type before = w.state;  // apply may throw half-way
      const event_context ctx{id,
                              key,
                              meta.session,
                              meta.correlation,
                              meta.causation,
                              meta.source ? std::string_view(meta.source->source) : std::string_view{},
                              meta.source ? meta.source->offset : 0,
                              now_us};
      try {
        const effect ef = apply_event<Model>(w.state, e, ctx);
        if (ef.erase) w.state = state_type{};
        w.erase = ef.erase;
        r = {outcome::applied, {}, ef.verdict};
      } catch (const std::exception& ex) {
        w.state = std::move(before);
        r = {outcome::rejected, std::string("handler threw: ") + ex.what(), {}};
        continue;
      } catch (...) {
        w.state = std::move(before);
        r = {outcome::rejected, "handler threw a non-standard exception", {}};
        continue;
      }
      if (span) lowest = std::min(lowest, meta.source->offset);
      w.events.push_back({id, digests[i]});
      in_batch.emplace(std::pair{key, id}, digests[i]);
    }

    // 3. Commit.
    std::vector<std::string> encoded;
    encoded.reserve(keys.size());
    std::vector<key_commit> commits;
    for (const auto& k : rd.keys) {
      working& w = keys.find(k)->second;
      if (w.events.empty()) continue;
      encoded.emplace_back();
      if (!w.erase) Model::encode_state(w.state, encoded.back());
      commits.push_back({k, got.states[w.read_index].version, encoded.back(), w.erase, w.events});
    }
    source_advance adv;
    if (span) adv = {span->source, span->from, lowest, span->to};
    // Nothing to write, and nothing to advance: another consumer is ahead on this source.
    if (commits.empty() && (!span || consumed >= span->to.next)) return tally(out);
    SF_ASSIGN_OR_RETURN(const commit_reply done, store_.commit(commits, span ? &adv : nullptr));
    if (done.committed) {
      ++stats_.commits;
      return tally(out);
    }
    ++stats_.retries;
    last_moved = done.moved;
  }
  return status(errc::busy, store_.name() + ": gave up on a batch after " + std::to_string(o_.max_attempts) +
                                " attempts: other consumers kept changing what it read (last: " +
                                last_moved + "); nothing of it was committed");
}

}  // namespace statefold
