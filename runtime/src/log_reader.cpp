#include "statefold/log_reader.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"

namespace statefold {
namespace log_format {

std::string segment_name(uint64_t base_lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 ".seg", base_lsn);
  return buf;
}

bool is_free_segment_name(std::string_view name) {
  if (name.size() < 10 || name.substr(0, 5) != "free-" || name.substr(name.size() - 4) != ".seg")
    return false;
  for (char c : name.substr(5, name.size() - 9))
    if (c < '0' || c > '9') return false;
  return true;
}

bool parse_segment_name(std::string_view name, uint64_t& base_lsn) {
  return parse_lsn_name(name, ".seg", base_lsn);
}
}  // namespace log_format

const char* to_string(recovery_mode m) noexcept {
  switch (m) {
    case recovery_mode::tolerate_torn_tail: return "tolerate_torn_tail";
    case recovery_mode::absolute: return "absolute";
    case recovery_mode::point_in_time: return "point_in_time";
  }
  return "unknown";
}

namespace {

using namespace log_format;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

struct record_header {
  uint32_t masked_crc;
  uint32_t length;
  uint64_t lsn;
  uint8_t type;
  bool reserved_zero;
  uint32_t partition;
  uint64_t pseq;
};

record_header parse_header(const char* p) {
  record_header h;
  h.masked_crc = load_u32(p);
  h.length = load_u32(p + 4);
  h.lsn = load_u64(p + 8);
  h.type = static_cast<uint8_t>(p[16]);
  h.reserved_zero = p[17] == 0 && p[18] == 0 && p[19] == 0;
  h.partition = load_u32(p + record_partition_offset);
  h.pseq = load_u64(p + record_pseq_offset);
  return h;
}

// Why the bytes at `pos` are not the record with LSN `expected`; empty when they are.
std::string record_problem(std::string_view data, std::size_t pos, uint64_t expected) {
  std::size_t left = data.size() - pos;
  if (left < record_header_size)
    return "incomplete record header (" + std::to_string(left) + " bytes)";
  record_header h = parse_header(data.data() + pos);
  if (h.length > max_record_payload || h.length > left - record_header_size)
    return "length field " + std::to_string(h.length) + " exceeds the " +
           std::to_string(left - record_header_size) + " bytes left in the file";
  uint32_t actual = crc32c::value(data.data() + pos + 4, record_header_size - 4 + h.length);
  if (!crc32c::crc_matches(crc32c::unmask(h.masked_crc), actual))
    return "CRC mismatch: stored " + hex32(crc32c::unmask(h.masked_crc)) + ", computed " +
           hex32(actual);
  if (h.lsn != expected) return "record has LSN " + std::to_string(h.lsn);
  // Valid now, but it was not when the scan read it: the file changed under the reader (a
  // live writer, or a device returning different data for the same bytes).
  return "the record was incomplete when read and is valid now: the file changed while it was "
         "read (a live writer?)";
}

// A complete record with a valid CRC at `pos` (any LSN)?
bool crc_valid_record_at(std::string_view data, std::size_t pos, record_header& h) {
  if (data.size() - pos < record_header_size) return false;
  h = parse_header(data.data() + pos);
  if (h.length > max_record_payload || h.length > data.size() - pos - record_header_size)
    return false;
  return crc32c::crc_matches(crc32c::unmask(h.masked_crc),
                             crc32c::value(data.data() + pos + 4, record_header_size - 4 + h.length));
}

// Word at a time: the free space of a preallocated segment is tens of MiB of zeros.
bool all_zero(std::string_view s) {
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8)
    if (load_u64(p) != 0) return false;
  for (; n > 0; ++p, --n)
    if (*p != 0) return false;
  return true;
}

// First offset >= from holding a CRC-valid record whose LSN is >= min_lsn: proof that data
// which must be kept lies after a damaged spot. npos when there is none.
std::size_t find_later_record(std::string_view data, std::size_t from, uint64_t min_lsn) {
  if (data.size() < record_header_size) return std::string_view::npos;
  for (std::size_t p = from; p + record_header_size <= data.size(); ++p) {
    uint64_t lsn = load_u64(data.data() + p + 8);
    if (lsn < min_lsn || lsn - min_lsn > data.size()) continue;  // cheap filter first
    record_header h;
    // Any type: a valid record of a newer version after the damage is still valid data.
    if (crc_valid_record_at(data, p, h)) return p;
  }
  return std::string_view::npos;
}

