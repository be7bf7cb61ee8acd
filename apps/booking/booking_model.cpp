#include "booking_model.hpp"

namespace booking {

using statefold::byte_reader;
using statefold::put_bytes;
using statefold::put_u8;
using statefold::put_varint;

const char* to_string(event_type t) {
  switch (t) {
    case event_type::created: return "created";
    case event_type::seats_changed: return "seats_changed";
    case event_type::payment: return "payment";
    case event_type::confirmed: return "confirmed";
    case event_type::cancelled: return "cancelled";
  }
  return "?";
}

std::optional<event_type> event_type_from(std::string_view s) {
  for (auto t : {event_type::created, event_type::seats_changed, event_type::payment,
                 event_type::confirmed, event_type::cancelled})
    if (s == to_string(t)) return t;
  return std::nullopt;
}

const char* to_string(booking_status s) {
  switch (s) {
    case booking_status::unknown: return "unknown";
    case booking_status::pending: return "pending";
    case booking_status::confirmed: return "confirmed";
    case booking_status::cancelled: return "cancelled";
  }
  return "?";
}

statefold::effect model::apply(state& s, const event& e) {
  s.last_event_id = e.event_id;
  if (!e.session.empty()) s.session = e.session;
  bool ok = false;
  const char* verdict = "";
  switch (e.type) {
    case event_type::created:
      ok = s.status == booking_status::unknown;
      verdict = "created twice";
      if (ok) {
        s.status = booking_status::pending;
        s.show = e.show;
        s.customer = e.customer;
        s.seats = e.seats;
        s.price_cents = e.price_cents;
      }
      break;
    case event_type::seats_changed:
      ok = s.status == booking_status::pending;
      verdict = "seats changed when not pending";
      if (ok) s.seats = e.seats;
      break;
    case event_type::payment:
      ok = s.status == booking_status::pending || s.status == booking_status::confirmed;
      verdict = s.status == booking_status::cancelled ? "payment after cancellation"
                                                      : "payment before the booking was created";
      if (ok) s.paid_cents += e.amount_cents;
      break;
    case event_type::confirmed:
      ok = s.status == booking_status::pending && s.paid_cents >= s.seats * s.price_cents;
      verdict = s.status == booking_status::pending ? "confirmed before full payment"
                                                    : "confirmed when not pending";
      if (ok) s.status = booking_status::confirmed;
      break;
    case event_type::cancelled:
      ok = s.status == booking_status::pending || s.status == booking_status::confirmed;
      verdict = "cancelled when not pending or confirmed";
      if (ok) s.status = booking_status::cancelled;
      break;
  }
  if (s.status == booking_status::unknown && e.type != event_type::created)
    verdict = "event before the booking was created";
  ++(ok ? s.events : s.rejected);
  return {ok ? std::string_view() : std::string_view(verdict), false};
}

nlohmann::ordered_json to_json(std::string_view booking_id, const state& s) {
  nlohmann::ordered_json j;
  j["booking_id"] = std::string(booking_id);
  j["status"] = to_string(s.status);
  j["show"] = s.show;
  j["customer"] = s.customer;
  j["seats"] = s.seats;
  j["price_cents"] = s.price_cents;
  j["paid_cents"] = s.paid_cents;
  j["events"] = s.events;
  j["rejected"] = s.rejected;
  j["last_event_id"] = s.last_event_id;
  j["session"] = s.session;
  return j;
}

// Binary codecs: a version byte first, so the formats can evolve. The event ID, booking ID
// and session are in statefold's envelope (logged once there): decode takes them from it.
void model::encode_event(const event& e, std::string& out) {
  put_u8(out, 2);
  put_u8(out, static_cast<uint8_t>(e.type));
  switch (e.type) {
    case event_type::created:
      put_bytes(out, e.show);
      put_bytes(out, e.customer);
      put_varint(out, static_cast<uint64_t>(e.seats));
      put_varint(out, static_cast<uint64_t>(e.price_cents));
      break;
    case event_type::seats_changed:
      put_varint(out, static_cast<uint64_t>(e.seats));
      break;
    case event_type::payment:
      put_varint(out, static_cast<uint64_t>(e.amount_cents));
      break;
    case event_type::confirmed:
      break;
    case event_type::cancelled:
      put_bytes(out, e.reason);
      break;
  }
}

bool model::decode_event(std::string_view in, const statefold::event_context& ctx, event& e) {
  byte_reader r(in);
  uint8_t version, type;
  if (!r.u8(version) || version != 2 || !r.u8(type) || type < 1 || type > 5) return false;
  e.type = static_cast<event_type>(type);
  e.event_id = ctx.event_id;
  e.booking_id = ctx.key;
  e.session = ctx.session;
  uint64_t a = 0, b = 0;
  std::string_view s1, s2;
  switch (e.type) {
    case event_type::created:
      if (!r.bytes(s1) || !r.bytes(s2) || !r.varint(a) || !r.varint(b)) return false;
      e.show = s1;
      e.customer = s2;
      e.seats = static_cast<int64_t>(a);
      e.price_cents = static_cast<int64_t>(b);
      break;
    case event_type::seats_changed:
      if (!r.varint(a)) return false;
      e.seats = static_cast<int64_t>(a);
      break;
    case event_type::payment:
      if (!r.varint(a)) return false;
      e.amount_cents = static_cast<int64_t>(a);
      break;
    case event_type::confirmed:
      break;
    case event_type::cancelled:
      if (!r.bytes(s1)) return false;
      e.reason = s1;
      break;
  }
  return r.empty();
}

void model::encode_state(const state& s, std::string& out) {
  put_u8(out, 1);
  put_u8(out, static_cast<uint8_t>(s.status));
  put_bytes(out, s.show);
  put_bytes(out, s.customer);
  put_varint(out, static_cast<uint64_t>(s.seats));
  put_varint(out, static_cast<uint64_t>(s.price_cents));
  put_varint(out, static_cast<uint64_t>(s.paid_cents));
  put_varint(out, s.events);
  put_varint(out, s.rejected);
  put_bytes(out, s.last_event_id);
  put_bytes(out, s.session);
}

bool model::decode_state(std::string_view in, state& s) {
  byte_reader r(in);
  uint8_t version, st;
  std::string_view show, customer, last, session;
  uint64_t seats, price, paid;
  if (!r.u8(version) || version != 1 || !r.u8(st) || st > 3 || !r.bytes(show) ||
      !r.bytes(customer) || !r.varint(seats) || !r.varint(price) || !r.varint(paid) ||
      !r.varint(s.events) || !r.varint(s.rejected) || !r.bytes(last) || !r.bytes(session) ||
      !r.empty())
    return false;
  s.status = static_cast<booking_status>(st);
  s.show = show;
  s.customer = customer;
  s.seats = static_cast<int64_t>(seats);
  s.price_cents = static_cast<int64_t>(price);
  s.paid_cents = static_cast<int64_t>(paid);
  s.last_event_id = last;
  s.session = session;
  return true;
}

}  // namespace booking
