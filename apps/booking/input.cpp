#include "input.hpp"

#include "event_json.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "statefold/file_system.hpp"

namespace booking {

using statefold::errc;
using statefold::result;
using statefold::status;

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  const std::size_t n = std::min(s.size(), max);
  auto hex = [&](unsigned char c) {
    static const char* digits = "0123456789abcdef";
    out += "\\x";
    out += digits[c >> 4];
    out += digits[c & 15];
  };
  for (std::size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence of a printable code point (not C1 controls) stays as it is.
    std::size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (len && i + len <= n) {
      uint32_t cp = c & (0x7f >> len);
      bool ok = true;
      for (std::size_t k = 1; k < len && ok; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        ok = (cc & 0xc0) == 0x80;
        cp = (cp << 6) | (cc & 0x3f);
      }
      const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      if (ok && cp >= min && cp >= 0xa0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) &&
          cp != 0x2028 && cp != 0x2029) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
    }
    hex(c);
    ++i;
  }
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

status event_input::mismatch(const std::string& what, uint64_t next) const {
  return status{errc::config_mismatch,
                "source '" + printable(source()) + "': " + what +
                    ". It is not the input that was consumed under this name before (it is "
                    "consumed up to position " + std::to_string(next) +
                    "). To consume another input, name it with --source NAME"};
}

status event_input::resume(const statefold::source_progress& p) {
  auto check_here = [&]() -> status {
    if (p.fingerprint_at == 0 || position() != p.fingerprint_at || fingerprint() == p.fingerprint)
      return status::ok();
    return mismatch("its first " + std::to_string(p.fingerprint_at) +
                        " positions differ from what was consumed (fingerprint mismatch)",
                    p.next);
  };
  // Every item that starts below p.next is consumed (a position is consumed once the item
  // starting there is): skip items until the next one starts at or after it.
  while (position() < p.next) {
    SF_RETURN_IF_ERROR(check_here());
    const uint64_t before = position();
    SF_ASSIGN_OR_RETURN(bool more, skip());
    if (!more)
      return mismatch("it ends at position " + std::to_string(position()) + ", before " +
                          std::to_string(p.next),
                      p.next);
    if (before < p.fingerprint_at && position() > p.fingerprint_at)
      return mismatch("no item starts at position " + std::to_string(p.fingerprint_at) +
                          ", where the fingerprint was taken",
                      p.next);
  }
  SF_RETURN_IF_ERROR(check_here());
  if (p.fingerprint_at > position()) ahead_ = p;  // checked by next(), before anything is sent
  return status::ok();
}

statefold::result<bool> event_input::next(input_item& out) {
  const uint64_t before = position();
  SF_ASSIGN_OR_RETURN(bool more, read_item(out));
  if (!ahead_) return more;
  const auto& p = *ahead_;
  if (!more) {
    verified_ = mismatch("it ends at position " + std::to_string(position()) + ", before " +
                             std::to_string(p.fingerprint_at) + ", where the fingerprint was taken",
                         p.next);
  } else if (position() == p.fingerprint_at) {
    if (fingerprint() != p.fingerprint)
      verified_ = mismatch("its first " + std::to_string(p.fingerprint_at) +
                               " positions differ from what was consumed (fingerprint mismatch)",
                           p.next);
    ahead_.reset();
  } else if (before < p.fingerprint_at && position() > p.fingerprint_at) {
    verified_ = mismatch("no item starts at position " + std::to_string(p.fingerprint_at) +
                             ", where the fingerprint was taken",
                         p.next);
  }
  if (!verified_.is_ok()) {
    ahead_.reset();
    return verified_;
  }
  return more;
}

namespace {

// -- JSON Lines ----------------------------------------------------------------------------------

class line_input final : public event_input {
 public:
  line_input(std::string source, std::string label, int fd, bool owned, std::optional<uint64_t> size,
             const std::atomic<bool>* stop)
      : event_input(std::move(source), std::move(label)), fd_(fd), owned_(owned), size_(size), stop_(stop) {
    XXH3_64bits_reset(&hash_);
    before_ = hash_;
    buf_.resize(1u << 20);
  }
  ~line_input() override {
    if (owned_) ::close(fd_);
  }