// End of the damaged region that starts at `from`: the next run of zeros as long as a record
// header, or the next CRC-valid (stale) record, or end of data.
std::size_t damaged_region_end(std::string_view data, std::size_t from) {
  for (std::size_t p = from; p < data.size(); ++p) {
    // Zeros shorter than a record header at the very end can be part of the torn record.
    if (data.size() - p >= record_header_size && all_zero(data.substr(p, record_header_size)))
      return p;
    record_header h;
    if (p > from && crc_valid_record_at(data, p, h)) return p;
  }
  return data.size();
}

status check_segment_header(std::string_view data, const std::string& path, uint64_t name_base,
                            const log_scan_options& o, uint64_t& epoch) {
  if (data.size() < segment_header_size)
    return {errc::corruption, path + ": segment header is " + std::to_string(data.size()) +
                                  " bytes, expected " + std::to_string(segment_header_size)};
  const char* p = data.data();
  if (std::string_view(p, 8) != segment_magic)
    return {errc::corruption, path + " at offset 0: bad segment magic (not a statefold log segment)"};
  uint32_t stored = crc32c::unmask(load_u32(p + segment_header_crc_offset));
  uint32_t actual = crc32c::value(p, segment_header_crc_offset);
  if (!crc32c::crc_matches(stored, actual))
    return {errc::corruption, path + " at offset 0: segment header CRC mismatch: stored " +
                                  hex32(stored) + ", computed " + hex32(actual)};
  uint32_t ver = load_u32(p + 8);
  if (ver != version)
    return {errc::unsupported, path + ": segment format version " + std::to_string(ver) +
                                   ", this build reads version " + std::to_string(version)};
  uint32_t part = load_u32(p + 12);
  if (part != o.partition)
    return {errc::corruption, path + ": segment belongs to partition " + std::to_string(part) +
                                  ", found in the log of partition " +
                                  std::to_string(o.partition)};
  epoch = load_u64(p + 16);
  if (epoch > o.max_epoch)
    return {errc::fenced, path + ": segment written by owner epoch " + std::to_string(epoch) +
                              ", newer than ours (" + std::to_string(o.max_epoch) +
                              "): another process has taken over this directory"};
  uint64_t base = load_u64(p + 24);
  if (base != name_base)
    return {errc::corruption, path + ": header says base LSN " + std::to_string(base) +
                                  " but the file name says " + std::to_string(name_base)};
  return status::ok();
}

// Sequential reads of one file through a reused buffer; window(off, n) returns bytes
// [off, off + n) — fewer only at end of file. An I/O error is an error, never end of file.
class chunk_reader {
 public:
  static constexpr std::size_t chunk = 4u << 20;
  chunk_reader(file& f, uint64_t size, std::string& buf) : f_(f), size_(size), buf_(buf) {}

  result<std::string_view> window(uint64_t off, std::size_t n) {
    if (off >= buf_off_ && off + n <= buf_off_ + len_)
      return std::string_view(buf_.data() + (off - buf_off_), n);
    const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(std::max(n, chunk), size_ - std::min(off, size_)));
    if (buf_.size() < want) buf_.resize(want);
    SF_ASSIGN_OR_RETURN(std::size_t got, f_.read_at(off, buf_.data(), want));
    if (got < want)
      return status{errc::io_error, f_.path() + ": short read at offset " + std::to_string(off + got) +
                                        " of a file of " + std::to_string(size_) + " bytes"};
    buf_off_ = off;
    len_ = got;
    return std::string_view(buf_.data(), std::min(n, len_));
  }

 private:
  file& f_;
  uint64_t size_;
  std::string& buf_;
  uint64_t buf_off_ = 0;
  std::size_t len_ = 0;
};

}  // namespace

