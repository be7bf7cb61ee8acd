#pragma once

// What a user writes to describe their domain: a Model, a struct of static functions.
//
//   struct booking_model {
//     using state = booking;                   // per-key state, default-constructible
//     using event = booking_event;
//     static std::string_view key(const event&);        // routing / ownership key
//     static std::string_view event_id(const event&);   // idempotency key, non-empty
//     static void apply(state&, const event&);          // deterministic; may throw to reject
//     static void encode_event(const event&, std::string& out);       // append bytes
//     static bool decode_event(std::string_view in, event& out);
//     static void encode_state(const state&, std::string& out);
//     static bool decode_state(std::string_view in, state& out);
//     // optional: static std::string validate(const event&);  // non-empty = malformed, why
//   };
//
// State must be a pure fold of the logged events: apply() may read only the state and the
// event (no clock, no randomness, no I/O), so that replay rebuilds exactly what was acked.
// The engine is templated on the Model: no virtual call or decode per event on the hot path.

#include <concepts>
#include <string>
#include <string_view>

namespace statefold {

template <class M>
concept model = requires(typename M::state& s, const typename M::state& cs,
                         typename M::event& ev, const typename M::event& e, std::string& out,
                         std::string_view in) {
  requires std::default_initializable<typename M::state>;
  { M::key(e) } -> std::convertible_to<std::string_view>;
  { M::event_id(e) } -> std::convertible_to<std::string_view>;
  M::apply(s, e);
  M::encode_event(e, out);
  { M::decode_event(in, ev) } -> std::same_as<bool>;
  M::encode_state(cs, out);
  { M::decode_state(in, s) } -> std::same_as<bool>;
};

template <class M>
concept model_with_validate = model<M> && requires(const typename M::event& e) {
  { M::validate(e) } -> std::convertible_to<std::string>;
};

}  // namespace statefold
