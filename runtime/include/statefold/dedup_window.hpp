#pragma once

// dedup_window: the exact set of the most recent N event IDs of one partition, FIFO-evicted.
//
// An event ID is kept as its 128-bit XXH3 digest (fixed size, no allocation per entry). Two
// distinct IDs collide with probability ~ window^2 / 2^129 — for a window of 10^6 about
// 10^-27 — which we treat as exact. Size and evictions are observable; the window is saved
// in checkpoints (oldest first) and rebuilt by replay, so it survives restarts.
// Beyond the window an old ID is no longer recognised: a redelivery older than the last N
// accepted events is applied again. Size the window to cover the longest redelivery.
//
// Single-threaded.

#include <cstdint>
#include <string_view>
#include <vector>

namespace statefold {

struct event_digest {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const event_digest&, const event_digest&) = default;
};

/// The pinned digest of an event ID (XXH3-128, seed 0).
event_digest digest_of(std::string_view event_id) noexcept;

/// A set of digests of fixed capacity: open addressing with linear probing, deletion by
/// backward shift. There are no tombstones, so the window's steady insert-one-erase-one never
/// triggers a rehash. (A general-purpose table such as absl::flat_hash_set marks erased slots
/// deleted and, once they run out, rehashes all of them at once: a 20-40 ms pause every
/// ~200 k events at the default window, which was the p99 of the engine's acknowledgements.)
/// The table is twice the entries it must hold, so probe runs stay short.
class digest_set {
 public:
  explicit digest_set(std::size_t max_entries);
  bool contains(const event_digest& d) const noexcept;
  void insert(const event_digest& d) noexcept;  ///< `d` must be absent; at most max_entries
  void erase(const event_digest& d) noexcept;
  void clear() noexcept;

 private:
  static bool empty(const event_digest& d) noexcept { return d.hi == 0 && d.lo == 0; }
  std::size_t home(const event_digest& d) const noexcept { return d.lo & mask_; }  // uniform
  std::vector<event_digest> slots_;  // {0, 0}: empty
  std::size_t mask_ = 0;
  bool has_zero_ = false;  // the digest {0, 0} itself, which cannot live in a slot
};

class dedup_window {
 public:
  /// capacity 0 disables deduplication (every lookup misses, nothing is stored).
  explicit dedup_window(std::size_t capacity);

  bool contains(const event_digest& d) const { return set_.contains(d); }
  /// Remembers `d`, evicting the oldest entry when full. `d` must not be present.
  void insert(const event_digest& d);
  void clear();
  /// Bulk mode, for replay: insert() only records the ID in the FIFO (no hash-set work, which
  /// is most of the cost when most replayed IDs are evicted again); end_bulk() builds the set
  /// from what survived. contains() must not be called in between.
  void begin_bulk() noexcept { bulk_ = true; }
  void end_bulk();
  /// Continues the eviction count of an earlier life (from a checkpoint), for metrics.
  void restore_evictions(uint64_t n) noexcept { evictions_ = n; }

  std::size_t size() const noexcept { return ring_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  uint64_t evictions() const noexcept { return evictions_; }

  /// Visits entries oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = head_; i < ring_.size(); ++i) f(ring_[i]);  // oldest: head_ on
    for (std::size_t i = 0; i < head_; ++i) f(ring_[i]);
  }

 private:
  std::size_t capacity_;
  std::vector<event_digest> ring_;  // grows to capacity, then wraps
  std::size_t head_ = 0;            // oldest entry once full
  digest_set set_;
  uint64_t evictions_ = 0;
  bool bulk_ = false;
};

}  // namespace statefold
