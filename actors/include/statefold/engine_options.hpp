#pragma once

// Options and result types of engine<Model> (engine.hpp). CAF-free, so that services can
// build options without including CAF.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/histogram.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/partitioner.hpp"

namespace spdlog {
class logger;
}

namespace statefold {

/// When an applied event is acknowledged.
enum class durability {
  sync,      ///< after the fdatasync that covers it (group commit). Survives power loss.
  interval,  ///< a background fdatasync every sync_interval; acks still wait for it.
  none,      ///< after write(2), before any fdatasync. Survives a process crash, NOT power loss.
};
const char* to_string(durability d) noexcept;

/// What submit does when a partition has max_in_flight events in flight.
enum class backpressure {
  wait,    ///< block the submitting thread until there is room
  reject,  ///< answer those events `busy` at once; nothing is logged
};

struct engine_options {
  std::string dir = "./statefold-data";
  uint32_t partitions = 4;
  /// Journal lanes the partitions share (journal_lane.hpp): partition p writes to lane
  /// p % lanes, each lane one file stream with one fdatasync per commit round for all its
  /// partitions. 0: the directory's own count, 1 for a new directory. Fixed when a directory is
  /// made: another count is refused (errc::config_mismatch).
  uint32_t lanes = 0;
  uint32_t key_groups = default_key_groups;
  durability mode = durability::sync;
  std::chrono::milliseconds sync_interval{5};        ///< for durability::interval
  /// Event identities (key, event ID) remembered per partition. A property of the data: the
  /// MANIFEST records it. nullopt (the default): the directory's window, 262,144 for a new
  /// directory. A larger value grows it; a smaller one is refused (errc::config_mismatch).
  std::optional<std::size_t> dedup_window;
  /// A window of 0 switches deduplication by event ID off: a redelivered event without a
  /// source position is applied again. Refused unless this is set.
  bool allow_no_dedup = false;
  /// Entities expected in all; each partition makes room for its share (plus 1/8) up front,
  /// instead of rehashing its whole map each time it doubles (a pause of tens of ms at a
  /// million keys). 0: grow as needed.
  uint64_t expected_entities = 0;
  uint64_t checkpoint_every_events = 1'000'000;      ///< per partition; 0: not by count
  std::chrono::seconds checkpoint_every{300};        ///< per partition; 0: not by time
  bool checkpoint_on_close = true;
  std::size_t threads = 0;                           ///< CAF worker threads; 0: one per core
  std::size_t max_throughput = 16;                   ///< messages per actor turn (fairness)
  std::size_t max_in_flight = 1u << 17;              ///< submitted, not yet answered, per partition
  backpressure when_full = backpressure::wait;
  recovery_mode recovery = recovery_mode::tolerate_torn_tail;
  /// Segment size, record size limit, recycling, preparing segments ahead. segment_bytes 0
  /// (the default here): engine_segment_bytes(lanes). preparer nullptr (the default):
  /// the engine runs one segment_preparer shared by its lanes.
  log_options log = [] {
    log_options l;
    l.segment_bytes = 0;
    return l;
  }();
  std::chrono::milliseconds restart_backoff{50};     ///< first restart delay; doubles ...
  std::chrono::milliseconds restart_backoff_max{5000};  ///< ... up to this; and after
  std::chrono::milliseconds restart_backoff_reset_after{30000};  ///< this long up, from the start
  std::size_t keep_checkpoints = 2;                  ///< per partition; at least 2
  /// Every partition starts released (engine::release): none takes events until
  /// engine::activate starts it. For a source that owns some partitions at a time (Kafka
  /// consumer groups). A partition not released before is recovered, checkpointed and sealed
  /// at open, so that its lane keeps nothing for it while it is away.
  bool start_released = false;
  /// A journal lane's size limit, as RocksDB's max_total_wal_size: above it, every partition
  /// that still needs the lane's oldest segment checkpoints at its next tick (within a
  /// second), even with no new event (it logs a no-op record first, so that the checkpoint
  /// is newer than its last one), until the segment can go: keep_checkpoints rounds at most
  /// (2 by default; segments are released past the oldest checkpoint a partition keeps). A
  /// checkpoint that fails is not retried for the limit for 30 s. 0: no limit (an
  /// idle partition then keeps every segment written after its checkpoint). Raised to two
  /// segments when it is less.
  uint64_t max_lane_bytes = 1ull << 30;
  /// Where the bytes go; nullptr: the real disk. Tests pass a fault_file_system.
  file_system* fs = nullptr;
  /// Where the engine logs (recoveries, restarts, failures); nullptr: spdlog's default.
  /// make_stderr_logger(name, log_style::json) (log.hpp) writes JSON lines whose fields name
  /// the partition and LSN a line is about.
  std::shared_ptr<spdlog::logger> logger;
};

/// The engine's default segment size: 256 MiB of preallocated log in all, between 4 MiB and
/// 64 MiB per journal lane (64 MiB up to 4 lanes, 4 MiB at 64). Each new segment is
/// zero-filled, so 64 lanes of 64 MiB would write 4 GiB before the first event.
constexpr uint64_t engine_segment_bytes(uint32_t lanes) {
  const uint64_t share = (256ull << 20) / (lanes ? lanes : 1);
  return share < (4ull << 20) ? (4ull << 20) : share > (64ull << 20) ? (64ull << 20) : share;
}

/// The answer for one submitted event. `applied` and `duplicate` arrive only once the event
/// (or, for a duplicate, everything the partition had applied when it saw it) is durable
/// under the configured durability.
struct submit_result {
  outcome kind = outcome::failed;
  uint64_t lsn = 0;          ///< for applied
  uint32_t partition = 0;
  std::string reason;        ///< for everything but applied
  std::string_view verdict;  ///< for applied: the business verdict of Model::apply, if any
};

/// Per-lane figures, from engine::lane_stats().
struct engine_lane_stats {
  uint32_t lane = 0;
  uint64_t durable_lsn = 0;   ///< the lane's last durable record
  uint64_t segments = 0;
  uint64_t rounds = 0;        ///< commit rounds (one write and one fdatasync each) since it opened
  uint64_t bytes = 0;         ///< segments on disk × segment size (engine_options::max_lane_bytes)
  std::string recovery;       ///< what opening it found and did, one line
};

/// Per-partition figures, from engine::stats().
struct engine_partition_stats {
  uint32_t partition = 0;
  bool active = true;              ///< false: released (engine::release); nothing below is filled
  partition_stats core;            ///< applied, duplicates, rejected, LSNs, checkpoints, dedup
  uint64_t in_flight = 0;          ///< submitted, not answered yet
  uint64_t waiting_for_sync = 0;   ///< batches applied, waiting for their sync
  uint64_t syncs = 0;              ///< persist calls completed (group commits)
  latency_histogram persist_latency;     ///< per group commit: the write and its fdatasync
  latency_histogram ack_latency;         ///< per event: taken by the partition -> answered
  latency_histogram checkpoint_latency;  ///< per checkpoint: handed to the flusher -> durable
  uint64_t checkpoint_bytes = 0;         ///< size of the last checkpoint written
  uint64_t restarts = 0;           ///< times the partition was restarted after a failure
  std::string failure;             ///< empty while healthy
  recovery_report recovery;        ///< the last recovery of this partition
  /// Per source, how far it is durably consumed: every position below `next` is durable
  /// (or was a duplicate) — safe to commit upstream, and where a rerun resumes.
  std::map<std::string, source_progress> committed_sources;
};

}  // namespace statefold
