#pragma once

// What a user writes to describe their domain: a Model, a struct of static functions.
//
//   struct booking_model {
//     using state = booking;                   // per-key state: default-constructible, copyable
//     using event = booking_event;
//     static std::string_view key(const event&);        // routing / ownership key, non-empty
//     static std::string_view event_id(const event&);   // idempotency: (key, event ID) is the identity
//     static void apply(state&, const event&);          // deterministic; may throw to refuse it
//     static void encode_event(const event&, std::string& out);       // append bytes
//     static bool decode_event(std::string_view body, const statefold::event_context& ctx,
//                              event& out);             // ctx: the logged ID, key and metadata
//     static void encode_state(const state&, std::string& out);
//     static bool decode_state(std::string_view in, state& out);
//   };
//
// Optional members, detected at compile time (a Model without them keeps compiling):
//   apply(state&, const event&, const statefold::event_context&)  sees the envelope (session,
//          correlation, causation, the time it was logged, source position); either form may
//          return statefold::effect instead of void: a business verdict, or erase the entity
//   static std::string validate(const event&);        non-empty: the event is invalid, and why
//   static constexpr uint32_t codec_version = 1;      version of encode_event/encode_state;
//          recorded in the MANIFEST and in checkpoints, a mismatch is refused by name
//   static constexpr std::string_view name = "booking";  recorded in the MANIFEST: a directory
//          made by another Model is refused
//
// State must be a pure fold of the logged events: apply() may read only the state, the event
// and the context (no clock, no randomness, no I/O), so that replay rebuilds exactly what was
// acknowledged. The context's time is the logged record's, the same on replay.
// decode_event receives the event ID and key from the envelope: a Model need not encode them
// in its own bytes (the engine logs them once, in the envelope).
// The engine is templated on the Model: no virtual call or decode per event on the hot path.

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace statefold {

/// Where an event came from in its input: a source name (a file's canonical path, a Kafka
/// "topic/partition") and a position in it (a line's byte offset, a Kafka offset). Positions
/// of one source only grow; everything at or below a source's durable position is a
/// duplicate, however small the dedup window (docs/semantics.md).
struct source_position {
  std::string source;
  uint64_t offset = 0;
  friend bool operator==(const source_position&, const source_position&) = default;
};

/// The envelope of an event as statefold logged it; views valid during the call only.
struct event_context {
  std::string_view event_id;
  std::string_view key;
  std::string_view session;      ///< empty when none
  std::string_view correlation;
  std::string_view causation;
  std::string_view source;       ///< empty: no source position
  uint64_t source_offset = 0;
  uint64_t time_us = 0;          ///< when the partition logged the event (µs since the Unix epoch)
};

/// What apply() may report besides changing the state (return it, or return void).
struct effect {
  /// Empty: the event was accepted. Otherwise the business rule it broke ("payment after
  /// cancellation"): the event is still applied and logged (a refusal is state), and the
  /// verdict reaches the submitter. Must point to storage that outlives the engine (a literal).
  std::string_view verdict;
  /// Remove the entity once this event is applied; durable like any other change.
  bool erase = false;
};

namespace detail {
template <class M>
concept apply_with_context = requires(typename M::state& s, const typename M::event& e,
                                      const event_context& c) { M::apply(s, e, c); };
template <class M>
concept apply_without_context = requires(typename M::state& s, const typename M::event& e) {
  M::apply(s, e);
};
}  // namespace detail

template <class M>
concept model = requires(typename M::state& s, const typename M::state& cs,
                         typename M::event& ev, const typename M::event& e, std::string& out,
                         std::string_view in, const event_context& ctx) {
  requires std::default_initializable<typename M::state>;
  requires std::copy_constructible<typename M::state>;
  { M::key(e) } -> std::convertible_to<std::string_view>;
  { M::event_id(e) } -> std::convertible_to<std::string_view>;
  requires detail::apply_with_context<M> || detail::apply_without_context<M>;
  M::encode_event(e, out);
  { M::decode_event(in, ctx, ev) } -> std::same_as<bool>;
  M::encode_state(cs, out);
  { M::decode_state(in, s) } -> std::same_as<bool>;
};

template <class M>
concept model_with_validate = model<M> && requires(const typename M::event& e) {
  { M::validate(e) } -> std::convertible_to<std::string>;
};

/// The Model's codec version (1 when it declares none).
template <class M>
constexpr uint32_t codec_version_of() {
  if constexpr (requires { M::codec_version; }) return static_cast<uint32_t>(M::codec_version);
  else return 1;
}

/// The Model's name ("" when it declares none).
template <class M>
constexpr std::string_view model_name_of() {
  if constexpr (requires { M::name; }) return std::string_view(M::name);
  else return {};
}

/// Runs the Model's apply, whichever form it has; the effect it reports, or none.
template <model M>
effect apply_event(typename M::state& s, const typename M::event& e, const event_context& c) {
  if constexpr (detail::apply_with_context<M>) {
    if constexpr (std::is_void_v<decltype(M::apply(s, e, c))>) {
      M::apply(s, e, c);
      return {};
    } else {
      return M::apply(s, e, c);
    }
  } else {
    if constexpr (std::is_void_v<decltype(M::apply(s, e))>) {
      M::apply(s, e);
      return {};
    } else {
      return M::apply(s, e);
    }
  }
}

}  // namespace statefold
