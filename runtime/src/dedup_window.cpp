#include "statefold/dedup_window.hpp"

#include <algorithm>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace statefold {

event_digest digest_of(std::string_view event_id) noexcept {
  XXH128_hash_t h = XXH3_128bits(event_id.data(), event_id.size());
  return {h.high64, h.low64};
}

digest_set::digest_set(std::size_t max_entries) {
  std::size_t n = 16;
  while (n < 2 * max_entries) n *= 2;
  slots_.assign(max_entries ? n : 0, event_digest{});
  mask_ = max_entries ? n - 1 : 0;
}

bool digest_set::contains(const event_digest& d) const noexcept {
  if (empty(d)) return has_zero_;
  if (slots_.empty()) return false;
  for (std::size_t i = home(d);; i = (i + 1) & mask_) {
    if (slots_[i] == d) return true;
    if (empty(slots_[i])) return false;
  }
}

void digest_set::insert(const event_digest& d) noexcept {
  if (empty(d)) {
    has_zero_ = true;
    return;
  }
  std::size_t i = home(d);
  while (!empty(slots_[i])) i = (i + 1) & mask_;
  slots_[i] = d;
}

void digest_set::erase(const event_digest& d) noexcept {
  if (empty(d)) {
    has_zero_ = false;
    return;
  }
  std::size_t hole = home(d);
  for (;; hole = (hole + 1) & mask_) {
    if (empty(slots_[hole])) return;  // absent
    if (slots_[hole] == d) break;
  }
  // Backward shift: pull later entries of the run into the hole when that is no earlier than
  // their home slot, so that every entry stays reachable from its home without a gap.
  for (std::size_t j = (hole + 1) & mask_; !empty(slots_[j]); j = (j + 1) & mask_) {
    const std::size_t dist_home = (j - home(slots_[j])) & mask_;
    const std::size_t dist_hole = (j - hole) & mask_;
    if (dist_home >= dist_hole) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = event_digest{};
}

void digest_set::clear() noexcept {
  std::fill(slots_.begin(), slots_.end(), event_digest{});
  has_zero_ = false;
}

dedup_window::dedup_window(std::size_t capacity) : capacity_(capacity), set_(capacity) {
  // All the room up front: growing by doubling copies every ID at once.
  ring_.reserve(capacity_);
}

void dedup_window::insert(const event_digest& d) {
  if (capacity_ == 0) return;
  if (ring_.size() < capacity_) {
    ring_.push_back(d);
  } else {
    if (!bulk_) set_.erase(ring_[head_]);
    ring_[head_] = d;
    head_ = (head_ + 1) % capacity_;
    ++evictions_;
  }
  if (!bulk_) set_.insert(d);
}

void dedup_window::end_bulk() {
  if (!bulk_) return;
  bulk_ = false;
  set_.clear();
  for (const auto& d : ring_) set_.insert(d);
}

void dedup_window::clear() {
  ring_.clear();
  evictions_ = 0;
  set_.clear();
  head_ = 0;
  bulk_ = false;
}

}  // namespace statefold
