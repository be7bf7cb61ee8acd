#pragma once

// log_writer: appends records to a partition's log and makes them durable.
//
// append() encodes a record into an in-memory buffer and assigns its LSN; nothing touches the
// disk. sync() writes everything buffered (one pwrite per segment touched) and fdatasyncs it;
// when it returns a value, every record up to that LSN is durable. Group commit is the caller
// batching appends between syncs.
//
// Segments are preallocated (zero-filled) when created, so that fdatasync does not also have
// to journal a growing file size, and recycled: a segment that no checkpoint needs any more
// becomes free-<n>.seg and is reused for a later base LSN. A segment is created as a temp
// file, filled, synced, renamed and its directory synced before any record goes into it.
// Records of an older segment are synced before the next segment is created, so a log with a
// later segment never misses records at the end of an earlier one.
//
// Failure is permanent: after any failed write, sync or segment operation the writer refuses
// all further work and reports the first error (file, offset). It never retries an fsync and
// trusts it: Linux may have dropped the dirty pages already ("fsyncgate"). Recovery from disk
// by a new writer is the only way forward.
//
// Threading: single-threaded; the owner serialises all calls.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/status.hpp"

namespace statefold {

struct log_options {
  uint64_t segment_bytes = 64ull << 20;   ///< roll when the next record would not fit
  uint32_t max_record_bytes = 1u << 20;   ///< larger payloads are refused (invalid_argument)
  bool preallocate = true;                ///< zero-fill a new segment to segment_bytes
  std::size_t max_free_segments = 2;      ///< released segments kept for recycling
  /// Called before a new segment is created; an error (e.g. errc::fenced when the MANIFEST
  /// names a newer epoch) fails the writer.
  std::function<status()> fence_check;
};

class log_writer {
 public:
  /// Continues the log that `scan` describes (after repair_log): appends go after its last
  /// valid record; an empty log starts a segment at `scan.next_lsn`.
  static result<std::unique_ptr<log_writer>> open(file_system& fs, std::string log_dir,
                                                  uint32_t partition, uint64_t epoch,
                                                  const log_scan& scan, log_options options);
  ~log_writer();
  log_writer(const log_writer&) = delete;
  log_writer& operator=(const log_writer&) = delete;

  /// Buffers one record and returns its LSN. Fails only for an oversized payload or a failed
  /// writer. Not durable until sync() covers it.
  result<uint64_t> append(log_format::record_type type, std::string_view payload);

  /// Writes and fdatasyncs everything appended. Returns the durable LSN (0 when nothing was
  /// ever durable). On error the writer is failed for good.
  result<uint64_t> sync();

  /// Deletes or recycles every segment whose records all have LSN < `lsn`; never the segment
  /// being written. Call only when nothing is buffered (after sync()).
  status release_before(uint64_t lsn);

  uint64_t next_lsn() const noexcept { return next_lsn_; }
  uint64_t durable_lsn() const noexcept { return durable_lsn_; }
  std::size_t buffered_bytes() const noexcept;
  std::size_t segment_count() const noexcept { return segments_.size(); }
  /// ok while healthy; else the error that failed the writer.
  const status& failure() const noexcept { return failure_; }
  const std::string& log_dir() const noexcept { return log_dir_; }

 private:
  struct segment {
    uint64_t base;
    std::string path;
  };
  struct piece {
    uint64_t base;                  // segment the bytes belong to
    std::shared_ptr<file> f;        // null until the segment is created (by sync)
    uint64_t offset;                // file offset of bytes[0]
    std::string bytes;
    uint64_t last_lsn;              // LSN of the last record in bytes
  };

  log_writer(file_system& fs, std::string log_dir, uint32_t partition, uint64_t epoch,
             log_options options);
  result<std::shared_ptr<file>> create_segment(uint64_t base);
  status fail(status st);
  std::string segment_header(uint64_t base) const;

  file_system& fs_;
  std::string log_dir_;
  uint32_t partition_;
  uint64_t epoch_;
  log_options options_;
  std::vector<segment> segments_;     // existing segments, LSN order
  std::vector<std::string> free_;     // recyclable segment paths
  std::vector<piece> pieces_;         // buffered bytes, oldest first; back() is being appended
  uint64_t next_lsn_ = 1;
  uint64_t durable_lsn_ = 0;
  uint64_t free_seq_ = 0;
  status failure_;
};

}  // namespace statefold
