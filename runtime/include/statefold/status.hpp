#pragma once

// status and result<T>: value-returned errors for I/O and corruption.
//
// The shape follows absl::Status / std::expected so that moving to std::expected (C++23)
// later is mechanical. Both types are [[nodiscard]]: an error is looked at, or ignored
// explicitly and greppably with `ignore(status)`.

#include <cassert>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace statefold {

/// What went wrong, coarse enough to branch on. The message says where.
enum class errc {
  ok = 0,
  invalid_argument,   ///< the caller passed something unusable (bad option, bad event)
  not_found,          ///< a file or key that must exist does not
  already_exists,
  corruption,         ///< bytes on disk fail a check: CRC, magic, bounds, LSN order
  io_error,           ///< the OS reported an error (EIO, ...); never treated as end of file
  no_space,           ///< ENOSPC
  locked,             ///< another process (or handle) owns the data directory
  config_mismatch,    ///< the MANIFEST disagrees with the configuration
  fenced,             ///< a newer owner (epoch) exists; this writer may not append
  failed,             ///< the component failed earlier and refuses further work
  unsupported,        ///< a format version or feature this build does not know
  crashed,            ///< a simulated crash (fault-injecting file system only)
  busy,               ///< not accepted now (backpressure); nothing was done, retry later
};

/// Short, stable name of a code ("corruption", "io_error", ...).
const char* to_string(errc code) noexcept;

/// The outcome of an operation that returns no value. Cheap when ok (no allocation).
class [[nodiscard]] status {
 public:
  status() noexcept = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {
    assert(code != errc::ok);
  }

  static status ok() noexcept { return status{}; }

  bool is_ok() const noexcept { return code_ == errc::ok; }
  explicit operator bool() const noexcept { return is_ok(); }
  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  /// "corruption: <message>", or "ok".
  std::string to_string() const;

  /// Returns a copy whose message is prefixed with `context: `.
  status with_context(const std::string& context) const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

/// Explicitly drops a status. Grep for `ignore(` to find every place an error is not acted on.
inline void ignore(const status&) noexcept {}

/// A value or a (non-ok) status.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(status st) : v_(std::in_place_index<1>, std::move(st)) {    // NOLINT
    assert(!std::get<1>(v_).is_ok() && "result<T> built from an ok status has no value");
  }
  result(errc code, std::string message) : result(status{code, std::move(message)}) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return checked(), std::get<0>(v_); }
  const T& value() const& { return checked(), std::get<0>(v_); }
  T&& value() && { return checked(), std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !has_value().
  const status& error() const& {
    assert(!has_value());
    return std::get<1>(v_);
  }
  status take_error() && {
    assert(!has_value());
    return std::get<1>(std::move(v_));
  }
  /// ok() when there is a value, else the error.
  status to_status() const { return has_value() ? status::ok() : std::get<1>(v_); }

 private:
  void checked() const {
    if (!has_value()) {
      // Reading the value of a failed result is a bug in the caller, never a recoverable error.
      std::abort();
    }
  }
  std::variant<T, status> v_;
};

}  // namespace statefold

/// Returns early from the enclosing function when `expr` (a status) is not ok.
#define SF_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    if (::statefold::status sf_st_ = (expr); !sf_st_.is_ok()) return sf_st_; \
  } while (0)

#define SF_CONCAT_INNER_(a, b) a##b
#define SF_CONCAT_(a, b) SF_CONCAT_INNER_(a, b)
/// `SF_ASSIGN_OR_RETURN(auto x, make_x());` — binds the value or returns the error.
#define SF_ASSIGN_OR_RETURN(lhs, expr) SF_ASSIGN_OR_RETURN_IMPL_(SF_CONCAT_(sf_r_, __LINE__), lhs, expr)
#define SF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.has_value()) return std::move(tmp).take_error(); \
  lhs = std::move(tmp).value()
