#pragma once

// dedup_window: the exact set of the most recent N event identities of one partition,
// FIFO-evicted, each with a tag: its key's key group and a digest of the event's body.
//
// An event's identity is (key, event ID): the same ID on another key is another event,
// whatever the partitioning. It is kept as a 128-bit XXH3 digest (fixed size, no allocation
// per entry); two distinct identities collide with probability ~ window^2 / 2^129 — for a
// window of 10^6 about 10^-27 — which we treat as exact. Beside it, a 64-bit tag (dedup_tag):
// the key group, so a rescale can split the window by key group, and 44 bits of a digest of
// the Model's encoding of the event: an identity that comes back with another body is a
// conflict, not a duplicate (partition_state decides; the window only remembers).
//
// Size and evictions are observable; the window is saved in checkpoints (oldest first) and
// rebuilt by replay, so it survives restarts. Beyond the window an old identity is no longer
// recognised (a source position, when the event has one, still is: partition_state.hpp).
//
// Single-threaded.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

namespace statefold {

struct event_digest {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const event_digest&, const event_digest&) = default;
};

/// The pinned XXH3-128 digest (seed 0) of some bytes.
event_digest digest_of(std::string_view bytes) noexcept;
/// The pinned identity of an event: XXH3-128 (seed 0) of varint(key size), key, event ID.
event_digest identity_of(std::string_view key, std::string_view event_id) noexcept;
/// The pinned digest of an event's body (the Model's encoding): XXH3-64, seed 0.
uint64_t body_digest_of(std::string_view body) noexcept;

/// Beside each identity, the window keeps a 64-bit tag: the key group of the event's key in the
/// top 20 bits (rescaling splits windows by key group: MANIFEST bounds key groups to 2^20),
/// and the low 44 bits of the body digest (a redelivery with another body is a conflict; two
/// different bodies pass for the same with probability 2^-44).
inline constexpr unsigned dedup_tag_body_bits = 44;
inline uint64_t dedup_tag(uint32_t key_group, uint64_t body_digest) noexcept {
  return (uint64_t{key_group} << dedup_tag_body_bits) |
         (body_digest & ((uint64_t{1} << dedup_tag_body_bits) - 1));
}
inline uint32_t key_group_of_tag(uint64_t tag) noexcept {
  return static_cast<uint32_t>(tag >> dedup_tag_body_bits);
}

struct dedup_entry {
  event_digest id;
  uint64_t tag = 0;  ///< dedup_tag(key group, body digest)
  friend bool operator==(const dedup_entry&, const dedup_entry&) = default;
};

/// A set of entries keyed by identity: open addressing with linear probing, deletion by
/// backward shift. There are no tombstones, so the window's steady insert-one-erase-one never
/// triggers a rehash. (A general-purpose table such as absl::flat_hash_set marks erased slots
/// deleted and, once they run out, rehashes all of them at once: a 20-40 ms pause every
/// ~200 k events at the default window, which was the p99 of the engine's acknowledgements.)
/// A table holds at most half as many entries as it has slots, so probe runs stay short.
///
/// The table grows with what it holds, not with what it might hold: it starts at 16 slots
/// (384 bytes) and doubles up to the first power of two >= 2 * max_entries. A doubling never
/// moves everything at once: the new table takes every insert while each insert also moves
/// up to a few entries of the old one (incremental rehash, as Redis does), and lookups and
/// erasures look in both until the old one is empty. Slots come from calloc, so a large table's
/// pages are zeroed by the kernel as they are first touched, not all at once. An idle
/// partition's window costs a few hundred bytes; a busy one's grows to its capacity without
/// a pause.
class digest_set {
 public:
  explicit digest_set(std::size_t max_entries);
  /// The entry with identity `d`, or nullptr.
  const dedup_entry* find(const event_digest& d) const noexcept;
  void insert(const dedup_entry& e) noexcept;  ///< its identity must be absent; at most max_entries
  void erase(const event_digest& d) noexcept;
  /// Removes every entry and returns to the smallest table.
  void clear() noexcept;
  /// Makes room for `n` entries at once (no rehash needed for the first n inserts); only on an
  /// empty set (a bulk load).
  void reserve(std::size_t n) noexcept;
  std::size_t size() const noexcept { return cur_.count + old_.count + (has_zero_ ? 1 : 0); }
  /// Bytes of slots allocated now (both tables during a doubling).
  std::size_t memory_bytes() const noexcept {
    return (cur_.size() + old_.size()) * sizeof(dedup_entry);
  }
  bool rehashing() const noexcept { return old_.size() > 0; }

