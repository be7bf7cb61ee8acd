#include "statefold/dedup_window.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace statefold {

event_digest digest_of(std::string_view event_id) noexcept {
  XXH128_hash_t h = XXH3_128bits(event_id.data(), event_id.size());
  return {h.high64, h.low64};
}

dedup_window::dedup_window(std::size_t capacity) : capacity_(capacity) {
  // All the room up front: growing the set by doubling rehashes every ID at once, a stall of
  // 10-20 ms at 2^17 entries that showed as the p99 of every acknowledgement behind it.
  ring_.reserve(capacity_);
  set_.reserve(capacity_);
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
  set_.clear();  // frees a large table: reserve again
  set_.reserve(capacity_);
  for (const auto& d : ring_) set_.insert(d);
}

void dedup_window::clear() {
  ring_.clear();
  evictions_ = 0;
  set_.clear();
  set_.reserve(capacity_);
  head_ = 0;
  bulk_ = false;
}

}  // namespace statefold
