#pragma once

// Recovery, independent of the Model, in two parts that inspect shares:
//
// The plan (plan_partition): which checkpoint each partition starts from, where in its lane its
// replay begins, and why every newer checkpoint was passed over. statefold-inspect prints the
// same plan from what it has read, so the two never disagree about the rules:
//  1. Checkpoints are tried newest first. One is skipped (and the skip reported) when it is
//     damaged (CRC, bounds, version), when the Model cannot decode it, when it records a
//     position in another lane, or when the lane no longer starts early enough to continue
//     from it (unless it is the partition's seal: a released partition's lane kept nothing for
//     it since, checkpoint.hpp). A read error fails recovery.
//  2. With no usable checkpoint, the state is rebuilt by full replay — only when the lane can
//     still hold all of the partition's history; otherwise recovery refuses with
//     errc::corruption and says why.
//  3. After the scan, a checkpoint that verified but covers an LSN beyond the lane's end proves
//     the lane lost acknowledged records (covers_beyond_end): recovery fails closed, except
//     under point-in-time recovery, which falls back to an older checkpoint and deletes the
//     ones beyond the lane's end.
//
// The execution (recover_lane): every partition of a lane loads its checkpoint (in parallel),
// then each of up to `threads` threads reads the lane and applies its share of the partitions
// as it reads (partition k on thread k mod n): the lane is read n times at most, whatever the
// partition count. The first thread reads from the lane's start when the caller opens the lane
// from that scan (the engine at open: the scan also finds the torn tail); every other read
// starts at the oldest position its partitions need. A partition's records are found by their partition
// number and numbered by their pseq: its replay skips its records up to the checkpoint's pseq,
// then requires pseq + 1, + 2, ... without a gap (a gap is corruption, naming file, offset,
// LSN and the partition). Log damage is handled by scan_log/repair_log under recovery_mode.
//
// Recovery is idempotent: crashing in the middle of it and recovering again gives the same
// state (repairs are truncations and deletions that a second run finds already done or redoes).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "statefold/checkpoint.hpp"
#include "statefold/file_system.hpp"
#include "statefold/journal_lane.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/status.hpp"

