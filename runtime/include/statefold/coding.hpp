#pragma once

// Little-endian fixed-width and varint encoding, and a bounds-checked reader.
// Every length or count read from disk goes through `byte_reader`, which refuses to read
// past its end: a forged length can make a decode fail, never overrun a buffer.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace statefold {

inline void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void put_u16(std::string& out, uint16_t v) {
  char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  out.append(b, 2);
}
inline void put_u32(std::string& out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
inline void put_u64(std::string& out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}
inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
/// varint length followed by the bytes.
inline void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// The on-disk format is little-endian; so is every machine we build for. memcpy compiles to
// a single load or store.
static_assert(std::endian::native == std::endian::little, "statefold assumes a little-endian host");

inline void store_u32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_u64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t load_u64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/// Parses "<20 decimal digits><suffix>" (segment and checkpoint file names); false otherwise.
inline bool parse_lsn_name(std::string_view name, std::string_view suffix, uint64_t& lsn) {
  if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) return false;
  uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  lsn = v;
  return true;
}

/// Reads from a fixed span; every accessor returns false instead of reading past the end.
class byte_reader {
 public:
  explicit byte_reader(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }

  bool u8(uint8_t& v) {
    if (remaining() < 1) return false;
    v = static_cast<uint8_t>(*p_++);
    return true;
  }
  bool u16(uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<uint16_t>(static_cast<uint8_t>(p_[0]) | (static_cast<uint8_t>(p_[1]) << 8));
    p_ += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    if (remaining() < 4) return false;
    v = load_u32(p_);
    p_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (remaining() < 8) return false;
    v = load_u64(p_);
    p_ += 8;
    return true;
  }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      auto b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;  // more than 10 bytes: not a varint we wrote
  }
  /// A varint length, then that many bytes (checked against what is left).
  bool bytes(std::string_view& s) {
    uint64_t n;
    if (!varint(n) || n > remaining()) return false;
    s = std::string_view(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }
  bool raw(std::size_t n, std::string_view& s) {
    if (n > remaining()) return false;
    s = std::string_view(p_, n);
    p_ += n;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace statefold
