#pragma once

// Logging with fields: a line about a partition, an LSN or an event carries them as JSON members
// when the logger writes JSON lines (`log_style::json`, for a log collector), and leaves them to
// the message's own words in the text format (which already names them: "partition 3: ...").
//
//   auto log = statefold::make_stderr_logger("statefold", statefold::log_style::json);
//   statefold::log_with(*log, spdlog::level::warn, {.partition = 3, .lsn = 1200},
//                       "partition {}: checkpoint at LSN {} failed: {}", 3, 1200, why);
//   // {"time":"2026-12-05T13:06:42.123Z","level":"warn","logger":"statefold",
//   //  "msg":"partition 3: checkpoint at LSN 1200 failed: ...","partition":3,"lsn":1200}
//
// The fields reach the JSON formatter through a thread-local set for the duration of the call:
// use a synchronous logger (make_stderr_logger's is), not spdlog's async one.

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace statefold {

enum class log_style { text, json };

/// "text" or "json"; nullopt otherwise.
std::optional<log_style> parse_log_style(std::string_view s);

/// What a line is about, beside its message. Empty members are left out.
struct log_fields {
  std::optional<uint32_t> partition;
  std::optional<uint64_t> lsn;
  std::string_view session;   ///< the event's session ID
  std::string_view source;    ///< a source (input) name
  std::optional<uint64_t> position;  ///< a position in that source
  std::optional<uint64_t> line;      ///< a line of an input file
};

/// A synchronous logger on stderr. Text: "[13:06:42.123] warn message" (colored on a terminal).
/// JSON: one object per line with time (UTC, ms), level, logger, msg and the line's fields.
/// Not registered with spdlog's registry: make as many as you like.
std::shared_ptr<spdlog::logger> make_stderr_logger(const std::string& name, log_style style);

namespace detail {
/// The fields of the line being logged on this thread (nullptr: none); see log_with.
const log_fields* current_log_fields() noexcept;
void set_current_log_fields(const log_fields* f) noexcept;
/// `s` as the inside of a JSON string: quotes, backslashes and control characters escaped,
/// bytes that are not UTF-8 replaced by U+FFFD.
void append_json_string(std::string& out, std::string_view s);
}  // namespace detail

/// Logs one line with fields (see the top of this file).
template <class... Args>
void log_with(spdlog::logger& log, spdlog::level::level_enum level, const log_fields& fields,
              fmt::format_string<Args...> format, Args&&... args) {
  if (!log.should_log(level)) return;
  const log_fields* outer = detail::current_log_fields();
  detail::set_current_log_fields(&fields);
  try {
    log.log(level, format, std::forward<Args>(args)...);
  } catch (...) {
    detail::set_current_log_fields(outer);
    throw;
  }
  detail::set_current_log_fields(outer);
}

}  // namespace statefold
