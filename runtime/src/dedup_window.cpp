#include "statefold/dedup_window.hpp"

#include <algorithm>
#include <string>

#include "statefold/coding.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace statefold {

event_digest digest_of(std::string_view bytes) noexcept {
  XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return {h.high64, h.low64};
}

event_digest identity_of(std::string_view key, std::string_view event_id) noexcept {
  // One contiguous buffer, on the stack for the usual short key and ID.
  char small[256];
  const std::size_t need = 10 + key.size() + event_id.size();
  std::string big;
  char* p = small;
  if (need > sizeof small) {
    big.resize(need);
    p = big.data();
  }
  std::size_t n = 0;
  for (uint64_t v = key.size(); ; v >>= 7) {
    if (v < 0x80) {
      p[n++] = static_cast<char>(v);
      break;
    }
    p[n++] = static_cast<char>(v | 0x80);
  }
  std::memcpy(p + n, key.data(), key.size());
  n += key.size();
  std::memcpy(p + n, event_id.data(), event_id.size());
  n += event_id.size();
  return digest_of(std::string_view(p, n));
}

uint64_t body_digest_of(std::string_view body) noexcept {
  return XXH3_64bits(body.data(), body.size());
}

digest_set::digest_set(std::size_t max_entries) {
  std::size_t n = 16;
  while (n < 2 * max_entries) n *= 2;
  slots_.assign(max_entries ? n : 0, dedup_entry{});
  mask_ = max_entries ? n - 1 : 0;
}

const dedup_entry* digest_set::find(const event_digest& d) const noexcept {
  if (empty(d)) return has_zero_ ? &zero_ : nullptr;
  if (slots_.empty()) return nullptr;
  for (std::size_t i = home(d);; i = (i + 1) & mask_) {
    if (slots_[i].id == d) return &slots_[i];
    if (empty(slots_[i].id)) return nullptr;
  }
}

void digest_set::insert(const dedup_entry& e) noexcept {
  if (empty(e.id)) {
    has_zero_ = true;
    zero_ = e;
    return;
  }
  std::size_t i = home(e.id);
  while (!empty(slots_[i].id)) i = (i + 1) & mask_;
  slots_[i] = e;
}

void digest_set::erase(const event_digest& d) noexcept {
  if (empty(d)) {
    has_zero_ = false;
    return;
  }
  std::size_t hole = home(d);
  for (;; hole = (hole + 1) & mask_) {
    if (empty(slots_[hole].id)) return;  // absent
    if (slots_[hole].id == d) break;
  }
  // Backward shift: pull later entries of the run into the hole when that is no earlier than
  // their home slot, so that every entry stays reachable from its home without a gap.
  for (std::size_t j = (hole + 1) & mask_; !empty(slots_[j].id); j = (j + 1) & mask_) {
    const std::size_t dist_home = (j - home(slots_[j].id)) & mask_;
    const std::size_t dist_hole = (j - hole) & mask_;
    if (dist_home >= dist_hole) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = dedup_entry{};
}

void digest_set::clear() noexcept {
  std::fill(slots_.begin(), slots_.end(), dedup_entry{});
  has_zero_ = false;
}

dedup_window::dedup_window(std::size_t capacity) : capacity_(capacity), set_(capacity) {
  // All the room up front: growing by doubling copies every ID at once.
  ring_.reserve(capacity_);
}

void dedup_window::insert(const dedup_entry& e) {
  if (capacity_ == 0) return;
  if (ring_.size() < capacity_) {
    ring_.push_back(e);
  } else {
    if (!bulk_) set_.erase(ring_[head_].id);
    ring_[head_] = e;
    head_ = (head_ + 1) % capacity_;
    ++evictions_;
  }
  if (!bulk_) set_.insert(e);
}

void dedup_window::end_bulk() {
  if (!bulk_) return;
  bulk_ = false;
  set_.clear();
  for (const auto& e : ring_) set_.insert(e);
}

void dedup_window::clear() {
  ring_.clear();
  evictions_ = 0;
  set_.clear();
  head_ = 0;
  bulk_ = false;
}

}  // namespace statefold
