#include "statefold/status.hpp"

namespace statefold {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::corruption: return "corruption";
    case errc::io_error: return "io_error";
    case errc::no_space: return "no_space";
    case errc::locked: return "locked";
    case errc::config_mismatch: return "config_mismatch";
    case errc::fenced: return "fenced";
    case errc::failed: return "failed";
    case errc::unsupported: return "unsupported";
    case errc::crashed: return "crashed";
    case errc::busy: return "busy";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(statefold::to_string(code_)) + ": " + message_;
}

status status::with_context(const std::string& context) const {
  if (is_ok()) return *this;
  return status{code_, context + ": " + message_};
}

}  // namespace statefold