result<log_scan> scan_log(file_system& fs, const std::string& log_dir,
                          const log_scan_options& o, const log_visitor& visit) {
  log_scan scan;
  SF_ASSIGN_OR_RETURN(bool dir_exists, fs.exists(log_dir));
  if (!dir_exists) return scan;
  SF_ASSIGN_OR_RETURN(auto names, fs.list(log_dir));

  std::vector<std::pair<uint64_t, std::string>> segs;
  for (const auto& n : names) {
    uint64_t base;
    if (parse_segment_name(n, base)) {
      segs.emplace_back(base, path_join(log_dir, n));
    } else if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp" &&
               (parse_segment_name(std::string_view(n).substr(0, n.size() - 4), base) ||
                is_free_segment_name(std::string_view(n).substr(0, n.size() - 4)))) {
      // A segment, or a free segment prepared ahead (segment_preparer), cut short by a crash.
      scan.stray_files.push_back(path_join(log_dir, n));
    } else if (is_free_segment_name(n)) {
      scan.free_segments.push_back(path_join(log_dir, n));
    }
    // Anything else is not ours: left alone (documented in docs/log_format.md).
  }
  std::sort(segs.begin(), segs.end());
  if (segs.empty()) return scan;

  scan.first_lsn = segs.front().first;
  uint64_t expected = scan.first_lsn;
  uint64_t prev_epoch = 0;
  std::string reader_buf;  // reused by every segment
  const bool pitr = o.mode == recovery_mode::point_in_time;

  // Cuts the log at `offset` of segment i (point-in-time or torn tail), discarding what follows.
  auto cut_at = [&](std::size_t i, uint64_t offset, uint64_t bytes, std::string what) {
    scan.cut_file = segs[i].second;
    scan.cut_offset = offset;
    scan.cut_bytes = bytes;
    scan.damage = std::move(what);
    scan.lsn_may_regress = pitr;
    for (std::size_t j = i + 1; j < segs.size(); ++j) scan.discard_segments.push_back(segs[j].second);
  };

  // Shared lane: each partition's last pseq seen (0: none yet).
  std::vector<uint64_t> last_pseq(o.single_partition ? 0 : o.partitions, 0);
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& [name_base, path] = segs[i];
    const bool last = i + 1 == segs.size();
    if (o.skip_before_from && !last && name_base == expected && segs[i + 1].first <= o.from_lsn) {
      expected = segs[i + 1].first;  // wholly before from_lsn: not read
      continue;
    }
    if (name_base != expected) {
      std::string what =
          name_base > expected
              ? path + ": segment starts at LSN " + std::to_string(name_base) +
                    " but the previous segment ends before LSN " + std::to_string(expected) +
                    " (records " + std::to_string(expected) + ".." +
                    std::to_string(name_base - 1) + " are missing)"
              : path + ": segment starts at LSN " + std::to_string(name_base) +
                    ", inside the previous segment, which ends before LSN " +
                    std::to_string(expected) + " (overlapping segments)";
      if (!pitr) return status{errc::corruption, what};
      // Cut at the end of the previous segment: discard this one and every later one.
      scan.damage = what;
      scan.lsn_may_regress = true;
      for (std::size_t j = i; j < segs.size(); ++j) scan.discard_segments.push_back(segs[j].second);
      break;
    }
    SF_ASSIGN_OR_RETURN(auto f, fs.open(path, open_mode::read));
    SF_ASSIGN_OR_RETURN(const uint64_t size, f->size());
    chunk_reader in(*f, size, reader_buf);
    segment_info info;
    info.path = path;
    info.base_lsn = name_base;
    info.file_bytes = size;
    SF_ASSIGN_OR_RETURN(std::string_view header, in.window(0, segment_header_size));
    if (status st = check_segment_header(header, path, name_base, o, info.epoch); !st.is_ok()) {
      // Point-in-time recovery cuts before a damaged segment header (not before the first
      // segment, and never past a fencing error: that is not damage).
      if (!pitr || i == 0 || st.code() != errc::corruption) return st;
      scan.damage = st.message();
      scan.lsn_may_regress = true;
      for (std::size_t j = i; j < segs.size(); ++j) scan.discard_segments.push_back(segs[j].second);
      break;
    }
    if (info.epoch < prev_epoch)
      return status{errc::corruption, path + ": epoch " + std::to_string(info.epoch) +
                                          " is older than the previous segment's (" +
                                          std::to_string(prev_epoch) + ")"};
    prev_epoch = info.epoch;

    // The hot loop: records are read in chunks into a reused buffer.
    uint64_t pos = segment_header_size;
    bool at_bound = false;  // reached max_lsn: what follows is a live writer's, not ours to judge
    while (pos < size) {
      if (expected > o.max_lsn) {
        at_bound = true;
        break;
      }
      SF_ASSIGN_OR_RETURN(std::string_view hv, in.window(pos, record_header_size));
      if (hv.size() < record_header_size) break;
      const record_header h = parse_header(hv.data());
      if (h.length > max_record_payload || h.length > size - pos - record_header_size) break;
      SF_ASSIGN_OR_RETURN(std::string_view rec, in.window(pos, record_header_size + h.length));
      if (!crc32c::crc_matches(crc32c::unmask(h.masked_crc), crc32c::value(rec.data() + 4, rec.size() - 4))) break;
      if (h.lsn != expected) break;
      if (!known_record_type(h.type) || !h.reserved_zero)
        return status{errc::unsupported,
                      path + " at offset " + std::to_string(pos) + " (LSN " + std::to_string(expected) +
                          "): record type " + std::to_string(h.type) +
                          (h.reserved_zero ? "" : " with non-zero reserved bytes") +
                          " is unknown to this build (written by a newer version?)"};
      if (o.single_partition && (h.partition != o.partition || h.pseq != expected))
        return status{errc::corruption,
                      path + " at offset " + std::to_string(pos) + " (LSN " + std::to_string(expected) +
                          "): a valid record of partition " + std::to_string(h.partition) +
                          " with sequence number " + std::to_string(h.pseq) +
                          " in the journal of partition " + std::to_string(o.partition) +
                          (h.partition == o.partition ? ", which numbers its records by LSN" : "") +
                          ": not replayed (a record in the wrong journal, or a writer bug)"};
      if (!o.single_partition) {
        if (h.partition >= o.partitions || o.lanes == 0 || h.partition % o.lanes != o.partition)
          return status{errc::corruption,
                        path + " at offset " + std::to_string(pos) + " (LSN " + std::to_string(expected) +
                            "): a valid record of partition " + std::to_string(h.partition) +
                            " in journal lane " + std::to_string(o.partition) +
                            ", which holds partitions p < " + std::to_string(o.partitions) +
                            " with p % " + std::to_string(o.lanes) + " == " + std::to_string(o.partition) +
                            ": not replayed (a record in the wrong lane, or a writer bug)"};
        uint64_t& prev = last_pseq[h.partition];
        if (prev != 0 && h.pseq != prev + 1)
          return status{errc::corruption,
                        path + " at offset " + std::to_string(pos) + " (LSN " + std::to_string(expected) +
                            "): partition " + std::to_string(h.partition) + "'s record " +
                            std::to_string(h.pseq) + " follows its record " + std::to_string(prev) +
                            (h.pseq > prev ? " (records " + std::to_string(prev + 1) + ".." +
                                                 std::to_string(h.pseq - 1) + " are missing)"
                                           : " (out of order)") +
                            ": not replayed"};
        prev = h.pseq;
      }
      if (expected >= o.from_lsn && visit) {
        log_record r{expected, static_cast<record_type>(h.type), h.partition, h.pseq,
                     rec.substr(record_header_size), path, pos};
        SF_RETURN_IF_ERROR(visit(r));
        ++scan.records_visited;
      }
      pos += rec.size();
      ++expected;
    }
    scan.bytes_read += pos;
    info.end_lsn = expected;
    info.valid_bytes = pos;
    scan.segments.push_back(info);
    if (at_bound) break;
    if (pos == size) continue;

    // Classify what follows the last valid record. The usual case, a preallocated segment's
    // free space, is all zeros: check that 1 MiB at a time, holding no more. Anything else
    // (a recycled segment's stale records, damage) reads the rest of the segment whole.
    {
      bool zeros = true;
      std::string chunk;
      for (uint64_t at = pos; at < size && zeros;) {
        const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(1u << 20, size - at));
        chunk.resize(n);
        SF_ASSIGN_OR_RETURN(std::size_t got, f->read_at(at, chunk.data(), n));
        if (got != n)
          return status{errc::io_error, path + ": short read at offset " + std::to_string(at + got) +
                                            " (file size " + std::to_string(size) + ")"};
        scan.bytes_read += got;
        zeros = all_zero(chunk);
        at += n;
      }
      if (zeros) continue;  // preallocated free space
    }
    std::string rest_bytes(size - pos, '\0');
    SF_ASSIGN_OR_RETURN(std::size_t got, f->read_at(pos, rest_bytes.data(), rest_bytes.size()));
    if (got != rest_bytes.size())
      return status{errc::io_error, path + ": short read at offset " + std::to_string(pos + got) +
                                        " (file size " + std::to_string(size) + ")"};
    scan.bytes_read += got;
    const std::string_view d = rest_bytes;  // d[0] is file offset `pos`
    const bool zero_end = all_zero(d.substr(0, std::min(record_header_size, d.size())));
    if (zero_end && all_zero(d)) continue;  // preallocated free space
    // A CRC-valid record older than this segment is stale data of a recycled segment.
    record_header stale;
    const bool free_space =
        zero_end || (crc_valid_record_at(d, 0, stale) && stale.lsn < name_base);

    const std::size_t later = find_later_record(d, 0, expected);
    const std::string problem = zero_end     ? "zeroed record header"
                                : free_space ? "stale record"
                                             : record_problem(d, 0, expected);
    const std::string where = path + " at offset " + std::to_string(pos) + " (LSN " +
                              std::to_string(expected) + "): " + problem;
    if (later != std::string_view::npos) {
      std::string what = where + "; a valid record with LSN " +
                         std::to_string(load_u64(d.data() + later + 8)) + " follows at offset " +
                         std::to_string(pos + later) + ", so this is corruption, not a torn tail";
      if (!pitr) return status{errc::corruption, what};
      cut_at(i, pos, d.size(), what);
      break;
    }
    if (free_space) continue;  // end marker or stale records of a recycled segment
    if (!last) {
      std::string what = where + " in a segment that is not the last one";
      if (!pitr) return status{errc::corruption, what};
      cut_at(i, pos, d.size(), what);
      break;
    }
    const std::size_t end = damaged_region_end(d, 0);
    if (o.mode == recovery_mode::absolute)
      return status{errc::corruption, where + " (torn tail of " + std::to_string(end) +
                                          " bytes; recovery mode is absolute)"};
    cut_at(i, pos, end, "torn tail: " + where);
  }

  // Point-in-time cuts drop whole segments after the cut; keep `segments` consistent.
  scan.segments.erase(
      std::remove_if(scan.segments.begin(), scan.segments.end(),
                     [&](const segment_info& s) {
                       return std::find(scan.discard_segments.begin(), scan.discard_segments.end(),
                                        s.path) != scan.discard_segments.end();
                     }),
      scan.segments.end());
  scan.next_lsn = scan.segments.empty() ? scan.first_lsn : scan.segments.back().end_lsn;
  return scan;
}