  result<bool> read_item(input_item& out) override {
    std::string_view line;
    bool too_long = false;
    out = input_item{};
    out.position = pos_;
    SF_ASSIGN_OR_RETURN(bool more, read_line(line, too_long, out.unterminated));
    if (!more) return false;
    out.line = lines_;
    if (too_long) {
      out.why = "line longer than " + std::to_string(max_line_bytes) + " bytes";
      return true;
    }
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      out.blank = true;
      return true;
    }
    std::string why;
    out.ev = parse_event(line, why);
    if (!out.ev) out.why = printable(why);
    return true;
  }
  uint64_t position() const noexcept override { return pos_; }
  uint64_t items() const noexcept override { return lines_; }
  uint64_t fingerprint() const noexcept override { return XXH3_64bits_digest(&hash_); }
  uint64_t fingerprint_before_item() const noexcept override { return XXH3_64bits_digest(&before_); }
  std::optional<uint64_t> total() const noexcept override { return size_; }
  bool would_block() override {
    if (at_ < end_ || size_) return false;  // bytes buffered, or a regular file
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

 protected:
  result<bool> skip() override {
    std::string_view line;
    bool too_long = false, unterminated = false;
    return read_line(line, too_long, unterminated);
  }

 private:
  // The next line, without its '\n'; a last line without one is returned too (unterminated).
  // Every byte read is hashed: a line with its '\n' once its end is found, a line over
  // max_line_bytes as it streams by (it is consumed whole, but not returned: too_long); the
  // hash state before the line is kept (before_), for fingerprint_before_item().
  result<bool> read_line(std::string_view& line, bool& too_long, bool& unterminated) {
    line_.clear();
    too_long = false;
    unterminated = false;
    bool any = false;
    for (;;) {
      if (at_ == end_) {
        SF_ASSIGN_OR_RETURN(bool more, fill());
        if (!more) {
          if (!any) return false;
          unterminated = true;
          if (!too_long) {
            before_ = hash_;
            XXH3_64bits_update(&hash_, line_.data(), line_.size());
          }
          ++lines_;
          line = line_;
          return true;
        }
      }
      any = true;
      const char* start = buf_.data() + at_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - at_));
      const std::size_t take = nl ? static_cast<std::size_t>(nl - start) + 1 : end_ - at_;
      pos_ += take;
      at_ += take;
      const std::size_t content = nl ? take - 1 : take;
      if (!too_long && line_.size() + content > max_line_bytes) {
        too_long = true;
        before_ = hash_;
        XXH3_64bits_update(&hash_, line_.data(), line_.size());
        line_.clear();
      }
      if (too_long) XXH3_64bits_update(&hash_, start, take);
      else line_.append(start, content);
      if (nl) {
        if (!too_long) {
          before_ = hash_;  // a copy of the state: cheaper than a digest per line
          XXH3_64bits_update(&hash_, line_.data(), line_.size());
          XXH3_64bits_update(&hash_, "\n", 1);
        }
        ++lines_;
        line = line_;
        return true;
      }
    }
  }

  result<bool> fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n > 0) {
        at_ = 0;
        end_ = static_cast<std::size_t>(n);
        return true;
      }
      if (n == 0) return false;
      // A signal (SIGTERM: the run stops gracefully) interrupts a read that waits on a pipe.
      if (errno == EINTR) {
        if (stop_ && stop_->load()) return status{errc::failed, "interrupted"};
        continue;
      }
      return statefold::os_error_at("read", label(), pos_, buf_.size(), errno);
    }
  }

  int fd_;
  bool owned_;
  std::optional<uint64_t> size_;
  const std::atomic<bool>* stop_;
  std::vector<char> buf_;
  std::size_t at_ = 0, end_ = 0;
  std::string line_;
  uint64_t pos_ = 0;
  uint64_t lines_ = 0;
  XXH3_state_t hash_;
  XXH3_state_t before_;  // hash_ before the last line
};

// -- the demo workload -------------------------------------------------------------------------

// Realistic bookings, interleaved as concurrent sessions would send them: created, sometimes
// a seat change, one to three payments, then confirmed (mostly) or cancelled; a few events
// break a rule (a payment after a cancellation, a confirmation before full payment), and
// `duplicates` of the events are sent again (redeliveries of one of the last 100,000).
class demo_input final : public event_input {
 public:
  explicit demo_input(const demo_options& o)
      : event_input(source_name(o), "demo"), o_(o), rng_(o.seed) {
    XXH3_64bits_reset(&hash_);
    before_ = hash_;
  }

