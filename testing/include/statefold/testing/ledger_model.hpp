#pragma once

// ledger_model: a small Model whose state makes holes, repeats and lost events visible, the
// model statefold's own crash tests use (and a complete example of the Model concept).
//
// An event is (ID, key, per-key sequence number, amount); the state counts events, sums
// amounts, and counts sequence numbers that skip (gaps) or come again (repeats): an oracle
// wants both at 0 and count == last_seq. An amount of -999 makes apply() throw after changing
// the state (a handler that refuses an event half-way: the partition must rebuild).

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "statefold/coding.hpp"
#include "statefold/model.hpp"

namespace statefold::testing {

/// Event: ID, key, per-key sequence number and an amount. State: count, sum, and the
/// highest sequence number, plus counters of gaps and repeats, which the oracle wants at 0.
struct ledger_event {
  std::string id;
  std::string key;
  uint64_t seq = 0;
  int64_t amount = 0;
};
struct ledger_state {
  uint64_t count = 0;
  int64_t sum = 0;
  uint64_t last_seq = 0;
  uint64_t gaps = 0;
  uint64_t repeats = 0;
  friend bool operator==(const ledger_state&, const ledger_state&) = default;
};

struct ledger_model {
  using state = ledger_state;
  using event = ledger_event;
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) {
    if (e.amount == -999) {
      s.sum += 1'000'000;  // half-changed state before the throw: rebuild must undo it
      throw std::runtime_error("amount -999 is refused by the handler");
    }
    if (e.seq <= s.last_seq) ++s.repeats;
    else if (e.seq != s.last_seq + 1) ++s.gaps;
    s.last_seq = std::max(s.last_seq, e.seq);
    ++s.count;
    s.sum += e.amount;
  }
  static std::string validate(const event& e) {
    return e.key.empty() ? "empty key" : std::string();
  }
  static void encode_event(const event& e, std::string& out) {
    put_varint(out, e.seq);
    put_u64(out, static_cast<uint64_t>(e.amount));
  }
  static bool decode_event(std::string_view in, const event_context& ctx, event& e) {
    e.id = ctx.event_id;  // not in the body: the envelope carries them
    e.key = ctx.key;
    byte_reader r(in);
    uint64_t a;
    if (!r.varint(e.seq) || !r.u64(a) || !r.empty()) return false;
    e.amount = static_cast<int64_t>(a);
    return true;
  }
  static void encode_state(const state& s, std::string& out) {
    put_varint(out, s.count);
    put_u64(out, static_cast<uint64_t>(s.sum));
    put_varint(out, s.last_seq);
    put_varint(out, s.gaps);
    put_varint(out, s.repeats);
  }
  static bool decode_state(std::string_view in, state& s) {
    byte_reader r(in);
    uint64_t sum;
    if (!r.varint(s.count) || !r.u64(sum) || !r.varint(s.last_seq) || !r.varint(s.gaps) ||
        !r.varint(s.repeats) || !r.empty())
      return false;
    s.sum = static_cast<int64_t>(sum);
    return true;
  }
};

inline ledger_event ledger(std::string id, std::string key, uint64_t seq, int64_t amount) {
  return {std::move(id), std::move(key), seq, amount};
}

/// Every (key, state) of a partition_state, ordered by key: for comparing whole states.
template <class Partition>
std::map<std::string, typename Partition::state_type> snapshot(const Partition& p) {
  std::map<std::string, typename Partition::state_type> out;
  p.for_each([&](std::string_view k, const typename Partition::state_type& s) { out.emplace(k, s); });
  return out;
}

}  // namespace statefold::testing
