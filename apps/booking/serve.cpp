// statefold-booking serve: the booking service over HTTP (statefold::http) on the engine.
//
//   POST /events            one JSON event, or JSON Lines; answered once every event is
//                           answered (durable, for applied), with one result per line
//   GET  /bookings/{id}     one booking (404 when unknown)
//   GET  /bookings?cursor=&limit=   bookings sorted by ID, a page at a time
//   GET  /metrics, /healthz, /readyz
//
// Status codes: 200 every line answered (each line's outcome in the body: applied with the
// business verdict, duplicate, conflict, rejected, malformed); 400 no line is a valid event;
// 413/431 a body or header over its limit; 503 with Retry-After when any event was not taken
// (busy: backpressure; failed: a partition is down) — retrying the whole body is safe: what
// was applied is answered duplicate. X-Source names the client's source and X-Position the
// position of the body's first line (line i: X-Position + i - 1), so a retried request is
// exactly once beyond the dedup window too.
//
// SIGTERM or SIGINT: stop accepting, answer what is in flight, sync, checkpoint, exit 0.

#include "serve.hpp"

#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "event_json.hpp"
#include "input.hpp"
#include "run_common.hpp"
#include "statefold/engine.hpp"
#include "statefold/http/engine_endpoints.hpp"

namespace booking {
namespace {

using booking_engine = statefold::engine<model>;
namespace sh = statefold::http;
using json = nlohmann::ordered_json;

sh::response json_response(unsigned code, const json& body) {
  return {code, "application/json", body.dump() + "\n", {}};
}

sh::response error_response(unsigned code, const std::string& why) {
  return json_response(code, json{{"error", why}});
}

std::string hex_of(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> unhex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return std::nullopt;
    out += static_cast<char>(v);
  }
  return out;
}

// Sources with a request in flight. A source's positions must reach the engine in order, one
// request after another: two concurrent requests of one source would let a higher position
// reach a partition first, and the lower ones would count as consumed there.
class sources_in_flight {
 public:
  bool take(const std::string& s) {
    std::lock_guard lock(mu_);
    return busy_.insert(s).second;
  }
  void give_back(const std::string& s) {
    std::lock_guard lock(mu_);
    busy_.erase(s);
  }

 private:
  std::mutex mu_;
  std::set<std::string> busy_;
};

// POST /events.
void post_events(booking_engine& e, counters& c, sources_in_flight& in_flight, sh::request& rq,
                 sh::responder answer) {
  const std::string source = rq.header("x-source");
  uint64_t first_position = 0;
  if (const std::string p = rq.header("x-position"); !p.empty()) {
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), first_position);
    if (ec != std::errc() || end != p.data() + p.size() || source.empty())
      return answer(error_response(400, source.empty() ? "X-Position needs X-Source" : "X-Position must be a number"));
  }
  if (source.size() > max_id_bytes) return answer(error_response(400, "X-Source is longer than 256 bytes"));

  struct line_result {
    uint64_t line = 0;
    std::string event_id;
    std::string malformed;  // why, when the line is not an event
  };
  auto lines = std::make_shared<std::vector<line_result>>();
  std::vector<event> events;
  std::vector<statefold::event_meta> metas;
  std::string_view body = rq.body;
  uint64_t line_no = 0;
  while (!body.empty()) {
    const auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank
    line_result r;
    r.line = line_no;
    std::string why;
    if (line.size() > max_line_bytes) {
      r.malformed = "line longer than " + std::to_string(max_line_bytes) + " bytes";
    } else if (auto ev = parse_event(line, why)) {
      r.event_id = ev->event_id;
      statefold::event_meta meta;
      meta.session = ev->session;
      if (!source.empty()) meta.source = statefold::source_position{source, first_position + line_no - 1};
      metas.push_back(std::move(meta));
      events.push_back(std::move(*ev));
    } else {
      r.malformed = why;
    }
    lines->push_back(std::move(r));
  }
  if (!source.empty() && line_no > 0 && first_position > UINT64_MAX - (line_no - 1))
    return answer(error_response(400, "X-Position + the body's lines overflow 64 bits"));
  uint64_t malformed = 0;
  for (const auto& l : *lines) malformed += !l.malformed.empty();
  c.malformed += malformed;
  if (events.empty()) {
    json j{{"error", lines->empty() ? "the body holds no event" : "no line is a valid event"}};
    json rs = json::array();
    for (const auto& l : *lines) rs.push_back({{"line", l.line}, {"outcome", "malformed"}, {"reason", l.malformed}});
    j["results"] = rs;
    return answer(json_response(400, j));
  }
  if (!source.empty() && !in_flight.take(source))
    return answer(error_response(409, "a request of source '" + printable(source) +
                                          "' is in flight: one source's requests must be sent one after "
                                          "another, in position order"));
  const std::size_t n = events.size();
  c.submitted += n;
  auto done = [lines, answer, &c, &in_flight, source](std::vector<statefold::submit_result>& rs) {
    if (!source.empty()) in_flight.give_back(source);
    json results = json::array();
    uint64_t counts[6] = {};
    bool retry = false;
    std::size_t k = 0;
    for (const auto& l : *lines) {
      if (!l.malformed.empty()) {
        results.push_back({{"line", l.line}, {"outcome", "malformed"}, {"reason", l.malformed}});
        continue;
      }
      const auto& r = rs[k++];
      json one{{"line", l.line}, {"event_id", printable(l.event_id, 1024)}, {"outcome", statefold::to_string(r.kind)}};
      ++counts[static_cast<int>(r.kind)];
      switch (r.kind) {
        case statefold::outcome::applied:
          ++c.applied;
          if (!r.verdict.empty()) {
            ++c.violations;
            one["verdict"] = std::string(r.verdict);
          }
          break;
        case statefold::outcome::duplicate: ++c.duplicates; break;
        case statefold::outcome::conflict: ++c.conflicts; break;
        case statefold::outcome::rejected: ++c.handler_errors; break;
        default:
          ++c.failed;
          retry = true;
      }
      if (r.kind != statefold::outcome::applied && !r.reason.empty()) one["reason"] = r.reason;
      results.push_back(std::move(one));
    }
    c.answered += rs.size();
    json j{{"applied", counts[0]}, {"duplicate", counts[1]}, {"conflict", counts[2]},
           {"rejected", counts[3]}, {"failed", counts[4]}, {"busy", counts[5]}, {"results", results}};
    auto resp = json_response(retry ? 503 : 200, j);
    if (retry) resp.headers.emplace_back("Retry-After", "1");
    answer(std::move(resp));
  };
  auto st = e.submit_batch(std::move(events), std::move(done), std::move(metas));
  if (!st.is_ok()) {
    if (!source.empty()) in_flight.give_back(source);
    c.failed += n;
    auto resp = error_response(503, st.to_string());
    resp.headers.emplace_back("Retry-After", "1");
    answer(std::move(resp));
  }
}

