#include "event_json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <vector>
#include <cstdio>

namespace booking {
namespace {


// The fields an event may have; each is read at most once, wherever it is in the object.
enum field : int { f_event_id, f_booking_id, f_type, f_session, f_show, f_customer, f_seats,
                   f_price, f_amount, f_reason, f_count };
constexpr std::array<std::string_view, f_count> field_names = {
    "event_id", "booking_id", "type", "session", "show", "customer", "seats", "price_cents",
    "amount_cents", "reason"};

int field_of(std::string_view key) {
  for (int f = 0; f < f_count; ++f)
    if (field_names[f] == key) return f;
  return -1;
}

std::string quoted(std::string_view name) { return "field '" + std::string(name) + "'"; }

bool read_string(simdjson::dom::element v, std::string_view name, std::size_t limit,
                 std::string& out, std::string& why) {
  std::string_view s;
  if (v.get_string().get(s)) {
    why = quoted(name) + " must be a string";
    return false;
  }
  if (s.size() > limit) {
    why = quoted(name) + " is " + std::to_string(s.size()) + " bytes, longer than " + std::to_string(limit);
    return false;
  }
  out.assign(s);
  return true;
}

// An integer within [min, max]. Out of range, it is reported as parsed: exactly for an
// integer (up to 2^64 - 1), to 17 digits for a number with a fraction or an exponent.
bool read_integer(simdjson::dom::element v, std::string_view name, int64_t min, int64_t max,
                  int64_t& out, std::string& why) {
  int64_t i;
  uint64_t u;
  double d;
  std::string as_written;
  if (!v.get_int64().get(i)) {
    if (i >= min && i <= max) {
      out = i;
      return true;
    }
    as_written = std::to_string(i);
  } else if (!v.get_uint64().get(u)) {
    as_written = std::to_string(u);
  } else if (!v.get_double().get(d)) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    why = quoted(name) + " must be an integer, not " + buf;
    return false;
  } else {
    why = quoted(name) + " must be an integer";
    return false;
  }
  why = quoted(name) + " is " + as_written + ", outside " + std::to_string(min) + ".." + std::to_string(max);
  return false;
}

}  // namespace

struct event_parser::impl {
  simdjson::dom::parser parser;
  std::string padded;  // the line, with the padding simdjson reads past its end
};

event_parser::event_parser() : impl_(std::make_unique<impl>()) {}
event_parser::~event_parser() = default;

std::optional<event> event_parser::parse(std::string_view line, std::string& why) {
  std::string& padded = impl_->padded;
  padded.assign(line);
  padded.append(simdjson::SIMDJSON_PADDING, ' ');
  // The whole line is parsed and validated (structure, literals, numbers, UTF-8, nothing
  // after the value), with the best kernel this CPU has (simdjson's runtime dispatch).
  simdjson::dom::element doc;
  if (auto e = impl_->parser.parse(padded.data(), line.size(), /*realloc_if_needed=*/false).get(doc)) {
    why = std::string("not valid JSON (") + simdjson::error_message(e) + ")";
    return std::nullopt;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    why = "not a JSON object";
    return std::nullopt;
  }
  // One pass over the members, wherever each field is; a field twice is malformed (which
  // value would count?), unknown fields included.
  std::array<simdjson::dom::element, f_count> value;
  std::array<bool, f_count> seen{};
  std::vector<std::string_view> other_keys;
  for (auto [key, v] : obj) {
    const int id = field_of(key);
    if (id < 0) {
      if (std::find(other_keys.begin(), other_keys.end(), key) != other_keys.end()) {
        why = "field '" + std::string(key.substr(0, 64)) + "' appears twice";
        return std::nullopt;
      }
      other_keys.push_back(key);
      continue;
    }
    if (seen[id]) {
      why = quoted(field_names[id]) + " appears twice";
      return std::nullopt;
    }
    seen[id] = true;
    value[id] = v;
  }

  // Every known field present must have its type, whether or not this event type uses it.
  for (int id = 0; id < f_count; ++id) {
    if (!seen[id]) continue;
    const bool is_number = id == f_seats || id == f_price || id == f_amount;
    if (is_number ? !(value[id].is_int64() || value[id].is_uint64() || value[id].is_double())
                  : !value[id].is_string()) {
      why = quoted(field_names[id]) + (is_number ? " must be an integer" : " must be a string");
      return std::nullopt;
    }
  }
  auto text = [&](int id, std::string& out, bool needed) {
    if (!seen[id]) {
      if (needed) why = "missing " + quoted(field_names[id]);
      return !needed;
    }
    const bool is_id = id == f_event_id || id == f_booking_id || id == f_session;
    if (!read_string(value[id], field_names[id], is_id ? max_id_bytes : max_text_bytes, out, why)) return false;
    if (needed && out.empty()) {
      why = quoted(field_names[id]) + " must not be empty";
      return false;
    }
    return true;
  };
  auto integer = [&](int id, int64_t min, int64_t max, int64_t& out) {
    if (!seen[id]) {
      why = "missing " + quoted(field_names[id]);
      return false;
    }
    return read_integer(value[id], field_names[id], min, max, out, why);
  };
  event e;
  std::string type;
  if (!text(f_event_id, e.event_id, true) || !text(f_booking_id, e.booking_id, true) ||
      !text(f_type, type, true) || !text(f_session, e.session, false))
    return std::nullopt;
  auto t = event_type_from(type);
  if (!t) {
    why = "unknown type '" + type.substr(0, 64) + "'";
    return std::nullopt;
  }
  e.type = *t;
  constexpr int64_t max_cents = int64_t{1} << 40;
  switch (e.type) {
    case event_type::created:
      if (!text(f_show, e.show, true) || !text(f_customer, e.customer, true) ||
          !integer(f_seats, 1, 100, e.seats) || !integer(f_price, 0, max_cents, e.price_cents))
        return std::nullopt;
      break;
    case event_type::seats_changed:
      if (!integer(f_seats, 1, 100, e.seats)) return std::nullopt;
      break;
    case event_type::payment:
      if (!integer(f_amount, 1, max_cents, e.amount_cents)) return std::nullopt;
      break;
    case event_type::confirmed:
      break;
    case event_type::cancelled:
      if (!text(f_reason, e.reason, false)) return std::nullopt;
      break;
  }
  return e;
}

std::optional<event> parse_event(std::string_view line, std::string& why) {
  thread_local event_parser parser;
  return parser.parse(line, why);
}

}  // namespace booking
