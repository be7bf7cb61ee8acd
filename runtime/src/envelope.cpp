#include "statefold/envelope.hpp"

namespace statefold {

result<envelope_view> decode_envelope(std::string_view payload) {
  byte_reader r(payload);
  envelope_view v;
  uint8_t flags;
  auto bad = [](const char* what) {
    return status{errc::corruption, std::string("event envelope: ") + what};
  };
  if (!r.u8(flags)) return bad("empty payload");
  if (flags & ~0x0f) return bad("unknown flag bits");
  if (!r.bytes(v.event_id)) return bad("event ID length exceeds the record");
  if (v.event_id.empty()) return bad("empty event ID");
  if (!r.bytes(v.key)) return bad("key length exceeds the record");
  if ((flags & 1) && !r.bytes(v.session)) return bad("session length exceeds the record");
  if ((flags & 2) && !r.bytes(v.correlation)) return bad("correlation length exceeds the record");
  if ((flags & 4) && !r.bytes(v.causation)) return bad("causation length exceeds the record");
  if (flags & 8) {
    v.has_source = true;
    if (!r.bytes(v.source) || !r.varint(v.source_offset)) return bad("source position truncated");
  }
  r.raw(r.remaining(), v.body);
  return v;
}

}  // namespace statefold