status repair_log(file_system& fs, const std::string& log_dir, const log_scan& scan) {
  // Deletions first, truncation last: a crash in between leaves the damage in place, so the
  // next recovery finds and repairs it the same way (repairs are idempotent).
  bool removed = false;
  auto drop = [&](const std::string& p) -> status {
    status st = fs.remove(p);
    if (!st.is_ok() && st.code() != errc::not_found) return st;
    removed = true;
    return status::ok();
  };
  for (const auto& p : scan.discard_segments) SF_RETURN_IF_ERROR(drop(p));
  // A point-in-time cut may move LSNs backwards; recycled segments could then hold stale
  // records with LSNs we will reuse. Drop them.
  if (scan.lsn_may_regress)
    for (const auto& p : scan.free_segments) SF_RETURN_IF_ERROR(drop(p));
  for (const auto& p : scan.stray_files) SF_RETURN_IF_ERROR(drop(p));
  if (removed) SF_RETURN_IF_ERROR(fs.sync_dir(log_dir));
  if (!scan.cut_file.empty() && scan.cut_bytes > 0) {
    SF_ASSIGN_OR_RETURN(auto f, fs.open(scan.cut_file, open_mode::read_write));
    SF_ASSIGN_OR_RETURN(uint64_t size, f->size());
    if (size > scan.cut_offset) {
      SF_RETURN_IF_ERROR(f->truncate(scan.cut_offset));
      SF_RETURN_IF_ERROR(f->sync());
    }
  }
  return status::ok();
}

}  // namespace statefold