 private:
  struct table {
    struct free_slots {
      void operator()(dedup_entry* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<dedup_entry[], free_slots> slots;  // identity {0, 0}: empty
    std::size_t mask = 0;   // slot count - 1; slot count 0 when `slots` is null
    std::size_t count = 0;  // entries held
    std::size_t size() const noexcept { return slots ? mask + 1 : 0; }
    static table make(std::size_t n);  // n slots, a power of two, zeroed
    std::size_t home(const event_digest& d) const noexcept { return d.lo & mask; }  // uniform
    const dedup_entry* find(const event_digest& d) const noexcept;
    void insert(const dedup_entry& e) noexcept;
    bool erase(const event_digest& d) noexcept;  // false: absent
    void erase_at(std::size_t hole) noexcept;
  };
  static bool empty(const event_digest& d) noexcept { return d.hi == 0 && d.lo == 0; }
  void migrate_some() noexcept;

  std::size_t max_slots_ = 0;
  table cur_;               // takes every insert
  table old_;               // during a doubling: what is not moved yet
  std::size_t cursor_ = 0;  // next slot of old_ to move
  bool has_zero_ = false;   // the identity {0, 0} itself, which cannot live in a slot
  dedup_entry zero_;
};

class dedup_window {
 public:
  /// capacity 0 disables deduplication (every lookup misses, nothing is stored).
  explicit dedup_window(std::size_t capacity);

  const dedup_entry* find(const event_digest& d) const { return set_.find(d); }
  bool contains(const event_digest& d) const { return find(d) != nullptr; }
  /// Remembers an entry, evicting the oldest when full. Its identity must not be present.
  void insert(const dedup_entry& e);
  void insert(const event_digest& d, uint64_t tag = 0) { insert(dedup_entry{d, tag}); }
  void clear();
  /// Bulk mode, for replay: insert() only records the entry in the FIFO (no hash-set work,
  /// which is most of the cost when most replayed IDs are evicted again); end_bulk() builds
  /// the set from what survived. find() must not be called in between.
  void begin_bulk() noexcept { bulk_ = true; }
  void end_bulk();
  /// Continues the eviction count of an earlier life (from a checkpoint), for metrics.
  void restore_evictions(uint64_t n) noexcept { evictions_ = n; }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  uint64_t evictions() const noexcept { return evictions_; }
  /// Bytes allocated for entries now: grows with the entries held, up to the capacity's.
  std::size_t memory_bytes() const noexcept {
    return chunks_.size() * chunk_entries * sizeof(dedup_entry) + set_.memory_bytes();
  }

  /// Visits entries oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = head_; i < size_; ++i) f(at(i));  // oldest: head_ on
    for (std::size_t i = 0; i < head_; ++i) f(at(i));
  }

 private:
  std::size_t capacity_;
  // The FIFO of entries, in chunks allocated as it grows: no copy of what it holds, ever.
  static constexpr std::size_t chunk_entries = 512;  // 12 KiB
  const dedup_entry& at(std::size_t i) const noexcept { return chunks_[i / chunk_entries][i % chunk_entries]; }
  dedup_entry& at(std::size_t i) noexcept { return chunks_[i / chunk_entries][i % chunk_entries]; }
  std::vector<std::unique_ptr<dedup_entry[]>> chunks_;  // grows to capacity, then wraps
  std::size_t size_ = 0;
  std::size_t head_ = 0;           // oldest entry once full
  digest_set set_;
  uint64_t evictions_ = 0;
  bool bulk_ = false;
};

}  // namespace statefold
