#pragma once

// The inputs statefold-booking consumes, as sources with positions (docs/semantics.md,
// "Sources and positions"): the lines of a file or of standard input (position: the line's
// byte offset), or the generated demo workload (position: the event's index).
//
// An input also keeps a fingerprint of what it has read: XXH3-64 of every byte before its
// position (the demo: of every event before it, in the model's encoding). A consumer records
// it with its progress (engine::mark_consumed), and a later run refuses an input whose
// consumed part hashes differently: another file under the same source name.
//
// Single-threaded.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "booking_model.hpp"
#include "statefold/envelope.hpp"
#include "statefold/status.hpp"

namespace booking {

/// One item of an input: an event, or a malformed line (and why), or a blank line.
struct input_item {
  uint64_t position = 0;  ///< where the item starts in its source
  uint64_t line = 0;      ///< 1-based line number (the demo: event number)
  std::optional<event> ev;
  std::string why;        ///< malformed: what is wrong (already escaped for printing)
  bool blank = false;     ///< an empty line: nothing to do
  /// The input's last line, with no '\n' after it (yet: a producer may be writing it).
  bool unterminated = false;
};

class event_input {
 public:
  virtual ~event_input() = default;
  /// The source name positions belong to (a canonical path, --source, or the demo's seed).
  const std::string& source() const noexcept { return source_; }
  /// For messages: the path as given, "stdin", or "demo".
  const std::string& label() const noexcept { return label_; }

  /// The next item; false at the end of the input. An I/O error is an error, never the end;
  /// so is an input that turns out not to be the one whose fingerprint resume() had to check
  /// ahead of the resume position (verified() then says why).
  statefold::result<bool> next(input_item& out);
  /// ok, or why the input is not the one consumed before (found by next()).
  const statefold::status& verified() const noexcept { return verified_; }
  /// true while resume() left a fingerprint to check further on: hold the events read until
  /// then (they may belong to another input).
  bool awaiting_check() const noexcept { return ahead_.has_value(); }
  /// true when the next read would wait for input (a pipe that is empty now): send what is
  /// read so far rather than hold it. Never for files and the demo.
  virtual bool would_block() { return false; }
  /// Where the next item starts: every position below it has been read.
  virtual uint64_t position() const noexcept = 0;
  /// Items read so far (lines, or demo events).
  virtual uint64_t items() const noexcept = 0;
  /// The fingerprint of positions [0, position()).
  virtual uint64_t fingerprint() const noexcept = 0;
  /// The fingerprint of every position below the item next() returned last.
  virtual uint64_t fingerprint_before_item() const noexcept = 0;
  /// Positions in all (a file's size, the demo's event count), when known: for progress.
  virtual std::optional<uint64_t> total() const noexcept = 0;

  /// Moves to `p.next` without parsing (past every item that starts below it), checking the
  /// fingerprint at `p.fingerprint_at` on the way — or, when it lies beyond `p.next`, further
  /// on, as next() gets there (awaiting_check()). Fails, naming the source, when the input is
  /// shorter than that or hashes differently: it is not the input that was consumed before.
  statefold::status resume(const statefold::source_progress& p);

 protected:
  event_input(std::string source, std::string label)
      : source_(std::move(source)), label_(std::move(label)) {}
  /// The next item (see next()).
  virtual statefold::result<bool> read_item(input_item& out) = 0;
  /// Advances past one item without parsing it; false at the end.
  virtual statefold::result<bool> skip() = 0;

 private:
  statefold::status mismatch(const std::string& what, uint64_t next) const;

  std::string source_;
  std::string label_;
  std::optional<statefold::source_progress> ahead_;  // a fingerprint to check past the resume point
  statefold::status verified_;
};

/// JSON Lines from a file, or from standard input ("-"; it cannot seek, so a resume reads
/// what it skips). `source` empty: the file's canonical path (required for stdin).
/// A line longer than max_line_bytes is malformed (and skipped whole). A read that a signal
/// interrupts fails (errc::failed) once `*stop` is set, and is retried otherwise.
statefold::result<std::unique_ptr<event_input>> open_lines(const std::string& path,
                                                           std::string source,
                                                           const std::atomic<bool>* stop = nullptr);
inline constexpr std::size_t max_line_bytes = 1u << 20;

struct demo_options {
  uint64_t events = 1'000'000;
  uint64_t bookings = 250'000;
  double duplicates = 0.02;
  uint64_t seed = 1;
};
/// The generated demo workload: realistic bookings, interleaved as concurrent sessions would
/// send them, with `duplicates` of the events sent again. Deterministic for a seed; its
/// source name carries the seed, bookings and duplicate rate, so a rerun with more events
/// continues where the last one stopped.
std::unique_ptr<event_input> open_demo(const demo_options& o);

/// `s` made safe to print: control characters, DEL, backslash and bytes >= 0x80 become
/// \xNN escapes, and it is cut at `max` bytes ("... (N bytes)"). Input is data, not terminal
/// output.
std::string printable(std::string_view s, std::size_t max = 120);

}  // namespace booking