void get_booking(booking_engine& e, sh::request& rq, sh::responder answer) {
  const std::string id = sh::percent_decode(rq.path.substr(std::string("/bookings/").size()));
  if (id.empty() || id.size() > max_id_bytes) return answer(error_response(400, "a booking ID is 1 to 256 bytes"));
  auto got = e.get(id, std::chrono::seconds(2));
  if (!got) {
    auto resp = error_response(503, got.error().to_string());
    resp.headers.emplace_back("Retry-After", "1");
    return answer(std::move(resp));
  }
  if (!*got || (*got)->status == booking_status::unknown)
    return answer(error_response(404, "booking '" + printable(id) + "' is unknown"));
  answer({200, "application/json", to_json(id, **got).dump() + "\n", {}});
}

// GET /bookings?cursor=&limit=: sorted by ID; the cursor is the last ID of the previous page,
// hex-encoded (opaque to clients). Each page exports every partition: O(bookings) per page.
void list_bookings(booking_engine& e, sh::request& rq, sh::responder answer) {
  std::size_t limit = 100;
  if (const std::string l = rq.param("limit"); !l.empty()) {
    auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
    if (ec != std::errc() || end != l.data() + l.size() || limit == 0 || limit > 1000)
      return answer(error_response(400, "limit must be 1..1000"));
  }
  std::optional<std::string> after;
  if (const std::string cur = rq.param("cursor"); !cur.empty()) {
    after = unhex(cur);
    if (!after) return answer(error_response(400, "cursor is not one this service gave"));
  }
  auto all = e.export_all(std::chrono::seconds(2));
  if (!all) {
    auto resp = error_response(503, all.error().to_string());
    resp.headers.emplace_back("Retry-After", "1");
    return answer(std::move(resp));
  }
  auto it = all->begin();
  if (after)
    it = std::upper_bound(all->begin(), all->end(), *after,
                          [](const std::string& a, const auto& entry) { return a < entry.first; });
  json items = json::array();
  std::string last;
  const auto known = [](const auto& entry) { return entry.second.status != booking_status::unknown; };
  for (it = std::find_if(it, all->end(), known); it != all->end() && items.size() < limit;
       it = std::find_if(std::next(it), all->end(), known)) {
    items.push_back(to_json(it->first, it->second));
    last = it->first;
  }
  json j{{"bookings", items}};
  if (it != all->end()) j["next_cursor"] = hex_of(last);  // another known booking follows
  answer(json_response(200, j));
}

