#pragma once

// Shared helpers of the fuzz targets (tests/fuzz). Not part of any normal build.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "booking_model.hpp"

namespace statefold::fuzz {

/// A broken invariant is a finding: print why and abort, so libFuzzer saves the input.
[[noreturn]] inline void finding(const std::string& why) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", why.c_str());
  std::fflush(stderr);
  std::abort();
}
#define FUZZ_CHECK(cond, why)                                                        \
  do {                                                                               \
    if (!(cond)) ::statefold::fuzz::finding(std::string(__FILE__ ":") +              \
                                            std::to_string(__LINE__) + ": " + (why)); \
  } while (0)

/// Reads every byte of `s` (ASan then sees any out-of-bounds or freed view).
inline void touch(std::string_view s) {
  static volatile uint8_t sink;
  uint8_t acc = 0;
  for (char c : s) acc = static_cast<uint8_t>(acc ^ static_cast<uint8_t>(c));
  sink = static_cast<uint8_t>(sink + acc);
}

inline bool same_event(const booking::event& a, const booking::event& b) {
  return a.event_id == b.event_id && a.booking_id == b.booking_id && a.type == b.type &&
         a.session == b.session && a.show == b.show && a.customer == b.customer &&
         a.seats == b.seats && a.price_cents == b.price_cents &&
         a.amount_cents == b.amount_cents && a.reason == b.reason;
}

/// decode(encode(e)) must give e back, and encoding it again must give the same bytes.
inline void check_booking_event_round_trip(const booking::event& e, const char* origin) {
  std::string bytes;
  booking::model::encode_event(e, bytes);
  booking::event back;
  statefold::event_context ctx;
  ctx.event_id = e.event_id;
  ctx.key = e.booking_id;
  ctx.session = e.session;
  FUZZ_CHECK(booking::model::decode_event(bytes, ctx, back),
             std::string(origin) + ": booking event re-encoding does not decode");
  FUZZ_CHECK(same_event(e, back), std::string(origin) + ": booking event round trip differs");
  std::string again;
  booking::model::encode_event(back, again);
  FUZZ_CHECK(again == bytes, std::string(origin) + ": booking event re-encoding is not stable");
}

inline void check_booking_state_round_trip(const booking::state& s, const char* origin) {
  std::string bytes;
  booking::model::encode_state(s, bytes);
  booking::state back;
  FUZZ_CHECK(booking::model::decode_state(bytes, back),
             std::string(origin) + ": booking state re-encoding does not decode");
  FUZZ_CHECK(back == s, std::string(origin) + ": booking state round trip differs");
}

}  // namespace statefold::fuzz
