#pragma once

// CRC32C (Castagnoli), hardware-accelerated with SSE4.2 where the CPU has it (~10 GB/s),
// with a portable table fallback chosen once at start-up.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace statefold::crc32c {

/// CRC32C of `data` continued from `crc` (pass 0 to start).
uint32_t extend(uint32_t crc, const void* data, std::size_t n) noexcept;

inline uint32_t value(const void* data, std::size_t n) noexcept { return extend(0, data, n); }
inline uint32_t value(std::string_view s) noexcept { return extend(0, s.data(), s.size()); }

/// True when the SSE4.2 instruction is in use.
bool hardware_accelerated() noexcept;

// A CRC stored next to the data it covers is masked, so that computing the CRC of a string
// that itself contains embedded CRCs stays well-distributed (same scheme as LevelDB).
inline constexpr uint32_t mask_delta = 0xa282ead8u;

inline uint32_t mask(uint32_t crc) noexcept { return ((crc >> 15) | (crc << 17)) + mask_delta; }
inline uint32_t unmask(uint32_t masked) noexcept {
  uint32_t rot = masked - mask_delta;
  return (rot >> 17) | (rot << 15);
}

/// Whether a stored CRC matches the computed one. Every CRC check goes through here so that a
/// fuzzing build (STATEFOLD_FUZZING, tests/fuzz only) can pass them all and reach the code
/// behind them; a normal build compares.
inline bool crc_matches(uint32_t stored, uint32_t actual) noexcept {
#ifdef STATEFOLD_FUZZING
  (void)stored;
  (void)actual;
  return true;
#else
  return stored == actual;
#endif
}

}  // namespace statefold::crc32c