namespace statefold {

/// What recovery did, for logs and stats. One line: summary().
struct recovery_report {
  uint32_t partition = 0;
  bool used_checkpoint = false;
  uint64_t checkpoint_lsn = 0;
  uint64_t events_replayed = 0;
  uint64_t bytes_read = 0;
  uint64_t next_lsn = 1;             ///< the partition's next pseq (its next "LSN")
  uint64_t bytes_cut = 0;
  std::string damage;                ///< what was cut (torn tail or point-in-time), if anything
  std::vector<std::string> notes;    ///< fallbacks, removed leftovers, discarded segments
  uint64_t entities = 0;
  double seconds = 0;                ///< the whole recovery
  double checkpoint_seconds = 0;     ///< reading, verifying and loading checkpoints
  double replay_seconds = 0;         ///< scanning the log and replaying its tail
  std::string summary() const;
};

struct recovery_hooks {
  /// Replace the in-memory state with a checkpoint's content. An error skips the checkpoint.
  std::function<status(const loaded_checkpoint&)> load_checkpoint;
  /// Reset to the empty state (before a full replay).
  std::function<void()> reset;
  /// Apply one replayed record. An error aborts recovery.
  log_visitor replay;
  /// Called once the state to replay onto is loaded (or reset), before the first record.
  std::function<void()> before_replay;
};

// -- The plan -----------------------------------------------------------------------------------

/// What the plan needs to know of the lane before reading it.
struct lane_facts {
  std::string log_dir;     ///< for messages
  uint32_t lane = 0;
  bool shared = false;     ///< more than one partition writes to it
  uint64_t first_lsn = 0;  ///< base LSN of its first segment; 0 when it has none
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
};

/// The lane LSN of the first segment in `log_dir`, 0 when there is none (or no directory).
result<uint64_t> first_segment_lsn(file_system& fs, const std::string& log_dir);

/// What a verified checkpoint records about the lane.
struct checkpoint_position {
  uint64_t lsn = 0;       ///< the partition's records up to this pseq are in it
  uint32_t lane = 0;
  uint64_t position = 0;  ///< lane LSN its replay starts from
  std::string path;
};

/// One partition's recovery, decided.
struct partition_plan {
  uint32_t partition = 0;
  std::optional<checkpoint_position> start;  ///< nullopt: from the empty state (full replay)
  bool sealed = false;     ///< `start` is the partition's seal (it was released)
  uint64_t from_lsn = 1;   ///< its replay reads the lane from here
  uint64_t after_pseq = 0; ///< its records up to this pseq are in the start state
  std::vector<std::string> notes;  ///< checkpoints passed over, and why
  /// "checkpoint 40000 (replay from LSN 38211)" or "full replay from LSN 1".
  std::string describe() const;
};

/// Steps of the plan that touch the checkpoints. verify: reads and checks checkpoint `lsn`
/// (recovery: checkpoint_store::load; inspect: what it read); an io_error aborts the plan,
/// any other error passes over the checkpoint with a note. load (may be null): makes it the
/// state to replay onto (recovery: the Model decodes it); an error passes over it too.
struct checkpoint_steps {
  std::function<result<checkpoint_position>(uint64_t lsn)> verify;
  std::function<status(uint64_t lsn)> load;
};

/// Chooses the partition's start from its checkpoints (newest first), or refuses
/// (errc::corruption, saying why) when no state can be rebuilt.
result<partition_plan> plan_partition(uint32_t partition, const lane_facts& lane,
                                      const std::vector<uint64_t>& checkpoints_newest_first,
                                      std::optional<uint64_t> sealed, const checkpoint_steps& steps);

/// Rule 3: when the verified checkpoint `c` covers the lane beyond the end `scan` found (the
/// lane lost acknowledged records, or the checkpoint is wrong), what is missing; else nullopt.
std::optional<std::string> covers_beyond_end(const checkpoint_position& c, bool shared, const log_scan& scan);

// -- The execution ----------------------------------------------------------------------------

/// One partition's part in its lane's recovery.
struct partition_recovery {
  uint32_t partition = 0;
  checkpoint_store* checkpoints = nullptr;
  recovery_hooks hooks;
  std::function<void(uint64_t records, uint64_t bytes)> progress;  ///< every ~1M records applied
};

struct lane_recovery_options {
  /// The lane's membership. Unset (lanes == 0): the private lane of the one partition.
  lane_membership lane{0, 0, 0};
  uint64_t max_epoch = UINT64_MAX;
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
  /// false: read-only (inspect, data_reader). true: checkpoints beyond a point-in-time cut
  /// are deleted, and the lane's damage repaired when `opening`.
  bool repair = true;
  /// true: the lane is not open yet; it is read whole (every record checked, the torn tail
  /// found: the caller opens the lane from the scan, journal_lane::open_scanned). false: the
  /// lane is open elsewhere (a partition restarted beside its writer) or only read: only what
  /// the partitions need is read, up to max_lsn.
  bool opening = true;
  /// Read the log only up to this LSN (log_scan_options::max_lsn): a reader beside a live writer.
  uint64_t max_lsn = UINT64_MAX;
  /// The lane is read, and its partitions applied, by up to this many threads (1: the caller's).
  unsigned threads = 1;
};

struct lane_recovery_result {
  log_scan scan;                         ///< the lane's, as far as it was read
  std::vector<recovery_report> reports;  ///< one per partition, in the order given
};

/// Recovers `parts`, which are partitions of the lane in `log_dir`, by one read of it.
/// Errors name the partition they concern.
result<lane_recovery_result> recover_lane(file_system& fs, const std::string& log_dir,
                                          const lane_recovery_options& options,
                                          std::vector<partition_recovery>& parts);

struct recovery_options {
  uint32_t partition = 0;
  /// The lane the partition's records are in. Unset (lanes == 0): a private lane of its own.
  lane_membership lane{0, 0, 0};
  uint64_t max_epoch = UINT64_MAX;
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
  /// As lane_recovery_options::repair. A shared lane is never repaired for one partition:
  /// journal_lane::open (or the engine's recover_lane) repairs it for all its partitions.
  bool repair = true;
  /// Read the log only up to this LSN (log_scan_options::max_lsn): a reader beside a live writer.
  uint64_t max_lsn = UINT64_MAX;
  std::function<void(uint64_t records, uint64_t bytes)> progress;  ///< called every ~1M records
};

struct recovery_result {
  log_scan scan;   ///< the lane's, as far as this partition's replay read it
  recovery_report report;
};

/// One partition alone: recover_lane with one part. `log_dir`: the directory of its lane.
result<recovery_result> recover_partition(file_system& fs, const std::string& log_dir,
                                          checkpoint_store& checkpoints,
                                          const recovery_options& options,
                                          const recovery_hooks& hooks);

}  // namespace statefold
