#include "statefold/log_writer.hpp"

#include "statefold/live_progress.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>

#include "statefold/segment_preparer.hpp"

namespace statefold {

using namespace log_format;

namespace {

// Writes zeros over [from, to) of `f`, 1 MiB at a time. A background writer passes `stop`
// and `paced`: each slice then goes to the device before the next is written, so the log's
// own fdatasync never queues behind tens of MiB of zeros (it did: 64 MiB written back at once
// held every sync of the partition for 30-60 ms); it stops early (ok) once `stop` is set.
status zero_fill(file& f, uint64_t from, uint64_t to, const std::atomic<bool>* stop = nullptr,
                 bool paced = false) {
  static const std::string zeros(1u << 20, '\0');
  for (uint64_t off = from; off < to; off += zeros.size()) {
    if (stop && stop->load(std::memory_order_relaxed)) break;
    const auto n = static_cast<std::size_t>(std::min<uint64_t>(zeros.size(), to - off));
    SF_RETURN_IF_ERROR(f.write_at(off, std::string_view(zeros).substr(0, n)));
    if (paced) SF_RETURN_IF_ERROR(f.write_back(off, n));
  }
  return status::ok();
}

}  // namespace

/// A free segment built ahead of need on a segment_preparer's thread. The job shares this with
/// the writer and never touches the writer itself, so either may go first.
struct log_writer::spare {
  enum class phase { queued, running, done };
  std::mutex mu;
  std::condition_variable cv;
  phase at = phase::queued;
  std::atomic<bool> cancelled{false};
  bool made = false;  // `path` exists, zero-filled, synced, and its directory synced
  std::string path;   // free-<n>.seg

  // The job: free-<n>.seg.tmp, zero-filled to `bytes`, fdatasync, rename, fsync the
  // directory — the same sequence as a new segment (log_format.md, section 4) minus the
  // header, which a recycled segment gets when it is taken into use.
  static void run(file_system& fs, const std::shared_ptr<spare>& s, const std::string& dir,
                  uint64_t bytes) {
    {
      std::lock_guard lock(s->mu);
      if (s->cancelled) {
        s->at = phase::done;
        s->cv.notify_all();
        return;
      }
      s->at = phase::running;
    }
    const std::string tmp = s->path + ".tmp";
    status st = [&]() -> status {
      SF_ASSIGN_OR_RETURN(auto f, fs.open(tmp, open_mode::create));
      SF_RETURN_IF_ERROR(f->truncate(0));
      SF_RETURN_IF_ERROR(zero_fill(*f, 0, bytes, &s->cancelled, /*paced=*/true));
      if (s->cancelled) return status{errc::io_error, "cancelled"};
      SF_RETURN_IF_ERROR(f->sync());
      f.reset();
      SF_RETURN_IF_ERROR(fs.rename(tmp, s->path));
      return fs.sync_dir(dir);
    }();
    // A failure here costs nothing but the head start: the writer then makes its segment
    // itself, and reports the error if the disk is really failing. A leftover .tmp is
    // removed here or, after a crash, by the next recovery (a stray file).
    if (!st.is_ok()) ignore(fs.remove(tmp));
    std::lock_guard lock(s->mu);
    s->made = st.is_ok();
    s->at = phase::done;
    s->cv.notify_all();
  }
};

std::size_t log_batch::bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& p : pieces_) n += p.bytes.size();
  return n;
}

log_writer::log_writer(file_system& fs, std::string log_dir, uint32_t partition, uint64_t epoch,
                       log_options options)
    : fs_(fs), log_dir_(std::move(log_dir)), partition_(partition), epoch_(epoch),
      options_(std::move(options)) {}

log_writer::~log_writer() {
  // A running job must not rename into a log that a new writer may be scanning already.
  if (spare_) {
    spare_->cancelled = true;
    std::unique_lock lock(spare_->mu);
    spare_->cv.wait(lock, [&] { return spare_->at != spare::phase::running; });
  }
}

void log_writer::maybe_prepare_spare(uint64_t segment_used) {
  if (!options_.preparer || !options_.preallocate || spare_ || !free_.empty() ||
      segment_used * 2 < options_.segment_bytes)
    return;
  spare_ = std::make_shared<spare>();
  spare_->path = path_join(log_dir_, "free-" + std::to_string(++free_seq_) + ".seg");
  options_.preparer->submit([&fs = fs_, s = spare_, dir = log_dir_, bytes = options_.segment_bytes] {
    spare::run(fs, s, dir, bytes);
  });
}

