#pragma once

// Reading and recovering a partition's log. See log_format.hpp for the bytes.
//
// `scan_log` reads every segment, verifies every record (CRC, bounds, LSN order), hands each
// record at or after `from_lsn` to the visitor in LSN order, and classifies where the log
// ends. It never changes a file: `repair_log` applies what the scan decided, so that a
// read-only tool (inspect verify) and recovery share one reader.
//
// How the end of the log is classified (what a caller may assume):
//  - clean: the last valid record is followed by end of file, zeros, or stale records of a
//    recycled segment. Nothing to repair.
//  - torn tail: after the last valid record of the LAST segment there are damaged bytes and no
//    valid record with a higher LSN anywhere after them. Those bytes were never acknowledged
//    (an acknowledged record was synced whole). Under recovery_mode::tolerate_torn_tail the
//    repair truncates them and syncs; the report says how many bytes were cut and where.
//  - corruption: a damaged record with a valid record of a higher LSN after it, a gap between
//    segments, or damage in a segment that is not the last. The scan fails closed with
//    errc::corruption naming file, byte offset, LSN, and the expected and actual CRC;
//    only recovery_mode::point_in_time (an operator's explicit choice) cuts there instead,
//    discarding everything after, and reports what it discarded.
//  - an I/O error while reading is an error (errc::io_error), never an end of file.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/status.hpp"

namespace statefold {

enum class recovery_mode {
  tolerate_torn_tail,  ///< default: cut a torn tail, fail closed on anything else
  absolute,            ///< any damage, a torn tail included, is an error
  point_in_time,       ///< cut at the first damage of any kind; report what is discarded
};
const char* to_string(recovery_mode m) noexcept;

struct log_record {
  uint64_t lsn;
  log_format::record_type type;
  uint32_t partition;        ///< the partition the record belongs to
  uint64_t pseq;             ///< its sequence number within that partition
  std::string_view payload;  ///< valid only during the visitor call
  std::string_view file;     ///< segment path, for error messages
  uint64_t offset;           ///< byte offset of the record header in that file
};

using log_visitor = std::function<status(const log_record&)>;

struct segment_info {
  std::string path;
  uint64_t base_lsn = 0;
  uint64_t epoch = 0;
  uint64_t end_lsn = 0;       ///< one past the last valid record
  uint64_t valid_bytes = 0;   ///< offset just after the last valid record
  uint64_t file_bytes = 0;
};

struct log_scan {
  std::vector<segment_info> segments;  ///< in LSN order, after any point-in-time cut
  uint64_t first_lsn = 1;              ///< base LSN of the first segment
  uint64_t next_lsn = 1;               ///< LSN the next appended record will get
  uint64_t records_visited = 0;
  uint64_t bytes_read = 0;

  // What repair_log must do (all empty/zero for a clean log).
  uint64_t cut_bytes = 0;           ///< damaged bytes after the last valid record
  std::string cut_file;             ///< segment to truncate ...
  uint64_t cut_offset = 0;          ///< ... to this size
  std::vector<std::string> discard_segments;  ///< point-in-time: later segments to delete
  std::vector<std::string> stray_files;       ///< *.tmp leftovers to delete
  std::vector<std::string> free_segments;     ///< recyclable segments (free-*.seg)
  std::string damage;               ///< description of the damage that was cut, if any
  bool lsn_may_regress = false;     ///< a point-in-time cut: LSNs after it will be reused

  bool needs_repair() const {
    return cut_bytes > 0 || !discard_segments.empty() || !stray_files.empty();
  }
};

struct log_scan_options {
  uint32_t partition = 0;           ///< the lane: segment headers must name it
  /// true: a private lane, holding the one partition of the same number, so every record must
  /// name `partition` and have pseq = LSN; anything else is corruption in every recovery mode
  /// (a record in the wrong journal is never replayed).
  /// false: a shared lane: every record must name a partition p < `partitions` with
  /// p % `lanes` == `partition`, and each partition's records must number 1, 2, 3... without a
  /// gap from the first of them the lane still holds (journal_lane.hpp).
  bool single_partition = true;
  uint32_t lanes = 1;        ///< with single_partition == false
  uint32_t partitions = 1;   ///< likewise
  /// Segments that end before from_lsn are not read at all (neither checked nor visited):
  /// a partition's replay from its checkpoint's position in a lane that was scanned whole
  /// when it was opened, and whose older segments may be released meanwhile.
  bool skip_before_from = false;
  uint64_t max_epoch = UINT64_MAX;  ///< a segment with a higher epoch means we are fenced
  uint64_t from_lsn = 1;            ///< visit records with lsn >= from_lsn
  recovery_mode mode = recovery_mode::tolerate_torn_tail;
  /// Stop after this LSN, as if the log ended there: a reader beside a live writer reads only
  /// what the writer has published as durable (data_reader.hpp); the bytes after it may be a
  /// batch being written. Segments after the one holding max_lsn are not opened.
  uint64_t max_lsn = UINT64_MAX;
};

/// Reads the log in `log_dir` (which may be empty or missing: an empty log starting at 1).
result<log_scan> scan_log(file_system& fs, const std::string& log_dir,
                          const log_scan_options& options, const log_visitor& visit);

/// Applies a scan's repairs: truncates a torn tail (then syncs), deletes discarded segments
/// and stray temp files (then syncs the directory). Idempotent; safe to crash in.
status repair_log(file_system& fs, const std::string& log_dir, const log_scan& scan);

}  // namespace statefold
