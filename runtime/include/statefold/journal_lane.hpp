#pragma once

// journal_lane: one journal shared by the partitions assigned to it, and partition_journal,
// a partition's side of it.
//
// A partition frames its records itself (log_format::encode_record: its number, its own
// sequence number `pseq`, type, payload) into a buffer; nothing touches the lane until the
// buffer is committed. commit() copies a partition's records into the lane's log_writer, which
// gives each its LSN (its position in the lane) and CRC, and makes them durable. Commits from
// several threads group: a caller that arrives while another commit is writing waits, and the
// next commit takes every waiting caller's records at once, one write and one fdatasync for all
// of them, however many partitions had records in it (leader/follower, as LevelDB's writer
// queue). With one partition per lane, a commit is exactly log_writer::sync().
//
// Segment release (ScyllaDB's commitlog, RocksDB's WAL for several column families): each
// partition tells the lane from which LSN on it still needs it (need_from: the position of its
// oldest kept checkpoint); a segment is released only when every partition of the lane is past
// it. A partition that has said nothing yet pins the whole lane. One that needs nothing (no
// records and no checkpoint yet) is pinned again by its first commit, at the LSN its first
// record gets, before any release could pass it.
//
// Failure is the log_writer's: permanent, for every partition of the lane. Recovery from disk
// (a new lane over a fresh scan) is the only way forward.
//
// Threading: commit(), need_from(), durable_lsn(), failed() and failure() from any thread.
// A partition_journal has an OWNER (append, unappend_last, take) and a PERSISTER (persist),
// as log_writer has.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/status.hpp"

namespace statefold {

/// Which partitions a lane holds: those p < partitions with p % lanes == lane. One lane per
/// partition (lanes == partitions) is a private lane: its records must have pseq == LSN.
struct lane_membership {
  uint32_t lane = 0;
  uint32_t lanes = 1;
  uint32_t partitions = 1;
  bool holds(uint32_t partition) const noexcept {
    return partition < partitions && partition % lanes == lane;
  }
  bool is_private() const noexcept { return lanes == partitions; }
  /// The private lane of a partition that is alone (a partition_state opened by itself).
  static lane_membership alone(uint32_t partition) { return {partition, partition + 1, partition + 1}; }
  /// How scan_log checks a lane's records (log_scan_options::lane).
  void apply_to(log_scan_options& o) const {
    o.partition = lane;
    o.single_partition = is_private();
    o.lanes = lanes;
    o.partitions = partitions;
  }
};

/// Records of one partition, framed with log_format::encode_record, on their way to a lane.
struct lane_chunk {
  uint32_t partition = 0;
  uint64_t last_pseq = 0;  ///< pseq of the last record; 0 when `bytes` is empty
  std::string bytes;
  bool empty() const noexcept { return bytes.empty(); }
};

class journal_lane {
 public:
  struct options {
    lane_membership membership;
    uint64_t epoch = 1;
    recovery_mode mode = recovery_mode::tolerate_torn_tail;
    log_options log;
    /// Above this many bytes of segments, the partitions that hold the oldest segment are
    /// asked to checkpoint (holds_back), as RocksDB's max_total_wal_size. 0: no limit.
    uint64_t max_bytes = 0;
  };

  /// Scans the lane in `log_dir` (every record checked: CRC, LSN order, membership, each
  /// partition's pseq without gaps), repairs a torn tail, and opens it for appending. The
  /// scan (what was cut, where the lane starts and ends) is recovered().
  static result<std::shared_ptr<journal_lane>> open(file_system& fs, std::string log_dir, options o);
  /// The same after a scan the caller has made and repaired (a private lane, recovered with
  /// its one partition in the same pass).
  static result<std::shared_ptr<journal_lane>> open_scanned(file_system& fs, std::string log_dir,
                                                            options o, log_scan scan);
  journal_lane(const journal_lane&) = delete;
  journal_lane& operator=(const journal_lane&) = delete;

  /// Appends the chunk's records and makes them durable, together with every other caller's
  /// that arrived meanwhile. Returns the lane's durable LSN. An empty chunk just waits for the
  /// commit in progress (if any) and syncs what is pending. An invalid chunk (bad framing, a
  /// partition not of this lane) is refused alone (invalid_argument); a write or sync error
  /// fails the lane for good and is returned to every caller of that round.
  result<uint64_t> commit(lane_chunk& chunk, persist_mode mode = persist_mode::fdatasync);
  /// The same for several chunks at once, as one caller (a lane's flusher, which collects its
  /// partitions' chunks itself): `each[i]` is chunk i's status (an invalid chunk fails alone).
  /// Returns the lane's durable LSN, or the round's error (then every `each[i]` has it too).
  result<uint64_t> commit_all(const std::vector<lane_chunk*>& chunks, persist_mode mode,
                              std::vector<status>& each);

  /// From `lsn` on, `partition` still needs the lane (UINT64_MAX: nothing). Segments every
  /// partition is past are released at once (or by the commit in progress).
  status need_from(uint32_t partition, uint64_t lsn);

  /// Whether `partition` should checkpoint now so that the lane can shrink: the lane holds
  /// more than options::max_bytes, and the partition still needs records of the oldest
  /// segment. Without it, a partition that stops taking events never checkpoints again and
  /// keeps every segment from its position on, however much its lane grows.
  bool holds_back(uint32_t partition);
  /// Bytes of segments on disk: segment_count() segments of the configured size.
  uint64_t bytes_held() const noexcept { return segment_count() * o_.log.segment_bytes; }

