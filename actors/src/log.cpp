#include "statefold/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <ctime>

namespace statefold {

namespace {

thread_local const log_fields* current_fields = nullptr;

// Bytes of the UTF-8 sequence starting at s[i] if it is one (overlong forms, surrogates and
// code points past U+10FFFF are not), else 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// One JSON object per line: time, level, logger, msg, then the fields of log_with.
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string out;
    out.reserve(160 + msg.payload.size());
    const auto t = msg.time;
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    std::tm utc{};
    ::gmtime_r(&secs, &utc);
    char when[64];
    std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
    out += "{\"time\":\"";
    out += when;
    out += "\",\"level\":\"";
    const auto level = spdlog::level::to_string_view(msg.level);
    out.append(level.data(), level.size());
    out += "\",\"logger\":\"";
    detail::append_json_string(out, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    out += "\",\"msg\":\"";
    detail::append_json_string(out, std::string_view(msg.payload.data(), msg.payload.size()));
    out += '"';
    if (const log_fields* f = current_fields) {
      auto number = [&](const char* name, const auto& v) {
        if (v) out.append(",\"").append(name).append("\":").append(std::to_string(*v));
      };
      auto text = [&](const char* name, std::string_view v) {
        if (v.empty()) return;
        out.append(",\"").append(name).append("\":\"");
        detail::append_json_string(out, v);
        out += '"';
      };
      number("partition", f->partition);
      number("lsn", f->lsn);
      text("session", f->session);
      text("source", f->source);
      number("position", f->position);
      number("line", f->line);
    }
    out += "}\n";
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

}  // namespace

std::optional<log_style> parse_log_style(std::string_view s) {
  if (s == "text") return log_style::text;
  if (s == "json") return log_style::json;
  return std::nullopt;
}

std::shared_ptr<spdlog::logger> make_stderr_logger(const std::string& name, log_style style) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
      style == log_style::json ? spdlog::color_mode::never : spdlog::color_mode::automatic);
  auto log = std::make_shared<spdlog::logger>(name, std::move(sink));
  if (style == log_style::json)
    log->set_formatter(std::make_unique<json_formatter>());
  else
    log->set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  log->set_level(spdlog::level::info);
  log->flush_on(spdlog::level::info);
  return log;
}

namespace detail {

const log_fields* current_log_fields() noexcept { return current_fields; }
void set_current_log_fields(const log_fields* f) noexcept { current_fields = f; }

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c < 0x20 || c == 0x7F) out.append("\\u00").append(1, hex[c >> 4]).append(1, hex[c & 15]);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (const std::size_t n = utf8_sequence(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
}

}  // namespace detail

}  // namespace statefold
