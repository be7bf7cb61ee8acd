#include "statefold/live_progress.hpp"

#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"

namespace statefold {

namespace {
constexpr std::string_view magic = "SFDURBL1";
constexpr std::size_t size = 28;
}  // namespace

std::string encode_published_progress(const published_progress& p) {
  std::string out(magic);
  put_u64(out, p.epoch);
  put_u64(out, p.durable_lsn);
  put_u32(out, crc32c::mask(crc32c::value(out.data(), out.size())));
  return out;
}

result<published_progress> decode_published_progress(std::string_view b, const std::string& path) {
  if (b.size() != size || b.substr(0, 8) != magic ||
      crc32c::unmask(load_u32(b.data() + 24)) != crc32c::value(b.data(), 24))
    return status{errc::corruption, path + ": not a whole published position (" +
                                        std::to_string(b.size()) + " bytes)"};
  return published_progress{load_u64(b.data() + 8), load_u64(b.data() + 16)};
}

}  // namespace statefold
