// Fuzz target: the event decoders. The same input is tried as
//   - a logged record payload (statefold::decode_envelope), re-encoded and compared;
//   - a JSON Lines input line (booking::parse_event), encoded to the binary form and back;
//   - a binary booking event (booking::model::decode_event), re-encoded and compared;
//   - a binary booking state and a ledger state (decode_state), re-encoded and compared.
// A round trip that does not give the same value back aborts: that is a finding.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "booking_model.hpp"
#include "event_json.hpp"
#include "fuzz_common.hpp"
#include "statefold/envelope.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

using namespace statefold;
using statefold::fuzz::touch;

namespace {

void fuzz_envelope(std::string_view in) {
  auto v = decode_envelope(in);
  if (!v) {
    FUZZ_CHECK(v.error().code() == errc::corruption, "decode_envelope: unexpected error code");
    return;
  }
  for (std::string_view s : {v->event_id, v->key, v->session, v->correlation, v->causation,
                             v->source, v->body})
    touch(s);
  FUZZ_CHECK(!v->event_id.empty(), "decode_envelope accepted an empty event ID");

  event_meta meta;
  meta.session = v->session;
  meta.correlation = v->correlation;
  meta.causation = v->causation;
  if (v->has_source) meta.source = source_position{std::string(v->source), v->source_offset};
  std::string out;
  encode_envelope(out, v->time_us, v->event_id, v->key, meta, [&](std::string& o) { o.append(v->body); });
  auto w = decode_envelope(out);
  FUZZ_CHECK(w.has_value(), "re-encoded envelope does not decode");
  FUZZ_CHECK(w->time_us == v->time_us && w->event_id == v->event_id && w->key == v->key && w->session == v->session &&
                 w->correlation == v->correlation && w->causation == v->causation &&
                 w->has_source == v->has_source && w->source == v->source &&
                 w->source_offset == v->source_offset && w->body == v->body,
             "envelope round trip differs");
}

void fuzz_json_line(std::string_view in) {
  std::string why;
  auto e = booking::parse_event(in, why);
  if (!e) {
    FUZZ_CHECK(!why.empty(), "parse_event failed without saying why");
    return;
  }
  FUZZ_CHECK(!e->event_id.empty() && !e->booking_id.empty(), "parse_event accepted empty IDs");
  fuzz::check_booking_event_round_trip(*e, "json");
  // What the booking app does with a parsed event: apply it to a fresh state and print it
  // (to_json(...).dump() throws on invalid UTF-8: the parser must not let any through).
  booking::state s;
  booking::model::apply(s, *e);
  (void)booking::to_json(e->booking_id, s).dump();
}

void fuzz_binary_event(std::string_view in) {
  booking::event e;
  statefold::event_context ctx;
  ctx.event_id = "fuzz-id";
  ctx.key = "fuzz-key";
  if (!booking::model::decode_event(in, ctx, e)) return;
  fuzz::check_booking_event_round_trip(e, "binary");
}

void fuzz_states(std::string_view in) {
  booking::state s;
  if (booking::model::decode_state(in, s)) {
    fuzz::check_booking_state_round_trip(s, "booking state");
  }
  testing::ledger_state l;
  if (testing::ledger_model::decode_state(in, l)) {
    std::string bytes;
    testing::ledger_model::encode_state(l, bytes);
    testing::ledger_state back;
    FUZZ_CHECK(testing::ledger_model::decode_state(bytes, back) && back == l,
               "ledger state round trip differs");
  }
  testing::ledger_event le;
  statefold::event_context ctx;
  ctx.event_id = "fuzz-id";
  ctx.key = "fuzz-key";
  if (testing::ledger_model::decode_event(in, ctx, le)) {
    std::string bytes;
    testing::ledger_model::encode_event(le, bytes);
    testing::ledger_event back;
    FUZZ_CHECK(testing::ledger_model::decode_event(bytes, ctx, back) && back.seq == le.seq &&
                   back.amount == le.amount,
               "ledger event round trip differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  // A view of libFuzzer's buffer, which is allocated to exactly `size` bytes: ASan sees any
  // read past the end (a std::string copy would have a readable terminating NUL).
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  fuzz_envelope(in);
  fuzz_json_line(in);
  fuzz_binary_event(in);
  fuzz_states(in);
  return 0;
}
