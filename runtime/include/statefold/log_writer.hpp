#pragma once

// log_writer: appends records to a partition's log and makes them durable.
//
// append() encodes a record into an in-memory buffer and assigns its LSN; nothing touches the
// disk. take_batch() hands everything appended so far to persist(), which writes it (one
// pwrite per segment touched) and fdatasyncs it; when persist() returns a value, every record
// up to that LSN is durable. sync() is take_batch() + persist(). Group commit is the caller
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
// Threading: two roles. The OWNER calls append(), append_with(), take_batch(), next_lsn().
// The PERSISTER calls persist() and release_before(), one call at a time, on batches in the
// order take_batch() produced them. The roles may be two threads (the actor runtime puts
// fsync on a writer thread of its own) or one (sync()). durable_lsn() and failed() may be
// read from anywhere.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"
#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/status.hpp"

namespace statefold {

class segment_preparer;

struct log_options {
  uint64_t segment_bytes = 64ull << 20;   ///< roll when the next record would not fit
  uint32_t max_record_bytes = 1u << 20;   ///< larger payloads are refused (invalid_argument)
  bool preallocate = true;                ///< zero-fill a new segment to segment_bytes
  std::size_t max_free_segments = 2;      ///< released segments kept for recycling
  /// With preallocate: builds the next segment (as a free segment) in the background once the
  /// current one is half full, so that a roll does not stall the persister. nullptr: a
  /// segment is made when the first record for it is persisted. (segment_preparer.hpp)
  std::shared_ptr<segment_preparer> preparer;
  /// Called before a new segment is created; an error (e.g. errc::fenced when the MANIFEST
  /// names a newer epoch) fails the writer.
  std::function<status()> fence_check;
  /// Where to publish the durable LSN after every persist, for readers in other processes
  /// (live_progress.hpp); empty: nowhere.
  std::string progress_file;
};

/// How persist() makes a batch durable.
enum class persist_mode {
  fdatasync,    ///< write, then fdatasync: survives power loss
  write_only,   ///< write(2) only: survives a process crash, not a power loss
};

/// Records taken from the owner, on their way to disk. Move-only; persist() consumes it.
class log_batch {
 public:
  bool empty() const noexcept { return pieces_.empty(); }
  uint64_t last_lsn() const noexcept { return last_lsn_; }  ///< 0 when it holds no record
  std::size_t bytes() const noexcept;

 private:
  friend class log_writer;
  struct segment_slot {  // one segment; its file is opened or created by the persister
    uint64_t base;
    std::shared_ptr<file> f;
  };
  struct piece {
    std::shared_ptr<segment_slot> seg;
    uint64_t offset;     // file offset of bytes[0]
    std::string bytes;
  };
  std::vector<piece> pieces_;
  uint64_t last_lsn_ = 0;
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

  // -- owner ----------------------------------------------------------------------------------

  /// Buffers one record and returns its LSN. Fails only for an oversized payload or a failed
  /// writer. Not durable until a persist() covers it.
  result<uint64_t> append(log_format::record_type type, std::string_view payload);

  /// Like append(), but `encode(std::string& out)` appends the payload straight into the log
  /// buffer (no intermediate copy). An oversized payload is taken back out and refused.
  template <class Encode>
  result<uint64_t> append_with(log_format::record_type type, Encode&& encode);

  /// Appends records that a partition encoded with log_format::encode_record(), in order: each
  /// is copied into the journal with the next LSN and its CRC. Returns the LSN of the last
  /// (next_lsn() - 1 when `records` is empty). A buffer that does not frame exactly into
  /// records, or with a payload over max_record_bytes, is refused whole (invalid_argument),
  /// nothing appended. (Records appended with append()/append_with() belong to the writer's
  /// own partition, with pseq = LSN; a journal read as one partition's, as every journal is
  /// today (log_scan_options::single_partition), accepts no other record.)
  result<uint64_t> append_encoded(std::string_view records);

  /// Withdraws the record the last append returned, as if it had never been appended (its
  /// LSN is reused). Only before take_batch() has taken it; for a handler that refused it.
  void unappend_last();

  /// Moves everything appended so far into a batch for persist(). Cheap; no I/O.
  log_batch take_batch();

  uint64_t next_lsn() const noexcept { return next_lsn_; }
  /// Records appended but not yet taken.
  std::size_t buffered_bytes() const noexcept;

  // -- persister ------------------------------------------------------------------------------

  /// Writes the batch (creating segments as needed) and, in fdatasync mode, syncs it. Returns
  /// the durable LSN. On error the writer is failed for good.
  result<uint64_t> persist(log_batch& batch, persist_mode mode = persist_mode::fdatasync);

