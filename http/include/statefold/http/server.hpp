#pragma once

// statefold::http::server: a small embeddable HTTP/1.1 server on Boost.Asio and Boost.Beast,
// for a service's /metrics, /healthz and /readyz, and for the booking service's API.
//
//   auto s = http::server::start({.listen = "127.0.0.1:8080"}, {
//       {"GET", "/metrics", false, [&](http::request& rq, http::responder answer) {
//          answer({200, std::string(http::prometheus_content_type), render()}); }}});
//
// A handler gets the request and a responder it calls exactly once, from any thread, now or
// later (an engine callback answers when the events are durable): the server never blocks an
// I/O thread waiting for it. Keep-alive; bounded header, body and connection counts (413, 431
// and 503 when exceeded, with the reason); a timeout for a client that sends too slowly or
// not at all; stop() stops accepting, closes idle connections, reads a request partly
// received and answers it, and lets answers in flight go out (bounded) before it returns.
//
// Threading: `threads` I/O threads run the io_context; each connection is on its own strand.
// Handlers run on an I/O thread: they must not block for long.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "statefold/histogram.hpp"
#include "statefold/status.hpp"

namespace statefold::http {

struct request {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< as sent: path and query
  std::string path;    ///< the target before '?', not decoded
  std::string query;   ///< after '?', not decoded ("" when none)
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
  /// A header's value ("" when absent); `name` lower-case.
  std::string header(std::string_view name) const;
  /// A query parameter, percent-decoded ("" when absent).
  std::string param(std::string_view name) const;
};

struct response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers (Retry-After ...)
};

/// Called exactly once per request, from any thread.
using responder = std::function<void(response)>;
using handler = std::function<void(request&, responder)>;

struct route {
  std::string method;
  std::string path;    ///< exact, or a prefix when `prefix`
  bool prefix = false;
  handler fn;
};

struct server_options {
  /// "HOST:PORT"; port 0 picks a free one (address() says which).
  std::string listen = "127.0.0.1:8080";
  int threads = 1;
  std::size_t max_connections = 512;
  std::size_t max_header_bytes = 16 << 10;
  std::size_t max_body_bytes = 32 << 20;
  /// A request must arrive whole within this (from its first byte, or from the previous
  /// answer on a kept-alive connection); otherwise the connection is closed.
  std::chrono::milliseconds read_timeout{30'000};
  /// stop() waits at most this long for answers in flight.
  std::chrono::milliseconds stop_timeout{30'000};
};

class server {
 public:
  /// Binds and starts serving; an error names the address (in use, bad host, ...).
  static result<std::unique_ptr<server>> start(server_options o, std::vector<route> routes);
  ~server();  ///< stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// "127.0.0.1:PORT", with the port actually bound.
  const std::string& address() const noexcept;
  /// Stops accepting, closes idle connections, waits (up to stop_timeout) for requests partly
  /// received to arrive whole (within read_timeout) and be answered and for answers in flight
  /// to be written, then stops the I/O threads. Handlers still run meanwhile: a service that
  /// takes nothing more answers those requests itself (serve: 503 + Retry-After). Idempotent.
  void stop();

  /// Answers by route and status code. `route` is the route's path as registered ("/bookings/*"
  /// for a prefix route), or "" for a request no route took (404, 405, a bad or oversized
  /// request): bounded by the routes, whatever the paths clients send.
  struct route_counters {
    std::string method;  ///< the route's; "" with route ""
    std::string route;
    unsigned status = 0;
    uint64_t answers = 0;
  };
  struct route_latency {
    std::string method, route;
    /// From the request read whole to its answer written (a POST /events: until its events
    /// are durable and answered).
    latency_histogram seconds;
  };
  struct counters {
    uint64_t connections = 0;  ///< accepted in all
    uint64_t open = 0;         ///< open now
    uint64_t requests = 0;
    uint64_t refused = 0;      ///< connections answered 503 (over max_connections)
    std::vector<route_counters> answers;
    std::vector<route_latency> latency;
  };
  counters stats() const;

  struct impl;

 private:
  explicit server(std::shared_ptr<impl> i);
  std::shared_ptr<impl> impl_;
};

/// %XX sequences decoded (a path segment: '+' stays '+').
std::string percent_decode(std::string_view s);

/// "IP:PORT" split; an error names what is wrong (a host name is refused: bind needs an IP).
result<std::pair<std::string, uint16_t>> parse_listen_address(std::string_view s);

}  // namespace statefold::http
