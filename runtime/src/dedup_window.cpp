#include "statefold/dedup_window.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace statefold {

event_digest digest_of(std::string_view event_id) noexcept {
  XXH128_hash_t h = XXH3_128bits(event_id.data(), event_id.size());
  return {h.high64, h.low64};
}

dedup_window::dedup_window(std::size_t capacity) : capacity_(capacity) {}

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
  set_.reserve(ring_.size());
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
