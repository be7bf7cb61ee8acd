#pragma once

// Recovery of one partition, independent of the Model: choose the newest checkpoint that
// verifies and that its journal lane still covers, replay the partition's records after it,
// repair a torn tail (a private lane's; a shared lane is repaired once, when it is opened).
//
// In a shared lane a partition's records are found by their partition number, and numbered by
// their pseq: replay starts at the checkpoint's lane position, skips the partition's records
// up to the checkpoint's pseq, and then requires pseq + 1, + 2, ... without a gap (a gap is
// corruption, naming file, offset, LSN and the partition).
//
//  1. Checkpoints are tried newest first. One is skipped (and the skip reported) when it is
//     damaged (CRC, bounds, version), when the Model cannot decode it, or when the log no
//     longer starts early enough to continue from it. A read error fails recovery.
//     A checkpoint that verifies but covers an LSN beyond the log's end proves the log lost
//     acknowledged records: recovery fails closed, except under point-in-time recovery, which
//     falls back to an older checkpoint and deletes the ones beyond the log's end.
//  2. With no usable checkpoint, the state is rebuilt by full replay — only when the log still
//     starts at LSN 1; otherwise recovery refuses with errc::corruption and says why.
//  3. Log damage is handled by scan_log/repair_log under the partition's recovery_mode.
//     After a point-in-time cut, checkpoints beyond the new end of the log are deleted.
//
// Recovery is idempotent: crashing in the middle of it and recovering again gives the same
// state (repairs are truncations and deletions that a second run finds already done or redoes).

#include <cstdint>
#include <functional>
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

struct recovery_options {
  uint32_t partition = 0;
  /// The lane the partition's records are in. Unset (lanes == 0): a private lane of its own.
  lane_membership lane{0, 0, 0};
  uint64_t max_epoch = UINT64_MAX;
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
  /// false: read-only (inspect verify, rebuild after a throwing handler). A shared lane is never
  /// repaired here: journal_lane::open repairs it for all its partitions.
  bool repair = true;
  /// Read the log only up to this LSN (log_scan_options::max_lsn): a reader beside a live writer.
  uint64_t max_lsn = UINT64_MAX;
  std::function<void(uint64_t records, uint64_t bytes)> progress;  ///< called every ~1M records
};

struct recovery_result {
  log_scan scan;   ///< the lane's, as far as this partition's replay read it
  recovery_report report;
};

/// `log_dir`: the directory of the partition's lane.
result<recovery_result> recover_partition(file_system& fs, const std::string& log_dir,
                                          checkpoint_store& checkpoints,
                                          const recovery_options& options,
                                          const recovery_hooks& hooks);

}  // namespace statefold
