#include "statefold/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace statefold::crc32c {
namespace {

constexpr uint32_t poly_reversed = 0x82f63b78u;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ poly_reversed : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto table = make_table();

uint32_t extend_portable(uint32_t crc, const uint8_t* p, std::size_t n) noexcept {
  uint32_t c = ~crc;
  for (std::size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t extend_sse42(uint32_t crc, const uint8_t* p,
                                                         std::size_t n) noexcept {
  uint64_t c = ~crc & 0xffffffffu;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

bool cpu_has_sse42() noexcept { return __builtin_cpu_supports("sse4.2"); }
#else
bool cpu_has_sse42() noexcept { return false; }
#endif

using extend_fn = uint32_t (*)(uint32_t, const uint8_t*, std::size_t) noexcept;

extend_fn pick() noexcept {
#if defined(__x86_64__)
  if (cpu_has_sse42()) return extend_sse42;
#endif
  return extend_portable;
}

const extend_fn chosen = pick();

}  // namespace

uint32_t extend(uint32_t crc, const void* data, std::size_t n) noexcept {
  return chosen(crc, static_cast<const uint8_t*>(data), n);
}

bool hardware_accelerated() noexcept { return chosen != extend_portable; }

}  // namespace statefold::crc32c
