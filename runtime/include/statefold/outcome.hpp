#pragma once

// What happened to one event, as the engine and the stateless consumer answer it.

#include <cstdint>

namespace statefold {

/// applied: in the state (durable once acknowledged); duplicate: already applied, nothing
/// changed; conflict: the event ID was applied to this key with another body, not applied;
/// rejected: invalid, or refused by the Model's apply, not applied; failed: not answered by
/// the store or the partition (nothing is known to be durable); busy: not accepted now
/// (backpressure), nothing was done, retry later.
enum class outcome : uint8_t { applied, duplicate, conflict, rejected, failed, busy };

inline const char* to_string(outcome o) noexcept {
  switch (o) {
    case outcome::applied: return "applied";
    case outcome::duplicate: return "duplicate";
    case outcome::conflict: return "conflict";
    case outcome::rejected: return "rejected";
    case outcome::failed: return "failed";
    case outcome::busy: return "busy";
  }
  return "unknown";
}

}  // namespace statefold
