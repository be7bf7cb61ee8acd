// Which JSON parser for booking events: statefold-booking's parser (booking::event_parser:
// simdjson's DOM parser with every check the inputs need) against the alternatives Debian
// offers, each doing the same job on the same lines: parse one JSON Lines line into a
// booking::event, checking fields and types. Google Benchmark; items/s = lines/s.
//
//   build/bench/json_bench [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
//
// The alternatives live only here, as the baselines of the measurement (docs/benchmarks.md):
//   nlohmann   nlohmann::json::parse, then field lookups (statefold-booking's parser until
//              the choice was measured; it cannot see duplicate keys)
//   ondemand   simdjson's On-Demand API, the same fields and checks, minus the messages

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "booking_model.hpp"
#include "event_json.hpp"

namespace {

using booking::event;
using booking::event_type;

// Lines shaped like the demo's: every type, sessions, a few escapes and extra fields.
std::vector<std::string> make_lines(std::size_t n) {
  std::mt19937_64 rng(42);
  std::vector<std::string> out;
  const char* types[] = {"created", "seats_changed", "payment", "confirmed", "cancelled"};
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = "B" + std::to_string(100000 + rng() % 250000);
    nlohmann::ordered_json j;
    j["event_id"] = id + "-" + std::to_string(1 + rng() % 6);
    j["booking_id"] = id;
    const char* t = types[rng() % 5];
    j["type"] = t;
    j["session"] = "sess-" + std::to_string(rng() % 1000000);
    if (std::string(t) == "created") {
      j["show"] = rng() % 10 == 0 ? "Les Mis\u00e9rables" : "Hamlet";
      j["customer"] = "customer-" + std::to_string(rng() % 50000);
      j["seats"] = 1 + static_cast<int>(rng() % 6);
      j["price_cents"] = 2500 + static_cast<int>(rng() % 20) * 500;
    } else if (std::string(t) == "seats_changed") {
      j["seats"] = 1 + static_cast<int>(rng() % 6);
    } else if (std::string(t) == "payment") {
      j["amount_cents"] = 1000 + static_cast<int>(rng() % 20000);
    } else if (std::string(t) == "cancelled") {
      j["reason"] = "customer \"request\"";
    }
    if (rng() % 20 == 0) j["source_system"] = "box-office";
    out.push_back(j.dump());
  }
  return out;
}

const std::vector<std::string>& lines() {
  static const auto l = make_lines(20000);
  return l;
}

// -- baseline 1: nlohmann ----------------------------------------------------------------------


// Field readers: false (with `why`) when the field is missing or has the wrong JSON type.
bool nl_string(const nlohmann::json& j, const char* name, std::string& out, std::string& why,
                bool required = true) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (required) why = std::string("missing field '") + name + "'";
    return !required;
  }
  if (!it->is_string()) {
    why = std::string("field '") + name + "' must be a string";
    return false;
  }
  out = it->get<std::string>();
  if (required && out.empty()) {
    why = std::string("field '") + name + "' must not be empty";
    return false;
  }
  return true;
}

bool nl_int(const nlohmann::json& j, const char* name, int64_t& out, std::string& why,
             int64_t min, int64_t max) {
  auto it = j.find(name);
  if (it == j.end()) {
    why = std::string("missing field '") + name + "'";
    return false;
  }
  if (!it->is_number_integer()) {
    why = std::string("field '") + name + "' must be an integer";
    return false;
  }
  out = it->get<int64_t>();
  if (out < min || out > max) {
    why = std::string("field '") + name + "' is " + std::to_string(out) + ", outside " +
          std::to_string(min) + ".." + std::to_string(max);
    return false;
  }
  return true;
}

std::optional<event> parse_nlohmann(std::string_view line, std::string& why) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    why = "not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    why = "not a JSON object";
    return std::nullopt;
  }
  event e;
  std::string type;
  if (!nl_string(j, "event_id", e.event_id, why) || !nl_string(j, "booking_id", e.booking_id, why) ||
      !nl_string(j, "type", type, why) || !nl_string(j, "session", e.session, why, false))
    return std::nullopt;
  auto t = booking::event_type_from(type);
  if (!t) {
    why = "unknown type";
    return std::nullopt;
  }
  e.type = *t;
  constexpr int64_t max_cents = int64_t{1} << 40;
  switch (e.type) {
    case event_type::created:
      if (!nl_string(j, "show", e.show, why) || !nl_string(j, "customer", e.customer, why) ||
          !nl_int(j, "seats", e.seats, why, 1, 100) || !nl_int(j, "price_cents", e.price_cents, why, 0, max_cents))
        return std::nullopt;
      break;
    case event_type::seats_changed:
      if (!nl_int(j, "seats", e.seats, why, 1, 100)) return std::nullopt;
      break;
    case event_type::payment:
      if (!nl_int(j, "amount_cents", e.amount_cents, why, 1, max_cents)) return std::nullopt;
      break;
    case event_type::confirmed:
      break;
    case event_type::cancelled:
      if (!nl_string(j, "reason", e.reason, why, false)) return std::nullopt;
      break;
  }
  return e;
}