void log_writer::collect_spare(bool wait) {
  if (!spare_) return;
  std::unique_lock lock(spare_->mu);
  if (spare_->at == spare::phase::queued && wait) {
    // Still behind other partitions' jobs: making the segment here is sooner.
    spare_->cancelled = true;
  } else if (spare_->at == spare::phase::running && wait) {
    spare_->cv.wait(lock, [&] { return spare_->at == spare::phase::done; });
  }
  if (spare_->at == spare::phase::done && spare_->made) {
    free_.push_back(spare_->path);
    prepared_.fetch_add(1, std::memory_order_relaxed);
  }
  const bool finished = spare_->at == spare::phase::done || spare_->cancelled;
  lock.unlock();
  if (finished) spare_.reset();
}

result<std::unique_ptr<log_writer>> log_writer::open(file_system& fs, std::string log_dir,
                                                     uint32_t partition, uint64_t epoch,
                                                     const log_scan& scan, log_options options) {
  if (options.segment_bytes < segment_header_size + record_header_size + 1 ||
      options.segment_bytes > (1ull << 30) || options.max_record_bytes > max_record_payload ||
      options.max_record_bytes > options.segment_bytes - segment_header_size - record_header_size)
    return status{errc::invalid_argument,
                  "log options: segment_bytes " + std::to_string(options.segment_bytes) +
                      " (at most 1 GiB) cannot hold a record of max_record_bytes " +
                      std::to_string(options.max_record_bytes)};
  SF_RETURN_IF_ERROR(fs.create_dirs(log_dir));
  std::unique_ptr<log_writer> w(
      new log_writer(fs, std::move(log_dir), partition, epoch, std::move(options)));
  w->next_lsn_ = scan.next_lsn;
  w->durable_lsn_.store(scan.next_lsn - 1);  // everything recovered is on disk
  for (const auto& s : scan.segments) w->segments_.push_back({s.base_lsn, s.path});
  w->publish_segments();
  if (!scan.lsn_may_regress) w->free_ = scan.free_segments;  // else repair_log deleted them
  for (const auto& p : w->free_) {
    // Keep free-<n> names unique across restarts.
    uint64_t n = 0;
    for (char c : base_name(p).substr(5)) {
      if (c < '0' || c > '9') break;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    w->free_seq_ = std::max(w->free_seq_, n);
  }

  const bool fresh = w->segments_.empty() ||
                     // A segment made under a larger segment_bytes may hold stale bytes past our
                     // limit, where a short end marker would not cover them: start anew.
                     scan.segments.back().file_bytes > w->options_.segment_bytes;
  if (fresh) {
    w->cur_ = {std::make_shared<segment_slot>(segment_slot{scan.next_lsn, nullptr}),
               segment_header_size, {}};
  } else {
    const auto& last = scan.segments.back();
    SF_ASSIGN_OR_RETURN(auto f, fs.open(last.path, open_mode::read_write));
    w->cur_ = {std::make_shared<segment_slot>(
                   segment_slot{last.base_lsn, std::shared_ptr<file>(std::move(f))}),
               last.valid_bytes, {}};
    w->cur_announced_ = true;  // exists already: nothing to create
  }
  if (!w->options_.progress_file.empty()) {
    SF_ASSIGN_OR_RETURN(w->progress_, fs.open(w->options_.progress_file, open_mode::create));
    w->publish_progress();
  }
  return w;
}

void log_writer::publish_progress() {
  if (!progress_) return;
  // Best effort: a reader that cannot read it waits for the writer or reads nothing new; the
  // log itself is unaffected (the next persist reports any real disk trouble).
  ignore(progress_->write_at(
      0, encode_published_progress({epoch_, durable_lsn_.load(std::memory_order_relaxed)})));
}

std::size_t log_writer::buffered_bytes() const noexcept {
  std::size_t n = cur_.bytes.size();
  for (const auto& p : pending_) n += p.bytes.size();
  return n;
}

status log_writer::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

status log_writer::fail(status st) {
  std::lock_guard lock(failure_mu_);
  if (failure_.is_ok()) failure_ = st;
  failed_.store(true, std::memory_order_release);
  return st;
}

std::string log_writer::segment_header(uint64_t base) const {
  std::string h;
  h.reserve(segment_header_size);
  h.append(segment_magic);
  put_u32(h, version);
  put_u32(h, partition_);
  put_u64(h, epoch_);
  put_u64(h, base);
  h.append(segment_header_crc_offset - h.size(), '\0');
  put_u32(h, crc32c::mask(crc32c::value(h.data(), segment_header_crc_offset)));
  put_u32(h, 0);
  return h;
}

std::size_t log_writer::begin_record(std::size_t size) {
  if (cur_.offset + cur_.bytes.size() + size > options_.segment_bytes) {
    // Roll: this record starts the next segment (created by the persister).
    pending_.push_back(std::move(cur_));
    cur_ = {std::make_shared<segment_slot>(segment_slot{next_lsn_, nullptr}), segment_header_size, {}};
    cur_announced_ = false;
  }
  return cur_.bytes.size();
}

void log_writer::finish_record(std::size_t at, record_type type) {
  const std::size_t payload = cur_.bytes.size() - at - record_header_size;
  // Its own journal: the writer's partition, pseq = LSN.
  store_record_header(cur_.bytes.data() + at, payload, type, partition_, next_lsn_);
  seal_record(at);
}

void log_writer::seal_record(std::size_t at) {
  char* h = cur_.bytes.data() + at;
  store_u64(h + 8, next_lsn_);
  const std::size_t payload = load_u32(h + 4);
  store_u32(h, crc32c::mask(crc32c::value(h + 4, record_header_size - 4 + payload)));
  last_record_at_ = at;
  can_unappend_ = true;
}

result<uint64_t> log_writer::append_encoded(std::string_view records) {
  if (failed()) return failure();
  // Check the framing of the whole buffer first: all or nothing.
  for (std::size_t pos = 0; pos < records.size();) {
    if (records.size() - pos < record_header_size)
      return status{errc::invalid_argument, "encoded records: " + std::to_string(records.size() - pos) +
                                                " bytes at offset " + std::to_string(pos) +
                                                " are not a whole record header"};
    const uint32_t len = load_u32(records.data() + pos + 4);
    if (len > options_.max_record_bytes)
      return status{errc::invalid_argument, "record of " + std::to_string(len) +
                                                " bytes exceeds max_record_bytes " +
                                                std::to_string(options_.max_record_bytes)};
    if (len > records.size() - pos - record_header_size)
      return status{errc::invalid_argument, "encoded records: the record at offset " +
                                                std::to_string(pos) + " runs past the buffer"};
    if (!known_record_type(static_cast<uint8_t>(records[pos + 16])))
      return status{errc::invalid_argument, "encoded records: unknown record type at offset " +
                                                std::to_string(pos)};
    if (records[pos + 17] != 0 || records[pos + 18] != 0 || records[pos + 19] != 0)
      return status{errc::invalid_argument, "encoded records: reserved bytes not zero at offset " +
                                                std::to_string(pos)};
    pos += record_header_size + len;
  }
  for (std::size_t pos = 0; pos < records.size();) {
    const std::size_t size = record_header_size + load_u32(records.data() + pos + 4);
    const std::size_t at = begin_record(size);
    cur_.bytes.append(records.substr(pos, size));
    seal_record(at);
    ++next_lsn_;
    pos += size;
  }
  can_unappend_ = false;  // withdraws single appends only
  return next_lsn_ - 1;
}

void log_writer::unappend_last() {
  if (!can_unappend_) std::abort();  // a bug in the caller: nothing to withdraw
  cur_.bytes.resize(last_record_at_);
  --next_lsn_;
  can_unappend_ = false;
}

result<uint64_t> log_writer::append(record_type type, std::string_view payload) {
  if (failed()) return failure();
  if (payload.size() > options_.max_record_bytes)
    return status{errc::invalid_argument,
                  "record of " + std::to_string(payload.size()) + " bytes exceeds max_record_bytes " +
                      std::to_string(options_.max_record_bytes)};
  const std::size_t at = begin_record(record_header_size + payload.size());
  cur_.bytes.resize(at + record_header_size);
  cur_.bytes.append(payload);
  finish_record(at, type);
  return next_lsn_++;
}

log_batch log_writer::take_batch() {
  log_batch b;
  b.pieces_ = std::move(pending_);
  pending_.clear();
  if (!cur_.bytes.empty() || !cur_announced_) {
    piece taken{cur_.seg, cur_.offset, std::move(cur_.bytes)};
    cur_.offset += taken.bytes.size();
    last_batch_bytes_ = taken.bytes.size();
    b.pieces_.push_back(std::move(taken));
    cur_.bytes = std::string();
    cur_.bytes.reserve(last_batch_bytes_ + last_batch_bytes_ / 4);
    cur_announced_ = true;
  }
  b.last_lsn_ = next_lsn_ - 1;
  can_unappend_ = false;
  return b;
}

result<std::shared_ptr<file>> log_writer::create_segment(uint64_t base) {
  if (options_.fence_check) SF_RETURN_IF_ERROR(options_.fence_check());
  collect_spare(/*wait=*/true);
  const std::string path = path_join(log_dir_, segment_name(base));
  const std::string header = segment_header(base);
  std::unique_ptr<file> f;
  std::string staged;
  if (!free_.empty()) {
    // Recycle: new header under the free name first, so a file carrying a segment name
    // always carries the matching header.
    staged = free_.back();
    free_.pop_back();
    SF_ASSIGN_OR_RETURN(f, fs_.open(staged, open_mode::read_write));
    // A free segment from a run with larger segments would keep stale bytes past our end.
    SF_ASSIGN_OR_RETURN(uint64_t old_size, f->size());
    if (old_size > options_.segment_bytes) SF_RETURN_IF_ERROR(f->truncate(options_.segment_bytes));
    SF_RETURN_IF_ERROR(f->write_at(0, header));
    // Stale records may follow; an end marker right after the header says "nothing here".
    SF_RETURN_IF_ERROR(f->write_at(segment_header_size, std::string(record_header_size, '\0')));
  } else {
    staged = path + ".tmp";
    SF_ASSIGN_OR_RETURN(f, fs_.open(staged, open_mode::create));
    SF_RETURN_IF_ERROR(f->truncate(0));
    SF_RETURN_IF_ERROR(f->write_at(0, header));
    if (options_.preallocate)
      SF_RETURN_IF_ERROR(zero_fill(*f, segment_header_size, options_.segment_bytes));
  }
  SF_RETURN_IF_ERROR(f->sync());
  SF_RETURN_IF_ERROR(fs_.rename(staged, path));
  SF_RETURN_IF_ERROR(fs_.sync_dir(log_dir_));
  segments_.push_back({base, path});
  publish_segments();
  // Reopen under the final name, so that every later error names the file that exists.
  f.reset();
  SF_ASSIGN_OR_RETURN(auto g, fs_.open(path, open_mode::read_write));
  return std::shared_ptr<file>(std::move(g));
}

result<uint64_t> log_writer::persist(log_batch& batch, persist_mode mode) {
  if (failed()) return failure();
  // Pieces are in LSN order; each one is synced before the next segment is created, so a
  // later segment never exists while an earlier one misses records at its end.
  for (auto& p : batch.pieces_) {
    if (!p.seg->f) {
      auto f = create_segment(p.seg->base);
      if (!f) return fail(f.error());
      p.seg->f = std::move(f).value();
    }
    if (p.bytes.empty()) continue;
    // An end marker (a zeroed record header, or zeros to the end of the segment when less
    // room is left) after the batch, so that stale bytes of a recycled segment never look
    // like a torn record.
    const uint64_t end = p.offset + p.bytes.size();
    if (end < options_.segment_bytes)
      p.bytes.append(static_cast<std::size_t>(
                         std::min<uint64_t>(record_header_size, options_.segment_bytes - end)),
                     '\0');
    if (status st = p.seg->f->write_at(p.offset, p.bytes); !st.is_ok()) return fail(st);
    if (mode == persist_mode::fdatasync) {
      if (status st = p.seg->f->sync(); !st.is_ok()) return fail(st);
    }
  }
  if (!batch.pieces_.empty()) {
    const piece& last = batch.pieces_.back();
    maybe_prepare_spare(last.offset + last.bytes.size());
  }
  if (batch.last_lsn_ > durable_lsn_.load(std::memory_order_relaxed)) {
    durable_lsn_.store(batch.last_lsn_, std::memory_order_release);
    publish_progress();
  }
  batch.pieces_.clear();
  return durable_lsn_.load(std::memory_order_relaxed);
}

std::size_t log_writer::segment_count() const { return segment_count_.load(); }

void log_writer::publish_segments() {
  segment_count_.store(segments_.size());
  second_base_.store(segments_.size() > 1 ? segments_[1].base : UINT64_MAX);
}

status log_writer::release_before(uint64_t lsn) {
  if (failed()) return failure();
  bool changed = false;
  while (segments_.size() > 1 && segments_[1].base <= lsn) {
    const std::string path = segments_.front().path;
    status st;
    if (free_.size() < options_.max_free_segments) {
      std::string to = path_join(log_dir_, "free-" + std::to_string(++free_seq_) + ".seg");
      st = fs_.rename(path, to);
      if (st.is_ok()) free_.push_back(to);
    } else {
      st = fs_.remove(path);
    }
    if (!st.is_ok()) return fail(st);
    segments_.erase(segments_.begin());
    changed = true;
  }
  publish_segments();
  if (changed) {
    if (status st = fs_.sync_dir(log_dir_); !st.is_ok()) return fail(st);
  }
  return status::ok();
}

}  // namespace statefold
