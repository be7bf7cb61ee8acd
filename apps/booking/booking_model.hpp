#pragma once

// The ticket-booking model from the seed: a booking's consumer loads its state, applies an
// event, saves it, and skips events it has already processed. Here, statefold does the
// loading, saving and skipping; this file is only the domain: events, state, rules, codecs.
//
// Rules (deterministic; a rule violation is counted in `rejected` and changes nothing else —
// it is state, logged like any event, not an error):
//   created        only once, as the first event of a booking; sets show, customer, seats,
//                  price; status pending
//   seats_changed  only while pending
//   payment        not after cancelled; adds to paid_cents (over-payment is allowed)
//   confirmed      only while pending, and only when paid_cents >= seats * price_cents
//   cancelled      not twice
//   any event before `created` is rejected (the booking shows status "unknown" until created)

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "statefold/coding.hpp"
#include "statefold/model.hpp"

namespace booking {

enum class event_type : uint8_t { created = 1, seats_changed, payment, confirmed, cancelled };
enum class booking_status : uint8_t { unknown = 0, pending, confirmed, cancelled };

const char* to_string(event_type t);
/// The event type named `s` ("created", ...), or nullopt.
std::optional<event_type> event_type_from(std::string_view s);
const char* to_string(booking_status s);

struct event {
  std::string event_id;
  std::string booking_id;
  event_type type = event_type::created;
  std::string session;   // optional on any event
  std::string show;      // created
  std::string customer;  // created
  int64_t seats = 0;     // created, seats_changed: 1..100
  int64_t price_cents = 0;   // created: per seat, >= 0
  int64_t amount_cents = 0;  // payment: > 0
  std::string reason;    // cancelled, optional
};

struct state {
  booking_status status = booking_status::unknown;
  std::string show;
  std::string customer;
  int64_t seats = 0;
  int64_t price_cents = 0;
  int64_t paid_cents = 0;
  uint64_t events = 0;    // events that changed the booking
  uint64_t rejected = 0;  // events that broke a rule
  std::string last_event_id;
  std::string session;
  friend bool operator==(const state&, const state&) = default;
};

/// The state as the JSON object `get` and `export` print.
nlohmann::ordered_json to_json(std::string_view booking_id, const state& s);

struct model {
  using state = booking::state;
  using event = booking::event;
  static std::string_view key(const event& e) { return e.booking_id; }
  static std::string_view event_id(const event& e) { return e.event_id; }
  static constexpr std::string_view name = "booking";
  static constexpr uint32_t codec_version = 2;
  /// Applies the rules above; a broken rule is state (counted in `rejected`) and its verdict
  /// ("payment after cancellation") is reported to the submitter.
  static statefold::effect apply(state& s, const event& e);
  static void encode_event(const event& e, std::string& out);
  static bool decode_event(std::string_view in, const statefold::event_context& ctx, event& e);
  static void encode_state(const state& s, std::string& out);
  static bool decode_state(std::string_view in, state& s);
};

}  // namespace booking