  static std::string source_name(const demo_options& o) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.6g", o.duplicates);
    return "demo:seed=" + std::to_string(o.seed) + ",bookings=" + std::to_string(o.bookings) +
           ",duplicates=" + rate;
  }

  result<bool> read_item(input_item& out) override {
    out = input_item{};
    out.position = emitted_;
    event e;
    if (!generate(e)) return false;
    out.line = emitted_;
    out.ev = std::move(e);
    return true;
  }
  uint64_t position() const noexcept override { return emitted_; }
  uint64_t items() const noexcept override { return emitted_; }
  uint64_t fingerprint() const noexcept override { return XXH3_64bits_digest(&hash_); }
  uint64_t fingerprint_before_item() const noexcept override { return XXH3_64bits_digest(&before_); }
  std::optional<uint64_t> total() const noexcept override { return o_.events; }

 protected:
  result<bool> skip() override {
    event e;
    return generate(e);
  }

 private:
  struct script {
    std::vector<event> events;
    std::size_t next = 0;
  };

  bool generate(event& e) {
    if (emitted_ >= o_.events || !pick(e)) return false;
    ++emitted_;
    // The fingerprint covers what identifies each event: IDs, type and the model's encoding.
    std::string bytes;
    statefold::put_bytes(bytes, e.event_id);
    statefold::put_bytes(bytes, e.booking_id);
    statefold::put_bytes(bytes, e.session);
    model::encode_event(e, bytes);
    before_ = hash_;
    XXH3_64bits_update(&hash_, bytes.data(), bytes.size());
    return true;
  }

  bool pick(event& e) {
    if (!history_.empty() && unit() < o_.duplicates) {
      e = history_[rng_() % history_.size()];
      return true;
    }
    while (active_.size() < 64 && started_ < o_.bookings) active_.push_back(start(started_++));
    if (active_.empty()) return false;
    const std::size_t i = rng_() % active_.size();
    script& s = active_[i];
    e = s.events[s.next++];
    if (s.next == s.events.size()) {
      active_[i] = std::move(active_.back());
      active_.pop_back();
    }
    if (history_.size() < 100'000) history_.push_back(e);
    else history_[rng_() % history_.size()] = e;
    return true;
  }

  double unit() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  script start(uint64_t n) {
    static const char* shows[] = {"Hamlet", "Cats", "Tosca", "Les Miserables", "Rent", "Evita"};
    script s;
    const std::string id = "B" + std::to_string(100000 + n);
    const std::string session = "sess-" + std::to_string(rng_() % 1'000'000);
    int k = 0;
    auto add = [&](event_type t) -> event& {
      event& e = s.events.emplace_back();
      e.event_id = id + "-" + std::to_string(++k);
      e.booking_id = id;
      e.type = t;
      e.session = session;
      return e;
    };
    auto& c = add(event_type::created);
    c.show = shows[rng_() % 6];
    c.customer = "customer-" + std::to_string(rng_() % 50'000);
    int64_t seats = 1 + static_cast<int64_t>(rng_() % 6);
    const int64_t price = 2500 + static_cast<int64_t>(rng_() % 20) * 500;
    c.seats = seats;
    c.price_cents = price;
    if (unit() < 0.2) {
      seats = 1 + static_cast<int64_t>(rng_() % 6);
      add(event_type::seats_changed).seats = seats;
    }
    const double fate = unit();
    if (fate < 0.03) add(event_type::confirmed);  // before paying: breaks a rule
    int64_t due = seats * price;
    const int payments = 1 + static_cast<int>(rng_() % 3);
    for (int p = 0; p < payments && due > 0; ++p) {
      const int64_t amount = p + 1 == payments ? due : std::max<int64_t>(1, due / 2);
      add(event_type::payment).amount_cents = amount;
      due -= amount;
    }
    if (fate < 0.12) {
      add(event_type::cancelled).reason = "customer request";
      if (unit() < 0.3) add(event_type::payment).amount_cents = 1000;  // after cancel
    } else {
      add(event_type::confirmed);
    }
    return s;
  }

  demo_options o_;
  std::mt19937_64 rng_;
  uint64_t emitted_ = 0;
  uint64_t started_ = 0;
  std::vector<script> active_;
  std::vector<event> history_;
  XXH3_state_t hash_;
  XXH3_state_t before_;  // hash_ before the last event
};

}  // namespace

result<std::unique_ptr<event_input>> open_lines(const std::string& path, std::string source,
                                                const std::atomic<bool>* stop) {
  if (path == "-") {
    if (source.empty())
      return status{errc::invalid_argument,
                    "--input - (standard input) needs --source NAME: a pipe has no name that "
                    "stays the same between runs, and the name is what a rerun resumes by"};
    return std::unique_ptr<event_input>(new line_input(std::move(source), "stdin", 0, false, std::nullopt, stop));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return statefold::os_error("cannot read --input", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd);
    return statefold::os_error("cannot read --input", path, err);
  }
  if (source.empty()) {
    char* real = ::realpath(path.c_str(), nullptr);
    if (!real) {
      const int err = errno;
      ::close(fd);
      return statefold::os_error("cannot resolve --input", path, err);
    }
    source = real;
    std::free(real);
  }
  std::optional<uint64_t> size;
  if (S_ISREG(st.st_mode)) size = static_cast<uint64_t>(st.st_size);
  return std::unique_ptr<event_input>(new line_input(std::move(source), path, fd, true, size, stop));
}

std::unique_ptr<event_input> open_demo(const demo_options& o) {
  return std::make_unique<demo_input>(o);
}

}  // namespace booking
