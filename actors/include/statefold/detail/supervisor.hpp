#pragma once

// The engine's supervisor: watches every partition actor and every lane flusher, restarts a
// partition that stopped with an error (recovered from disk, after a backoff that doubles up
// to a limit), stops the other partitions of a lane whose journal failed (they restart onto
// the lane reopened from disk), and activates released partitions (engine::activate).
//
// It runs detached (its own thread): recovering a partition blocks on disk I/O, which must not
// stall the CAF scheduler. It does not depend on the Model: everything it does to partitions
// and lanes goes through `supervised_engine`, which engine<Model> implements. The handles it
// watches are its own copies, never read from the engine's slots: it may still be handling a
// message after close() has cleared them.

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "statefold/detail/messages.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/status.hpp"

namespace statefold::detail {

/// The engine as its supervisor sees it.
class supervised_engine {
 public:
  virtual ~supervised_engine() = default;
  /// close() has begun: nothing is restarted or activated any more.
  virtual bool closing() const = 0;
  virtual uint32_t partition_count() const = 0;
  virtual uint32_t lane_count() const = 0;
  /// Released (engine::release, or start_released): not restarted until activated.
  virtual bool released(uint32_t p) const = 0;
  /// Writes of partition p's previous actor (a flush, a checkpoint in slices) are still in its
  /// lane flusher's hands: its directory may not be recovered yet.
  virtual bool lane_work_pending(uint32_t p) const = 0;
  virtual caf::actor flusher_of(uint32_t lane) = 0;
  /// The flusher `who` of `lane` stopped unexpectedly. True when it was the lane's current
  /// flusher (the lane is then marked broken, to be reopened from disk).
  virtual bool flusher_stopped(uint32_t lane, const caf::actor_addr& who) = 0;
  virtual bool lane_failed(uint32_t lane) = 0;
  /// Recovers partition p from disk and starts its actor, published as the partition's
  /// (`activate`: and no longer released). An error when recovery fails, or when the engine
  /// began closing meanwhile (the actor started is then stopped again).
  virtual result<caf::actor> start_partition(uint32_t p, bool activate) = 0;
  /// Outage bookkeeping (engine::partition_outage, wait_restarted).
  virtual void recovery_failed(uint32_t p, const status& why) = 0;
  virtual void restarted(uint32_t p) = 0;
};

/// engine::activate, for the supervisor: recover partition `partition` and start it.
struct activate_work final : work_item {
  uint32_t partition = 0;
  std::function<void(status)> done;
};

/// Spawns the supervisor over `partitions` (one actor per partition; null: released) and
/// `flushers` (one per lane). The engine outlives it (close() stops it first).
caf::actor spawn_supervisor(caf::actor_system& sys, supervised_engine& engine, const engine_options& options,
                            spdlog::logger& log, std::vector<caf::actor> partitions,
                            std::vector<caf::actor> flushers);

}  // namespace statefold::detail
