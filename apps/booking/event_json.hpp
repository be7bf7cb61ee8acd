#pragma once

// Booking events from JSON: the one parser every input of statefold-booking goes through
// (JSON Lines files and standard input; the HTTP service's bodies). simdjson's DOM parser,
// with its runtime CPU dispatch, chosen by measurement against simdjson On-Demand and
// nlohmann::json (bench/json_bench.cpp, docs/benchmarks.md: 150 / 220 / 1,360 ns a line).
//
// Strict, because input is data from elsewhere: a line is malformed, with a reason naming the
// field, when it is not one valid JSON object (nothing may follow it; every value, unknown
// fields' included, is validated, and so is UTF-8), has a field twice, lacks a required field
// or has it with the wrong type, has an integer out of range (reported as parsed: exactly up
// to 2^64 - 1; an integer beyond 64 bits makes the line invalid JSON), an identifier over
// max_id_bytes or a text over max_text_bytes. Unknown extra fields are otherwise ignored.
//
// Not thread-safe: one event_parser per thread (parse_event() keeps one per thread).

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "booking_model.hpp"

namespace booking {

/// event_id, booking_id and session: at most this many bytes.
inline constexpr std::size_t max_id_bytes = 256;
/// show, customer, reason: at most this many bytes.
inline constexpr std::size_t max_text_bytes = 1024;

class event_parser {
 public:
  event_parser();
  ~event_parser();
  event_parser(const event_parser&) = delete;
  event_parser& operator=(const event_parser&) = delete;

  /// The event on one line, or nullopt with `why` set (what is wrong and where).
  std::optional<event> parse(std::string_view line, std::string& why);

 private:
  struct impl;  // simdjson's parser and a padded copy of the line (event_json.cpp)
  std::unique_ptr<impl> impl_;
};

/// parse() with this thread's parser.
std::optional<event> parse_event(std::string_view line, std::string& why);

}  // namespace booking