// -- baseline 2: simdjson On-Demand -------------------------------------------------------------

// The same fields and checks through the On-Demand API. Its parser is inlined into this file
// and compiled for the build's baseline CPU (simdjson's "fallback" kernel here: no -march),
// while the DOM parser, in libsimdjson, picks the best kernel at run time. On-Demand also
// skips what it is not asked for: an unknown field's value is not validated.
struct ondemand_parser {
  simdjson::ondemand::parser parser;
  std::string padded;

  std::optional<event> parse(std::string_view line, std::string& why) {
    padded.assign(line);
    padded.append(simdjson::SIMDJSON_PADDING, ' ');
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    if (parser.iterate(simdjson::padded_string_view(padded.data(), line.size(), padded.size())).get(doc) ||
        doc.get_object().get(obj)) {
      why = "not a JSON object";
      return std::nullopt;
    }
    event e;
    std::string type;
    int seen = 0;
    for (auto member : obj) {
      simdjson::ondemand::field kv;
      std::string_view key, s;
      int64_t n;
      if (std::move(member).get(kv) || kv.unescaped_key().get(key)) {
        why = "not valid JSON";
        return std::nullopt;
      }
      auto str = [&](int bit, std::string& out) {
        if ((seen & bit) || kv.value().get_string().get(s)) return false;
        seen |= bit;
        out.assign(s);
        return true;
      };
      auto num = [&](int bit, int64_t& out, int64_t lo, int64_t hi) {
        if ((seen & bit) || kv.value().get_int64().get(n) || n < lo || n > hi) return false;
        seen |= bit;
        out = n;
        return true;
      };
      bool ok = true;
      if (key == "event_id") ok = str(1, e.event_id);
      else if (key == "booking_id") ok = str(2, e.booking_id);
      else if (key == "type") ok = str(4, type);
      else if (key == "session") ok = str(8, e.session);
      else if (key == "show") ok = str(16, e.show);
      else if (key == "customer") ok = str(32, e.customer);
      else if (key == "reason") ok = str(64, e.reason);
      else if (key == "seats") ok = num(128, e.seats, 1, 100);
      else if (key == "price_cents") ok = num(256, e.price_cents, 0, int64_t{1} << 40);
      else if (key == "amount_cents") ok = num(512, e.amount_cents, 1, int64_t{1} << 40);
      if (!ok) {
        why = "bad field";
        return std::nullopt;
      }
    }
    auto t = booking::event_type_from(type);
    if ((seen & 7) != 7 || e.event_id.empty() || e.booking_id.empty() || !t) {
      why = "missing field";
      return std::nullopt;
    }
    e.type = *t;
    return e;
  }
};

// -- the runs ----------------------------------------------------------------------------------

template <class Parse>
void run(benchmark::State& state, Parse&& parse) {
  const auto& in = lines();
  std::size_t i = 0, bytes = 0, ok = 0;
  std::string why;
  for (auto _ : state) {
    const std::string& l = in[i++ % in.size()];
    auto e = parse(l, why);
    ok += e.has_value();
    bytes += l.size();
    benchmark::DoNotOptimize(e);
  }
  if (ok != static_cast<std::size_t>(state.iterations())) state.SkipWithError("a line did not parse");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_statefold_parser(benchmark::State& state) {
  booking::event_parser p;
  run(state, [&](std::string_view l, std::string& why) { return p.parse(l, why); });
}
void BM_nlohmann(benchmark::State& state) { run(state, parse_nlohmann); }
void BM_simdjson_ondemand(benchmark::State& state) {
  ondemand_parser p;
  run(state, [&](std::string_view l, std::string& why) { return p.parse(l, why); });
}

BENCHMARK(BM_statefold_parser);
BENCHMARK(BM_nlohmann);
BENCHMARK(BM_simdjson_ondemand);

}  // namespace

BENCHMARK_MAIN();