  /// Deletes or recycles every segment whose records all have LSN < `lsn` and that is not the
  /// newest segment. Call only when every record below `lsn` has been persisted.
  status release_before(uint64_t lsn);
  std::size_t segment_count() const;
  /// The base LSN of the second-oldest segment: releasing the oldest one needs every record
  /// below it to be no longer needed. UINT64_MAX while there is one segment or none.
  uint64_t second_segment_base() const noexcept { return second_base_.load(); }
  /// Segments made ahead by log_options::preparer and taken into the free list so far.
  uint64_t prepared_segments() const noexcept { return prepared_.load(std::memory_order_relaxed); }

  // -- either ---------------------------------------------------------------------------------

  /// take_batch() + persist(): for single-threaded use.
  result<uint64_t> sync() {
    log_batch b = take_batch();
    return persist(b);
  }
  uint64_t durable_lsn() const noexcept { return durable_lsn_.load(std::memory_order_acquire); }
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  /// ok while healthy; else the error that failed the writer.
  status failure() const;
  const std::string& log_dir() const noexcept { return log_dir_; }

 private:
  using segment_slot = log_batch::segment_slot;
  using piece = log_batch::piece;

  log_writer(file_system& fs, std::string log_dir, uint32_t partition, uint64_t epoch,
             log_options options);
  result<std::shared_ptr<file>> create_segment(uint64_t base);
  // The segment being prepared ahead (log_options::preparer), if any.
  struct spare;
  void maybe_prepare_spare(uint64_t segment_used);
  void collect_spare(bool wait);
  status fail(status st);
  std::string segment_header(uint64_t base) const;
  // Starts a record in the current piece (rolling first if `size` will not fit); returns the
  // offset of its header in the piece's bytes.
  std::size_t begin_record(std::size_t size_hint);
  void finish_record(std::size_t at, log_format::record_type type);
  // Stamps LSN and CRC on a record whose other header fields are set.
  void seal_record(std::size_t at);

  file_system& fs_;
  const std::string log_dir_;
  const uint32_t partition_;  // the lane: the partition whose journal this is
  const uint64_t epoch_;
  const log_options options_;

  // Owner side.
  std::vector<piece> pending_;          // rolled-over pieces not taken yet
  piece cur_;                           // the piece being appended to
  bool cur_announced_ = false;          // cur_.seg has been handed to the persister
  uint64_t next_lsn_ = 1;
  std::size_t last_record_at_ = 0;      // offset in cur_.bytes of the last record appended
  bool can_unappend_ = false;
  std::size_t last_batch_bytes_ = 0;    // to reserve the next buffer

  // Persister side.
  struct segment {
    uint64_t base;
    std::string path;
  };
  std::vector<segment> segments_;       // existing segments, LSN order
  std::vector<std::string> free_;       // recyclable segment paths
  uint64_t free_seq_ = 0;
  std::shared_ptr<spare> spare_;        // a job on options_.preparer, until collected
  std::unique_ptr<file> progress_;      // options_.progress_file, if any
  void publish_progress();

  // Shared.
  std::atomic<uint64_t> durable_lsn_{0};
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mu_;
  status failure_;
  std::atomic<std::size_t> segment_count_{0};
  std::atomic<uint64_t> second_base_{UINT64_MAX};
  void publish_segments();  // persister: segment_count_ and second_base_ from segments_
  std::atomic<uint64_t> prepared_{0};
};

template <class Encode>
result<uint64_t> log_writer::append_with(log_format::record_type type, Encode&& encode) {
  if (failed()) return failure();
  std::string& b = cur_.bytes;
  const std::size_t at = b.size();
  b.resize(at + log_format::record_header_size);
  encode(b);
  const std::size_t payload = b.size() - at - log_format::record_header_size;
  if (payload > options_.max_record_bytes) {
    b.resize(at);
    return status{errc::invalid_argument, "record of " + std::to_string(payload) +
                                              " bytes exceeds max_record_bytes " +
                                              std::to_string(options_.max_record_bytes)};
  }
  if (cur_.offset + b.size() > options_.segment_bytes) {
    // It does not fit: the record starts the next segment.
    std::string record = b.substr(at);
    b.resize(at);
    begin_record(record.size());
    cur_.bytes.append(record);
    finish_record(cur_.bytes.size() - record.size(), type);
  } else {
    finish_record(at, type);
  }
  return next_lsn_++;
}

}  // namespace statefold
