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
  if (!r.varint(v.time_us)) return bad("time truncated");
  if (!r.bytes(v.event_id)) return bad("event ID length exceeds the record");
  if (v.event_id.empty()) return bad("empty event ID");
  if (!r.bytes(v.key)) return bad("key length exceeds the record");
  if ((flags & 1) && !r.bytes(v.session)) return bad("session length exceeds the record");
  if ((flags & 2) && !r.bytes(v.correlation)) return bad("correlation length exceeds the record");
  if ((flags & 4) && !r.bytes(v.causation)) return bad("causation length exceeds the record");
  if (flags & 8) {
    v.has_source = true;
    if (!r.bytes(v.source) || !r.varint(v.source_offset)) return bad("source position truncated");
    if (v.source.empty()) return bad("empty source name");
  }
  r.raw(r.remaining(), v.body);
  return v;
}

void encode_position(std::string& out, uint64_t time_us, std::string_view source,
                     const source_progress& p) {
  put_varint(out, time_us);
  put_bytes(out, source);
  put_varint(out, p.next);
  put_varint(out, p.fingerprint_at);
  put_u64(out, p.fingerprint);
}

result<position_view> decode_position(std::string_view payload) {
  byte_reader r(payload);
  position_view v;
  if (!r.varint(v.time_us) || !r.bytes(v.source) || !r.varint(v.progress.next) ||
      !r.varint(v.progress.fingerprint_at) || !r.u64(v.progress.fingerprint) || !r.empty())
    return status{errc::corruption, "source position record: truncated or overlong"};
  if (v.source.empty()) return status{errc::corruption, "source position record: empty source name"};
  return v;
}

void encode_noop(std::string& out, uint64_t time_us) { put_varint(out, time_us); }

result<uint64_t> decode_noop(std::string_view payload) {
  byte_reader r(payload);
  uint64_t time_us = 0;
  if (!r.varint(time_us) || !r.empty()) return status{errc::corruption, "no-op record: truncated or overlong"};
  return time_us;
}

}  // namespace statefold
