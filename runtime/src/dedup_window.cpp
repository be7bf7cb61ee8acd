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

namespace {
constexpr std::size_t min_slots = 16;
// Entries of the old table moved per insert during a doubling. The old table is at most half
// full when the doubling starts, and the new one needs its own doubling only after as many
// inserts again as the old one held: scanning 8 slots per insert empties the old table long
// before that (even when erasures move entries behind the cursor and it has to go round twice).
constexpr std::size_t slots_per_step = 8;
}  // namespace

digest_set::table digest_set::table::make(std::size_t n) {
  table t;
  auto* p = static_cast<dedup_entry*>(std::calloc(n, sizeof(dedup_entry)));
  if (!p) throw std::bad_alloc();
  t.slots.reset(p);
  t.mask = n - 1;
  return t;
}

const dedup_entry* digest_set::table::find(const event_digest& d) const noexcept {
  if (!slots) return nullptr;
  for (std::size_t i = home(d);; i = (i + 1) & mask) {
    if (slots[i].id == d) return &slots[i];
    if (empty(slots[i].id)) return nullptr;
  }
}

void digest_set::table::insert(const dedup_entry& e) noexcept {
  std::size_t i = home(e.id);
  while (!empty(slots[i].id)) i = (i + 1) & mask;
  slots[i] = e;
  ++count;
}

bool digest_set::table::erase(const event_digest& d) noexcept {
  if (!slots) return false;
  std::size_t hole = home(d);
  for (;; hole = (hole + 1) & mask) {
    if (empty(slots[hole].id)) return false;
    if (slots[hole].id == d) break;
  }
  erase_at(hole);
  return true;
}

void digest_set::table::erase_at(std::size_t hole) noexcept {
  // Backward shift: pull later entries of the run into the hole when that is no earlier than
  // their home slot, so that every entry stays reachable from its home without a gap.
  for (std::size_t j = (hole + 1) & mask; !empty(slots[j].id); j = (j + 1) & mask) {
    const std::size_t dist_home = (j - home(slots[j].id)) & mask;
    const std::size_t dist_hole = (j - hole) & mask;
    if (dist_home >= dist_hole) {
      slots[hole] = slots[j];
      hole = j;
    }
  }
  slots[hole] = dedup_entry{};
  --count;
}

digest_set::digest_set(std::size_t max_entries) {
  if (max_entries == 0) return;  // never holds anything but, perhaps, the zero identity
  max_slots_ = min_slots;
  while (max_slots_ < 2 * max_entries) max_slots_ *= 2;
}

const dedup_entry* digest_set::find(const event_digest& d) const noexcept {
  if (empty(d)) return has_zero_ ? &zero_ : nullptr;
  if (const dedup_entry* e = cur_.find(d)) return e;
  return old_.count ? old_.find(d) : nullptr;
}

void digest_set::migrate_some() noexcept {
  for (std::size_t n = 0; n < slots_per_step && old_.count > 0; ++n) {
    const dedup_entry e = old_.slots[cursor_];
    if (empty(e.id)) {
      cursor_ = (cursor_ + 1) & old_.mask;
      continue;
    }
    // Erasing may shift a later entry into this slot: look at it again (no advance).
    old_.erase_at(cursor_);
    cur_.insert(e);
  }
  if (old_.count == 0) {
    old_ = table{};
    cursor_ = 0;
  }
}

void digest_set::insert(const dedup_entry& e) noexcept {
  if (empty(e.id)) {
    has_zero_ = true;
    zero_ = e;
    return;
  }
  if (old_.count) migrate_some();
  if (!cur_.slots) {
    cur_ = table::make(min_slots);
  } else if (2 * (cur_.count + 1) > cur_.size() && cur_.size() < max_slots_ && !old_.slots) {
    old_ = std::move(cur_);
    cur_ = table::make(old_.size() * 2);
    cursor_ = 0;
    migrate_some();
  }
  cur_.insert(e);
}

void digest_set::erase(const event_digest& d) noexcept {
  if (empty(d)) {
    has_zero_ = false;
    return;
  }
  if (!cur_.erase(d) && old_.count && old_.erase(d) && old_.count == 0) {
    old_ = table{};
    cursor_ = 0;
  }
}

void digest_set::clear() noexcept {
  cur_ = table{};
  old_ = table{};
  cursor_ = 0;
  has_zero_ = false;
}

void digest_set::reserve(std::size_t n) noexcept {
  if (size() != 0 || max_slots_ == 0) return;
  std::size_t slots = min_slots;
  while (slots < 2 * n && slots < max_slots_) slots *= 2;
  if (slots > cur_.size()) cur_ = table::make(slots);
}

dedup_window::dedup_window(std::size_t capacity) : capacity_(capacity), set_(capacity) {}

void dedup_window::insert(const dedup_entry& e) {
  if (capacity_ == 0) return;
  if (size_ < capacity_) {
    if (size_ % chunk_entries == 0)
      chunks_.push_back(std::make_unique<dedup_entry[]>(std::min(chunk_entries, capacity_ - size_)));
    at(size_++) = e;
  } else {
    if (!bulk_) set_.erase(at(head_).id);
    at(head_) = e;
    head_ = (head_ + 1) % capacity_;
    ++evictions_;
  }
  if (!bulk_) set_.insert(e);
}

void dedup_window::end_bulk() {
  if (!bulk_) return;
  bulk_ = false;
  set_.clear();
  set_.reserve(size_);
  for_each([&](const dedup_entry& e) { set_.insert(e); });
}

void dedup_window::clear() {
  chunks_.clear();
  size_ = 0;
  evictions_ = 0;
  set_.clear();
  head_ = 0;
  bulk_ = false;
}

}  // namespace statefold
