#pragma once

// The envelope: what statefold logs around a user's event.
//
// Event ID (idempotency) and key (routing, state ownership) come from the model; the optional
// session / correlation / causation IDs and the source position (e.g. a Kafka topic-partition
// and offset) ride along so that tools, logs and acknowledgements can show them.
//
// Logged payload of a record of type `event` (all lengths varint, see coding.hpp):
//   flags u8 (bit0 session, bit1 correlation, bit2 causation, bit3 source)
//   event_id bytes | key bytes | [session bytes] [correlation bytes] [causation bytes]
//   [source bytes, source offset varint] | body: the model's event encoding, to the end

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "statefold/status.hpp"

namespace statefold {

struct source_position {
  std::string source;   ///< e.g. "bookings/3" (topic/partition)
  uint64_t offset = 0;
  friend bool operator==(const source_position&, const source_position&) = default;
};

struct event_meta {
  std::string session;
  std::string correlation;
  std::string causation;
  std::optional<source_position> source;
};

/// A decoded record payload; views into the record bytes.
struct envelope_view {
  std::string_view event_id;
  std::string_view key;
  std::string_view session;
  std::string_view correlation;
  std::string_view causation;
  bool has_source = false;
  std::string_view source;
  uint64_t source_offset = 0;
  std::string_view body;
};

/// Appends the envelope encoding to `out`; `encode_body` appends the model's event bytes.
template <class BodyEncoder>
void encode_envelope(std::string& out, std::string_view event_id, std::string_view key,
                     const event_meta& meta, BodyEncoder&& encode_body);

/// Parses a payload; every length is bounds-checked. errc::corruption names what is wrong.
result<envelope_view> decode_envelope(std::string_view payload);

}  // namespace statefold

#include "statefold/coding.hpp"

namespace statefold {

template <class BodyEncoder>
void encode_envelope(std::string& out, std::string_view event_id, std::string_view key,
                     const event_meta& meta, BodyEncoder&& encode_body) {
  uint8_t flags = (meta.session.empty() ? 0 : 1) | (meta.correlation.empty() ? 0 : 2) |
                  (meta.causation.empty() ? 0 : 4) | (meta.source ? 8 : 0);
  put_u8(out, flags);
  put_bytes(out, event_id);
  put_bytes(out, key);
  if (flags & 1) put_bytes(out, meta.session);
  if (flags & 2) put_bytes(out, meta.correlation);
  if (flags & 4) put_bytes(out, meta.causation);
  if (flags & 8) {
    put_bytes(out, meta.source->source);
    put_varint(out, meta.source->offset);
  }
  encode_body(out);
}

}  // namespace statefold
