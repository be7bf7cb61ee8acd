#pragma once

// source_fences: per partition, the lowest position of each source whose event was answered
// `failed` or `busy`, so that nothing later from that source is applied before it.
//
// Why: a source's consumed position is a high-water mark — everything below a partition's
// `next` for a source is a duplicate. If a partition failed (or was full) on position 10 and
// then accepted position 20, position 10 would become a "duplicate" for good: a silent loss,
// and per-key order broken. So once an event is answered failed or busy, the partition
// refuses that source's positions above it until the consumer rewinds: the first position at
// or below the fence that arrives lifts it (the consumer resumed from its durable position,
// as a Kafka consumer seeks back to its committed offset).
//
// One source is consumed by one thread, in position order (docs/semantics.md). Fences live in
// memory, in the engine (they outlive a partition's actor, whose failure sets them); a new
// process starts from the durable positions and needs none.
//
// Threading: fail() from any thread (submitters, actors, CAF's cleanup of dropped messages);
// check() from the partition's actor. A mutex, skipped by check() while no fence exists.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace statefold::detail {

class source_fences {
 public:
  /// Position `pos` of `source` was not applied: fence the source there (or lower).
  void fail(std::string_view source, uint64_t pos);
  /// The partition is about to apply position `pos` of `source`. nullopt: go ahead (a
  /// position at or below the fence lifts it). Otherwise the fence: refuse the event.
  std::optional<uint64_t> admit(std::string_view source, uint64_t pos);
  /// The fence on `source`, if any, without changing it.
  std::optional<uint64_t> fence_of(std::string_view source) const;
  bool empty() const noexcept { return !any_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> fences_;
  std::atomic<bool> any_{false};
};

}  // namespace statefold::detail
