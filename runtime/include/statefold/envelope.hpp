#pragma once

// The envelope: what statefold logs around a user's event, and the source-progress marker.
//
// Event ID and key come from the model (together they are the event's identity); the time
// the partition logged it, the optional session / correlation / causation IDs and the source
// position (e.g. a file's byte offset, a Kafka topic-partition and offset) ride along so that
// replay, tools, logs and acknowledgements can show them.
//
// Logged payload of a record of type `event` (all lengths varint, see coding.hpp):
//   flags u8 (bit0 session, bit1 correlation, bit2 causation, bit3 source)
//   time_us varint | event_id bytes | key bytes | [session bytes] [correlation bytes]
//   [causation bytes] [source bytes, source offset varint] | body: the model's encoding, to the end
//
// Logged payload of a record of type `position` (a source consumed up to a position, without
// an event: the end of a file, lines that were malformed, a skipped poison message):
//   time_us varint | source bytes | next varint | fingerprint_at varint | fingerprint u64

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "statefold/model.hpp"  // source_position
#include "statefold/status.hpp"

namespace statefold {

struct event_meta {
  std::string session;
  std::string correlation;
  std::string causation;
  std::optional<source_position> source;
};

/// A decoded event record payload; views into the record bytes.
struct envelope_view {
  uint64_t time_us = 0;
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

/// How far one source has been consumed, as a partition knows it.
struct source_progress {
  /// Every position below `next` is consumed: an event there is a duplicate, whatever the
  /// dedup window. (The position after the last event applied, or a consumer's marker.)
  uint64_t next = 0;
  /// The consumer's fingerprint of positions [0, fingerprint_at) of its input (0: none), so
  /// that a different input under the same source name is refused on resume.
  uint64_t fingerprint_at = 0;
  uint64_t fingerprint = 0;
  friend bool operator==(const source_progress&, const source_progress&) = default;
};

/// A decoded position record payload.
struct position_view {
  uint64_t time_us = 0;
  std::string_view source;
  source_progress progress;
};

/// Appends the envelope encoding to `out`; `encode_body` appends the model's event bytes.
template <class BodyEncoder>
void encode_envelope(std::string& out, uint64_t time_us, std::string_view event_id,
                     std::string_view key, const event_meta& meta, BodyEncoder&& encode_body);

/// Parses an event payload; every length is bounds-checked. errc::corruption names what is wrong.
result<envelope_view> decode_envelope(std::string_view payload);

void encode_position(std::string& out, uint64_t time_us, std::string_view source,
                     const source_progress& p);
result<position_view> decode_position(std::string_view payload);

/// A no-op record's payload (log_format::record_type::noop): its time alone.
void encode_noop(std::string& out, uint64_t time_us);
result<uint64_t> decode_noop(std::string_view payload);

}  // namespace statefold

#include "statefold/coding.hpp"

namespace statefold {

template <class BodyEncoder>
void encode_envelope(std::string& out, uint64_t time_us, std::string_view event_id,
                     std::string_view key, const event_meta& meta, BodyEncoder&& encode_body) {
  uint8_t flags = (meta.session.empty() ? 0 : 1) | (meta.correlation.empty() ? 0 : 2) |
                  (meta.causation.empty() ? 0 : 4) | (meta.source ? 8 : 0);
  put_u8(out, flags);
  put_varint(out, time_us);
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