  uint64_t durable_lsn() const noexcept { return writer_->durable_lsn(); }
  bool failed() const noexcept { return writer_->failed(); }
  status failure() const { return writer_->failure(); }
  std::size_t segment_count() const { return writer_->segment_count(); }
  uint64_t prepared_segments() const noexcept { return writer_->prepared_segments(); }
  const lane_membership& membership() const noexcept { return o_.membership; }
  const std::string& log_dir() const noexcept { return writer_->log_dir(); }
  /// The scan this lane was opened from: where it started and ended, what was cut.
  const log_scan& recovered() const noexcept { return scan_; }
  /// Commit rounds so far (one write and one fdatasync each).
  uint64_t rounds() const noexcept { return rounds_.load(std::memory_order_relaxed); }

 private:
  journal_lane(options o, log_scan scan);
  struct waiter {
    lane_chunk* chunk = nullptr;
    persist_mode mode = persist_mode::fdatasync;
    bool done = false;
    status st;
  };
  // With the lane's leadership held (leading_ set by us): appends and syncs `round`.
  void run_round(std::vector<waiter*>& round);
  status release_unneeded();  // leader only
  uint64_t min_need() const;  // under mu_

  options o_;
  log_scan scan_;
  std::unique_ptr<log_writer> writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool leading_ = false;             // a thread is appending/syncing/releasing
  std::vector<waiter*> queue_;       // waiting for the next round
  std::vector<uint64_t> need_;       // per partition of the lane (index p / lanes)
  uint64_t released_before_ = 0;     // segments below this are released
  std::atomic<uint64_t> rounds_{0};
};

/// A partition's records on their way to its lane. The owner appends (and may withdraw the
/// last record), takes them as a chunk and hands the chunk to the persister, which commits it.
class partition_journal {
 public:
  partition_journal(uint32_t partition, uint64_t next_pseq, uint32_t max_record_bytes,
                    std::shared_ptr<journal_lane> lane)
      : partition_(partition), max_record_bytes_(max_record_bytes), lane_(std::move(lane)),
        next_pseq_(next_pseq), durable_pseq_(next_pseq - 1) {}

  // -- owner ----------------------------------------------------------------------------------
  /// Frames one record (`encode(std::string&)` appends its payload) and returns its pseq. An
  /// oversized payload is taken back out and refused (invalid_argument); a failed lane refuses.
  template <class Encode>
  result<uint64_t> append_with(log_format::record_type type, Encode&& encode);
  /// Withdraws the record the last append returned (a handler refused it); its pseq is reused.
  void unappend_last();
  /// Everything appended so far, for persist().
  lane_chunk take() {
    lane_chunk c{partition_, next_pseq_ - 1, std::move(buf_)};
    buf_.clear();
    if (c.bytes.capacity() > reserve_) reserve_ = c.bytes.capacity();
    buf_.reserve(reserve_);
    can_unappend_ = false;
    return c;
  }
  uint64_t next_pseq() const noexcept { return next_pseq_; }
  std::size_t buffered_bytes() const noexcept { return buf_.size(); }

  // -- persister ------------------------------------------------------------------------------
  /// Commits the chunk to the lane; returns the partition's durable pseq.
  result<uint64_t> persist(lane_chunk& c, persist_mode mode = persist_mode::fdatasync) {
    SF_RETURN_IF_ERROR(lane_->commit(c, mode).to_status());
    return committed(c);
  }
  /// A chunk of this partition that someone else committed (journal_lane::commit_all) is
  /// durable: returns the partition's durable pseq.
  uint64_t committed(const lane_chunk& c) {
    if (c.last_pseq > durable_pseq_.load(std::memory_order_relaxed))
      durable_pseq_.store(c.last_pseq, std::memory_order_release);
    return durable_pseq_.load(std::memory_order_acquire);
  }

  // -- either ---------------------------------------------------------------------------------
  uint64_t durable_pseq() const noexcept { return durable_pseq_.load(std::memory_order_acquire); }
  bool failed() const noexcept { return lane_->failed(); }
  status failure() const { return lane_->failure(); }
  journal_lane& lane() const noexcept { return *lane_; }

 private:
  const uint32_t partition_;
  const uint32_t max_record_bytes_;
  std::shared_ptr<journal_lane> lane_;
  std::string buf_;
  std::size_t reserve_ = 0;
  std::size_t last_at_ = 0;
  bool can_unappend_ = false;
  uint64_t next_pseq_;
  std::atomic<uint64_t> durable_pseq_;
};

template <class Encode>
result<uint64_t> partition_journal::append_with(log_format::record_type type, Encode&& encode) {
  if (lane_->failed()) return lane_->failure();
  const std::size_t at = buf_.size();
  const std::size_t payload = log_format::encode_record(buf_, partition_, next_pseq_, type, encode);
  if (payload > max_record_bytes_) {
    buf_.resize(at);
    return status{errc::invalid_argument, "record of " + std::to_string(payload) +
                                              " bytes exceeds max_record_bytes " +
                                              std::to_string(max_record_bytes_)};
  }
  last_at_ = at;
  can_unappend_ = true;
  return next_pseq_++;
}

}  // namespace statefold
