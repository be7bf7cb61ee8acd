#pragma once

// The byte layout of a journal (format version 3). Full spec: docs/log_format.md.
//
// A journal is a directory of segments named <base-lsn, 20 digits>.seg; its records may belong
// to several partitions (a journal lane), each record naming its partition and its sequence
// number within that partition (pseq) beside its position in the journal (LSN). As this
// build writes it, every partition has a journal of its own (the lane has the partition's
// number, and pseq = LSN); shared lanes come next (issue 14). Each segment:
//
//   +--------------------------- 64-byte segment header ---------------------------+
//   | magic "SFLOGSEG" | version u32 | lane u32 | epoch u64 | base LSN u64 |         |
//   | 24 reserved zero bytes | masked CRC32C of bytes 0..55 u32 | 4 reserved zero    |
//   +------------------------------------------------------------------------------+
//   | record | record | ... | zeros (preallocated) or stale records (recycled)     |
//
//   record = | masked CRC32C u32 | length u32 | LSN u64 | type u8 | 3 zero bytes |
//            | partition u32 | pseq u64 | payload |
//            the CRC covers bytes [4, 32+length): every header field after it, and the payload
//
// All integers are little-endian. LSNs start at 1 and are consecutive across segments: the
// first record of a segment has the segment's base LSN. The writer puts an end marker (a
// zeroed record header, or zeros to the segment's end) after every batch. After the last
// valid record, zeros or a CRC-valid record with an LSN below the segment's base LSN (stale
// data of a recycled segment) are free space.

#include <cstdint>
#include <string>
#include <string_view>

#include "statefold/coding.hpp"

namespace statefold::log_format {

inline constexpr uint32_t version = 3;
inline constexpr std::string_view segment_magic = "SFLOGSEG";
inline constexpr std::size_t segment_header_size = 64;
inline constexpr std::size_t segment_header_crc_offset = 56;
inline constexpr std::size_t record_header_size = 32;
inline constexpr std::size_t record_partition_offset = 20;
inline constexpr std::size_t record_pseq_offset = 24;
/// No record is ever larger than this, whatever the options; a length field above it is
/// damage, not a big record.
inline constexpr uint32_t max_record_payload = 16u << 20;

enum class record_type : uint8_t {
  event = 1,     ///< an accepted event (envelope.hpp encodes the payload)
  position = 2,  ///< a source consumed up to a position, without an event (envelope.hpp)
  /// No effect but to advance its partition's pseq: written so that a partition with nothing
  /// new since its last checkpoint can take a newer one when its lane must release segments
  /// (journal_lane::holds_back). Payload: the time (varint microseconds).
  noop = 3,
};
inline bool known_record_type(uint8_t t) { return t >= 1 && t <= 3; }

/// Writes a record header at `h` for a payload of `payload` bytes: type, partition and pseq;
/// CRC and LSN zero (log_writer stamps them when the record goes into the journal).
inline void store_record_header(char* h, std::size_t payload, record_type type, uint32_t partition,
                                uint64_t pseq) noexcept {
  store_u32(h, 0);
  store_u32(h + 4, static_cast<uint32_t>(payload));
  store_u64(h + 8, 0);
  h[16] = static_cast<char>(type);
  h[17] = h[18] = h[19] = 0;
  store_u32(h + record_partition_offset, partition);
  store_u64(h + record_pseq_offset, pseq);
}

/// Appends one record for a journal lane to `out`, as a partition prepares it: header with
/// `partition`, `pseq` and `type`, the payload that `encode(std::string&)` appends, and LSN and
/// CRC left zero. log_writer::append_encoded() copies such records into the journal, giving
/// each its LSN and CRC. Returns the payload's size (the caller bounds it).
template <class Encode>
std::size_t encode_record(std::string& out, uint32_t partition, uint64_t pseq, record_type type,
                          Encode&& encode) {
  const std::size_t at = out.size();
  out.resize(at + record_header_size);
  encode(out);
  const std::size_t payload = out.size() - at - record_header_size;
  store_record_header(out.data() + at, payload, type, partition, pseq);
  return payload;
}

/// "00000000000000000042.seg"
std::string segment_name(uint64_t base_lsn);
/// Parses a segment file name; false for anything else.
bool parse_segment_name(std::string_view name, uint64_t& base_lsn);
/// "free-<digits>.seg": a released segment kept for recycling.
bool is_free_segment_name(std::string_view name);

}  // namespace statefold::log_format
