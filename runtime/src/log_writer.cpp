#include "statefold/log_writer.hpp"

#include <algorithm>

#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"

namespace statefold {

using namespace log_format;

log_writer::log_writer(file_system& fs, std::string log_dir, uint32_t partition, uint64_t epoch,
                       log_options options)
    : fs_(fs), log_dir_(std::move(log_dir)), partition_(partition), epoch_(epoch),
      options_(std::move(options)) {}

log_writer::~log_writer() = default;

result<std::unique_ptr<log_writer>> log_writer::open(file_system& fs, std::string log_dir,
                                                     uint32_t partition, uint64_t epoch,
                                                     const log_scan& scan, log_options options) {
  if (options.segment_bytes < segment_header_size + record_header_size + 1 ||
      options.max_record_bytes > max_record_payload ||
      options.max_record_bytes > options.segment_bytes - segment_header_size - record_header_size)
    return status{errc::invalid_argument,
                  "log options: segment_bytes " + std::to_string(options.segment_bytes) +
                      " cannot hold a record of max_record_bytes " +
                      std::to_string(options.max_record_bytes)};
  SF_RETURN_IF_ERROR(fs.create_dirs(log_dir));
  std::unique_ptr<log_writer> w(
      new log_writer(fs, std::move(log_dir), partition, epoch, std::move(options)));
  w->next_lsn_ = scan.next_lsn;
  w->durable_lsn_ = scan.next_lsn - 1;  // everything recovered is on disk
  for (const auto& s : scan.segments) w->segments_.push_back({s.base_lsn, s.path});
  w->free_ = scan.free_segments;
  if (scan.lsn_may_regress) w->free_.clear();  // repair_log deleted them
  for (const auto& p : w->free_) {
    // Keep free-<n> names unique across restarts.
    uint64_t n = 0;
    auto name = base_name(p);
    for (char c : name.substr(5)) {
      if (c < '0' || c > '9') break;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    w->free_seq_ = std::max(w->free_seq_, n);
  }

  if (w->segments_.empty()) {
    w->pieces_.push_back({scan.next_lsn, nullptr, segment_header_size, {}, 0});
  } else {
    const auto& last = scan.segments.back();
    SF_ASSIGN_OR_RETURN(auto f, fs.open(last.path, open_mode::read_write));
    w->pieces_.push_back({last.base_lsn, std::shared_ptr<file>(std::move(f)), last.valid_bytes, {}, 0});
    // A segment made under a larger segment_bytes may hold stale bytes past our limit, where
    // a short end marker would not cover them: start the next record in a new segment.
    if (last.file_bytes > w->options_.segment_bytes)
      w->pieces_.push_back({scan.next_lsn, nullptr, segment_header_size, {}, 0});
  }
  return w;
}

std::size_t log_writer::buffered_bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& p : pieces_) n += p.bytes.size();
  return n;
}

status log_writer::fail(status st) {
  if (failure_.is_ok()) failure_ = st;
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

result<uint64_t> log_writer::append(record_type type, std::string_view payload) {
  if (!failure_.is_ok()) return failure_;
  if (payload.size() > options_.max_record_bytes)
    return status{errc::invalid_argument,
                  "record of " + std::to_string(payload.size()) + " bytes exceeds max_record_bytes " +
                      std::to_string(options_.max_record_bytes)};
  const std::size_t need = record_header_size + payload.size();
  piece* cur = &pieces_.back();
  if (cur->offset + cur->bytes.size() + need > options_.segment_bytes) {
    // Roll: this record starts the next segment (created by sync()).
    pieces_.push_back({next_lsn_, nullptr, segment_header_size, {}, 0});
    cur = &pieces_.back();
  }
  std::string& b = cur->bytes;
  const std::size_t at = b.size();
  b.resize(at + record_header_size);
  char* h = b.data() + at;
  store_u32(h + 4, static_cast<uint32_t>(payload.size()));
  store_u64(h + 8, next_lsn_);
  h[16] = static_cast<char>(type);
  h[17] = h[18] = h[19] = 0;
  b.append(payload);
  h = b.data() + at;  // append may have reallocated
  uint32_t crc = crc32c::value(h + 4, record_header_size - 4 + payload.size());
  store_u32(h, crc32c::mask(crc));
  cur->last_lsn = next_lsn_;
  return next_lsn_++;
}

result<std::shared_ptr<file>> log_writer::create_segment(uint64_t base) {
  if (options_.fence_check) SF_RETURN_IF_ERROR(options_.fence_check());
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
    if (options_.preallocate) {
      const std::string zeros(1u << 20, '\0');
      for (uint64_t off = segment_header_size; off < options_.segment_bytes; off += zeros.size()) {
        std::size_t n = static_cast<std::size_t>(
            std::min<uint64_t>(zeros.size(), options_.segment_bytes - off));
        SF_RETURN_IF_ERROR(f->write_at(off, std::string_view(zeros).substr(0, n)));
      }
    }
  }
  SF_RETURN_IF_ERROR(f->sync());
  SF_RETURN_IF_ERROR(fs_.rename(staged, path));
  SF_RETURN_IF_ERROR(fs_.sync_dir(log_dir_));
  segments_.push_back({base, path});
  return std::shared_ptr<file>(std::move(f));
}

result<uint64_t> log_writer::sync() {
  if (!failure_.is_ok()) return failure_;
  uint64_t lsn_after = durable_lsn_;
  // Pieces are in LSN order; each one is synced before the next segment is created.
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    piece& p = pieces_[i];
    if (!p.f) {
      auto f = create_segment(p.base);
      if (!f) return fail(f.error());
      p.f = std::move(f).value();
    }
    if (p.bytes.empty()) continue;
    // An end marker (a zeroed record header, or zeros to the end of the segment when less
    // room is left) after the batch, so that stale bytes of a recycled segment never look
    // like a torn record.
    const std::size_t payload_bytes = p.bytes.size();
    const uint64_t end = p.offset + payload_bytes;
    if (end < options_.segment_bytes)
      p.bytes.append(static_cast<std::size_t>(
                         std::min<uint64_t>(record_header_size, options_.segment_bytes - end)),
                     '\0');
    if (status st = p.f->write_at(p.offset, p.bytes); !st.is_ok()) return fail(st);
    if (status st = p.f->sync(); !st.is_ok()) return fail(st);
    lsn_after = p.last_lsn;
    p.offset += payload_bytes;
    p.bytes.clear();
  }
  // Keep only the piece being appended to.
  if (pieces_.size() > 1) pieces_.erase(pieces_.begin(), pieces_.end() - 1);
  durable_lsn_ = lsn_after;
  return durable_lsn_;
}

status log_writer::release_before(uint64_t lsn) {
  if (!failure_.is_ok()) return failure_;
  if (buffered_bytes() != 0 || pieces_.size() != 1)
    return {errc::invalid_argument, "release_before with unsynced records buffered"};
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
  if (changed) {
    if (status st = fs_.sync_dir(log_dir_); !st.is_ok()) return fail(st);
  }
  return status::ok();
}

}  // namespace statefold