// Reads that export every partition (GET /bookings) or may wait for a restarting one run
// here, one at a time, not on an I/O thread: /healthz and /metrics stay quick meanwhile.
class slow_reads {
 public:
  slow_reads() : thread_([this] { loop(); }) {}
  ~slow_reads() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  /// false when too many are waiting (the caller answers 503).
  bool post(std::function<void()> job) {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= 64) return false;
    jobs_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

int serve(const serve_options& o) {
  // SIGINT and SIGTERM are taken by this thread with sigwait; every thread started from here
  // on inherits the block.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The port is bound before the directory is recovered: a port in use fails at once, and
  // during a long recovery /healthz answers (alive) and /readyz says it is starting.
  std::atomic<booking_engine*> ready{nullptr};
  std::atomic<bool> accepting{false};
  counters c;
  sources_in_flight in_flight;
  slow_reads slow;
  const auto starting = [] {
    sh::response r{503, "text/plain; charset=utf-8", "starting: recovering the data directory\n", {}};
    r.headers.emplace_back("Retry-After", "1");
    return r;
  };
  sh::engine_metrics_options mo;
  mo.per_partition = o.metrics_per_partition;
  std::atomic<sh::server*> http{nullptr};  // set once started: its request series
  mo.extra = [&c, &http](sh::metrics_text& mt) {
    booking_metrics(mt, c);
    if (sh::server* s = http.load()) sh::server_metrics(mt, s->stats());
  };
  std::vector<sh::route> routes = {
      {"GET", "/metrics", false,
       [&](sh::request&, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a(starting());
         a({200, std::string(sh::prometheus_content_type), sh::engine_metrics(e->stats(), mo), {}});
       }},
      {"GET", "/healthz", false,
       [&](sh::request&, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a({200, "text/plain; charset=utf-8", "ok (starting)\n", {}});
         a(sh::engine_health(e->stats()));
       }},
      {"GET", "/readyz", false,
       [&](sh::request&, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a(starting());
         a(sh::engine_ready(e->stats(), accepting.load()));
       }},
      {"POST", "/events", false,
       [&](sh::request& rq, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a(starting());
         if (!accepting) {  // SIGTERM: a request that arrived whole while draining
           sh::response r{503, "text/plain; charset=utf-8", "draining: the service is shutting down; nothing of this request was taken\n", {}};
           r.headers.emplace_back("Retry-After", "1");
           return a(std::move(r));
         }
         post_events(*e, c, in_flight, rq, std::move(a));
       }},
      {"GET", "/bookings/", true,
       [&](sh::request& rq, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a(starting());
         if (!slow.post([e, rq, a]() mutable { get_booking(*e, rq, std::move(a)); }))
           a(error_response(503, "too many reads waiting"));
       }},
      {"GET", "/bookings", false,
       [&](sh::request& rq, sh::responder a) {
         booking_engine* e = ready.load();
         if (!e) return a(starting());
         if (!slow.post([e, rq, a]() mutable { list_bookings(*e, rq, std::move(a)); }))
           a(error_response(503, "too many reads waiting"));
       }},
  };
  sh::server_options so;
  so.listen = o.listen;
  so.threads = 2;
  so.max_connections = o.max_connections;
  so.max_body_bytes = o.max_body_bytes;
  auto server = sh::server::start(so, std::move(routes));
  if (!server) {
    say(spdlog::level::err, {}, "statefold-booking: %s", server.error().to_string().c_str());
    return 1;
  }
  http = server->get();
  say(spdlog::level::info, {}, "listening on http://%s; recovering %s ...", (*server)->address().c_str(), o.data.c_str());

  statefold::engine_options eo;
  eo.dir = o.data;
  if (o.durability == "interval") eo.mode = statefold::durability::interval;
  else if (o.durability == "none") eo.mode = statefold::durability::none;
  eo.dedup_window = o.dedup_window;
  eo.when_full = statefold::backpressure::reject;  // 503 + Retry-After, never a blocked I/O thread
  eo.logger = engine_logger();
  auto m = statefold::read_manifest(statefold::posix_file_system(), o.data);
  eo.partitions = o.partitions.value_or(m ? m->partitions : 4);
  eo.lanes = o.lanes.value_or(0);  // 0: the directory's own, 1 for a new one
  auto opened = booking_engine::open(std::move(eo));
  if (!opened) {
    say(spdlog::level::err, {}, "statefold-booking: %s", opened.error().to_string().c_str());
    return 1;
  }
  auto& e = *opened.value();
  ready = &e;
  accepting = true;
  say(spdlog::level::info, {}, "serving on http://%s (POST /events, GET /bookings/ID, /bookings, /metrics, /healthz, /readyz)",
               (*server)->address().c_str());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  say(spdlog::level::info, {}, "%s: draining: answering what is in flight, then sync and checkpoint ...",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  accepting = false;
  (*server)->stop();
  const auto st = e.close();
  if (!st.is_ok()) {
    say(spdlog::level::err, {}, "statefold-booking: close: %s", st.to_string().c_str());
    return 1;
  }
  say(spdlog::level::info, {}, "stopped: %" PRIu64 " applied, %" PRIu64 " duplicates, %" PRIu64 " not taken (busy or failed)",
               c.applied.load(), c.duplicates.load(), c.failed.load());
  return 0;
}

}  // namespace booking
