#pragma once

// Baselines for the partition-scaling benchmark: the same generated events through what people
// would otherwise build, measured in the same run as statefold.
//
//   redis    the "seed" design: statefold::stateless_consumer over statefold::stores::
//            redis_store, keeping per-key state and the processed event IDs in a private
//            redis-server (AOF on); per group one read round trip and one atomic commit
//   rocksdb  the embedded-store design (Kafka Streams / kspp): an in-process RocksDB with its
//            WAL, read-modify-write per event, one WriteBatch per group
//
// Both split the events among `clients` threads by the pinned key hash (statefold::key_hash),
// so one key is always handled by one client and per-key order is kept. The split happens
// before the clock starts.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../counter_model.hpp"
#include "statefold/status.hpp"

namespace statefold::bench {

/// When a group counts as acknowledged.
enum class store_durability {
  sync,      ///< on disk: Redis appendfsync always; RocksDB WriteOptions::sync
  interval,  ///< on disk within a bounded delay: Redis appendfsync everysec (acknowledged when
             ///< the reply arrives, i.e. NOT yet on disk); RocksDB SyncWAL every 5 ms, and the
             ///< group waits for the first SyncWAL that starts after its write
  none,      ///< in the store's memory / OS page cache only
};

const char* to_string(store_durability d) noexcept;

struct baseline_options {
  store_durability durability = store_durability::sync;
  /// Events per pipelined group / write batch; a group is acknowledged as a whole.
  std::size_t group = 256;
  /// Consumer threads (each its own connection); events are split among them by a stable hash
  /// of the key, so one key is always handled by one client (per-key order kept).
  int clients = 2;
  /// 0: closed loop (max throughput); > 0: open loop, total offered events/s across clients.
  double rate_per_s = 0;
  /// Scratch directory on the disk under test (created; the caller removes it).
  std::string dir;
  /// Redis: after the run, kill the server and time its restart until a consumer is ready
  /// (baseline_result::recovery_seconds).
  bool measure_recovery = false;
};

struct baseline_result {
  double events_per_s = 0;
  /// Per group: from the group's INTENDED send time (open loop: t0 + n*interval; closed loop:
  /// when it was sent) until all its events are durable per the durability level.
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
  uint64_t applied = 0, duplicates = 0;
  /// Bytes the store wrote to storage during the timed run / events (source in `note`).
  double bytes_written_per_event = 0;
  /// Store memory (Redis) or footprint (RocksDB) per distinct key; approximate (see `note`).
  double bytes_per_entity = 0;
  /// Redis: the server's VmHWM; RocksDB: 0 (in-process, the caller measures).
  uint64_t peak_rss_bytes = 0;
  /// One line: how the store was configured and where the byte figures come from.
  std::string note;

  // Extras beyond the brief, for the report.
  uint64_t groups = 0;                ///< groups acknowledged (latency samples)
  double seconds = 0;                 ///< the timed region
  uint64_t distinct_keys = 0;         ///< the denominator of bytes_per_entity
  /// Growth of the store's files during the run / events (AOF files, or the RocksDB directory):
  /// logical bytes, next to bytes_written_per_event, which counts dirtied pages.
  double file_growth_per_event = 0;
  /// measure_recovery: kill -9 of the server to a consumer ready on the restarted one.
  double recovery_seconds = 0;
};

/// Starts a private redis-server from PATH (posix_spawn) on a free loopback port with its AOF
/// in `o.dir`, runs the events through it, and always shuts it down (also on error).
/// Blocking; safe to call from any one thread at a time.
result<baseline_result> run_redis_baseline(const baseline_options& o,
                                           const std::vector<counter_model::event>& events);

/// Opens a fresh RocksDB at `o.dir`/rocksdb, runs the events through it, closes it (outside
/// the timed region). Blocking.
result<baseline_result> run_rocksdb_baseline(const baseline_options& o,
                                             const std::vector<counter_model::event>& events);

}  // namespace statefold::bench
