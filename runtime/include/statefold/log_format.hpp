#pragma once

// The byte layout of a partition's log (format version 2). Full spec: docs/log_format.md.
//
// A log is a directory of segments named <base-lsn, 20 digits>.seg. Each segment:
//
//   +--------------------------- 64-byte segment header ---------------------------+
//   | magic "SFLOGSEG" | version u32 | partition u32 | epoch u64 | base LSN u64 |    |
//   | 24 reserved zero bytes | masked CRC32C of bytes 0..55 u32 | 4 reserved zero    |
//   +------------------------------------------------------------------------------+
//   | record | record | ... | zeros (preallocated) or stale records (recycled)     |
//
//   record = | masked CRC32C u32 | length u32 | LSN u64 | type u8 | 3 zero bytes | payload |
//            the CRC covers bytes [4, 20+length): every header field after it, and the payload
//
// All integers are little-endian. LSNs start at 1 and are consecutive across segments: the
// first record of a segment has the segment's base LSN. The writer puts an end marker (a
// zeroed record header, or zeros to the segment's end) after every batch. After the last
// valid record, zeros or a CRC-valid record with an LSN below the segment's base LSN (stale
// data of a recycled segment) are free space.

#include <cstdint>
#include <string_view>

namespace statefold::log_format {

inline constexpr uint32_t version = 2;
inline constexpr std::string_view segment_magic = "SFLOGSEG";
inline constexpr std::size_t segment_header_size = 64;
inline constexpr std::size_t segment_header_crc_offset = 56;
inline constexpr std::size_t record_header_size = 20;
/// No record is ever larger than this, whatever the options; a length field above it is
/// damage, not a big record.
inline constexpr uint32_t max_record_payload = 16u << 20;

enum class record_type : uint8_t {
  event = 1,     ///< an accepted event (envelope.hpp encodes the payload)
  position = 2,  ///< a source consumed up to a position, without an event (envelope.hpp)
};
inline bool known_record_type(uint8_t t) { return t == 1 || t == 2; }

/// "00000000000000000042.seg"
std::string segment_name(uint64_t base_lsn);
/// Parses a segment file name; false for anything else.
bool parse_segment_name(std::string_view name, uint64_t& base_lsn);
/// "free-<digits>.seg": a released segment kept for recycling.
bool is_free_segment_name(std::string_view name);

}  // namespace statefold::log_format
