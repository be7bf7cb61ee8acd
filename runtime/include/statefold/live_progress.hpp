#pragma once

// What a writer publishes for readers in other processes: how far its log is durable.
//
//   DIR/lanes/L-NNNN/durable, 28 bytes, rewritten in place after every persist of the lane:
//   +------------+-----------+-----------------+---------------------------------+
//   | "SFDURBL1" | epoch u64 | durable LSN u64 | masked CRC32C of bytes 0..23 u32 |
//   +------------+-----------+-----------------+---------------------------------+
//
// A reader of a directory whose LOCK is held (a live writer) reads the log only up to this
// LSN: every record at or below it was written (and, under sync durability, synced) before it
// was published, so it is complete in the page cache; what follows may be a batch being
// written, or a recycled segment being reused. The file is never synced and never needed for
// recovery: once no writer holds LOCK, a reader reads the whole log. A read racing the
// writer's pwrite may see a mix of old and new bytes: the CRC catches it, and the reader
// reads again.

#include <cstdint>
#include <string>
#include <string_view>

#include "statefold/layout.hpp"
#include "statefold/status.hpp"

namespace statefold {

inline constexpr std::string_view progress_file_name = layout::durable_file;

struct published_progress {
  uint64_t epoch = 0;
  uint64_t durable_lsn = 0;
};

std::string encode_published_progress(const published_progress& p);
/// errc::corruption for anything but a whole, CRC-valid record (`path` names it).
result<published_progress> decode_published_progress(std::string_view bytes, const std::string& path);

}  // namespace statefold
