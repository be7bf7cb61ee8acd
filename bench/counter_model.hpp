#pragma once

// The benchmarks' Model: a counter per key. Events carry an amount and padding, so that a
// logged record has the size a benchmark asks for.

#include <cstdint>
#include <string>
#include <string_view>

#include "statefold/coding.hpp"
#include "statefold/model.hpp"

namespace statefold::bench {

struct counter_model {
  struct state {
    uint64_t count = 0;
    int64_t sum = 0;
  };
  struct event {
    std::string id;
    std::string key;
    int64_t amount = 0;
    std::string pad;
  };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) {
    ++s.count;
    s.sum += e.amount;
  }
  static void encode_event(const event& e, std::string& out) {
    put_u64(out, static_cast<uint64_t>(e.amount));
    out.append(e.pad);
  }
  static bool decode_event(std::string_view in, const event_context& ctx, event& e) {
    e.id = ctx.event_id;
    e.key = ctx.key;
    byte_reader r(in);
    uint64_t a;
    if (!r.u64(a)) return false;
    e.amount = static_cast<int64_t>(a);
    return true;
  }
  static void encode_state(const state& s, std::string& out) {
    put_u64(out, s.count);
    put_u64(out, static_cast<uint64_t>(s.sum));
  }
  static bool decode_state(std::string_view in, state& s) {
    byte_reader r(in);
    uint64_t sum;
    if (!r.u64(s.count) || !r.u64(sum)) return false;
    s.sum = static_cast<int64_t>(sum);
    return true;
  }
};

}  // namespace statefold::bench
