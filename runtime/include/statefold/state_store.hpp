#pragma once

// The seed's other design: a *stateless* consumer whose state lives in an external store
// (docs/stores.md). The interface has the seed's four operations (get_state, save_state,
// is_processed, mark_processed) and the ones that make the design safe:
//
//   read()    one round trip: the states and versions of some keys, whether some events
//             were processed (and with which body), and a source's consumed position;
//   commit()  atomically, only if nothing read has moved since: each key's new state (its
//             version bumped), each event marked processed, and the source's position
//             advanced. Otherwise nothing changes and the caller reads again (optimistic
//             concurrency: no lock server, no lease).
//
// The seed's sequence of the four operations alone applies an event twice when a consumer
// dies between save_state and mark_processed, and loses an update when two consumers
// interleave on one key; tests/stores/seed_sequence_test.cpp shows both. They stay in the
// interface because they are the seed's vocabulary and a test needs them to show that.
//
// Identity is the engine's: (key, event ID). A position of a source below its consumed
// position is a duplicate whatever the processed-ID entries say (they may expire).
//
// Backends: statefold::stores (stores/), Redis via hiredis. A store object is used by one
// thread at a time; several consumers (threads or processes) use one store each.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/envelope.hpp"
#include "statefold/status.hpp"

namespace statefold {

/// A key's state as the store holds it: the Model's encoding and a version that every commit
/// of the key bumps. Version 0: the store holds no state for the key.
struct stored_state {
  std::string bytes;
  uint64_t version = 0;
};

/// What one read() asks for.
struct store_read {
  struct event_ref {
    std::string_view key;
    std::string_view event_id;
  };
  std::vector<std::string_view> keys;
  std::vector<event_ref> events;
  std::string_view source;  ///< empty: no source
};

/// What one read() found, index for index.
struct store_read_reply {
  std::vector<stored_state> states;
  /// Per event: the body digest it was processed with, or nullopt (never, or expired).
  std::vector<std::optional<uint64_t>> processed;
  /// The source's consumed position ({} when the source is new or none was asked for).
  source_progress source;
};

/// An event a commit marks processed.
struct committed_event {
  std::string_view event_id;
  uint64_t body_digest = 0;
};

/// One key's part of a commit: its state after the events, computed from `expected_version`.
struct key_commit {
  std::string_view key;
  uint64_t expected_version = 0;
  std::string_view new_state;  ///< ignored when `erase`
  bool erase = false;          ///< the Model erased the entity: the key's state is removed
  std::span<const committed_event> events;
};

/// The part of a source a commit covers: positions [from, to.next).
struct source_advance {
  std::string_view source;
  /// Where the range starts: the end of this consumer's previous commit of the source, or its
  /// resume point. The store refuses a commit whose range does not touch its consumed part
  /// (a gap would mark positions consumed that nobody committed).
  uint64_t from = 0;
  /// The position of the first event the commit applies (UINT64_MAX when it applies none):
  /// if the source's position has passed it since the read, the commit is stale.
  uint64_t lowest = 0;
  source_progress to;
};

struct commit_reply {
  bool committed = false;
  /// When not committed: what moved since the read ("version of key K", ...), for messages.
  std::string moved;
};

class state_store {
 public:
  virtual ~state_store() = default;

  /// Names the store in messages ("redis://127.0.0.1:6379/0").
  virtual const std::string& name() const noexcept = 0;
  /// Records the Model's name and codec version on first use (`record`; a reader passes false
  /// and writes nothing: a store nothing was consumed into is then not_found); refuses
  /// (config_mismatch) a store written by another Model or another version of its encoding.
  virtual status check_model(std::string_view model, uint32_t codec_version, bool record = true) = 0;

  // --- The seed's four operations ---------------------------------------------------------
  virtual result<stored_state> get_state(std::string_view key) = 0;
  /// Saves unconditionally (bumping the version): what the seed does.
  virtual status save_state(std::string_view key, std::string_view bytes) = 0;
  /// The body digest the event was processed with, or nullopt.
  virtual result<std::optional<uint64_t>> is_processed(std::string_view key,
                                                       std::string_view event_id) = 0;
  virtual status mark_processed(std::string_view key, std::string_view event_id,
                                uint64_t body_digest) = 0;

  // --- What makes them safe ---------------------------------------------------------------
  virtual status read(const store_read& what, store_read_reply& out) = 0;
  /// All of it or nothing: not committed (with what moved) when a key's version is not the
  /// expected one, an event is processed already, or the source's position passed `lowest`.
  /// An error (errc::io_error, ...) means the outcome is unknown: the caller must not
  /// acknowledge, and a rerun finds out (the commit either happened, and its events are
  /// duplicates, or did not).
  virtual result<commit_reply> commit(std::span<const key_commit> keys,
                                      const source_advance* source) = 0;
  /// The seed's whole step, made atomic: one key, one event, no source.
  result<commit_reply> commit(std::string_view key, std::string_view new_state,
                              std::string_view event_id, uint64_t body_digest,
                              uint64_t expected_version) {
    const committed_event ev{event_id, body_digest};
    const key_commit k{key, expected_version, new_state, false, std::span(&ev, 1)};
    return commit(std::span(&k, 1), nullptr);
  }

  /// The source's consumed position ({} when new).
  virtual result<source_progress> progress(std::string_view source) = 0;
  /// Every key's state once, in no particular order. Not a snapshot: a state committed
  /// meanwhile may or may not be seen.
  virtual status for_each_state(
      const std::function<status(std::string_view key, const stored_state&)>& f) = 0;
};

}  // namespace statefold
