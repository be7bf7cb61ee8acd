#include "statefold/http/server.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace statefold::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string percent_decoded(std::string_view s, bool plus_is_space = true) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

class session;

}  // namespace

struct server::impl : std::enable_shared_from_this<server::impl> {
  server_options o;
  std::vector<route> routes;
  net::io_context ioc;
  // Keeps the I/O threads running while no operation is pending: a handler's answer may come
  // after the acceptor is closed and with nothing else outstanding (stop() drops it last).
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work{ioc.get_executor()};
  tcp::acceptor acceptor{ioc};
  std::string address;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> connections{0}, requests{0}, refused{0};

  // Answers by (route, status) and latency by route; route index routes.size(): none.
  std::mutex stats_mu;
  std::map<std::pair<std::size_t, unsigned>, uint64_t> answers;
  std::vector<latency_histogram> latency;  // routes.size() + 1, sized at start
  void answered(std::size_t route, unsigned status, std::chrono::steady_clock::duration took) {
    std::lock_guard lock(stats_mu);
    ++answers[{route, status}];
    latency[route].observe(took);
  }

  std::mutex mu;
  std::condition_variable cv;
  std::size_t open = 0;                      // sessions alive
  std::vector<std::weak_ptr<session>> sessions;
  bool stopping = false;
  bool stopped = false;

  void accept();
  void session_ended() {
    std::lock_guard lock(mu);
    --open;
    cv.notify_all();
  }
};

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket s, std::shared_ptr<server::impl> srv) : stream_(std::move(s)), keep_(std::move(srv)), srv_(*keep_) {}
  ~session() { srv_.session_ended(); }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }
  /// From stop(): close now if waiting for a request; a request partly received is read
  /// whole (within the read timeout) and answered; an answer in flight goes out; then close.
  void close_when_idle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      const bool receiving = self->parser_ && self->parser_->got_some() && !self->parser_->is_done();
      if (!self->busy_ && !receiving) self->shutdown();
    });
  }

 private:
  void read() {
    if (closing_) return shutdown();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_.o.max_header_bytes));
    parser_->body_limit(srv_.o.max_body_bytes);
    stream_.expires_after(srv_.o.read_timeout);
    // The header first: a client that sent "Expect: 100-continue" waits for a 100 before
    // it sends the body (curl does so for large bodies).
    bhttp::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read(ec);
      const auto& h = self->parser_->get();
      if (beast::iequals(h[bhttp::field::expect], "100-continue") && !self->parser_->is_done()) {
        auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
        return bhttp::async_write(self->stream_, *cont, [self, cont](beast::error_code wec, std::size_t) {
          if (wec) return self->shutdown();
          self->read_body();
        });
      }
      self->read_body();
    });
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return shutdown();
    if (ec == bhttp::error::body_limit)
      return reply_and_close(413, "request body larger than " + std::to_string(srv_.o.max_body_bytes) + " bytes");
    if (ec == bhttp::error::header_limit)
      return reply_and_close(431, "request header larger than " + std::to_string(srv_.o.max_header_bytes) + " bytes");
    if (ec) return reply_and_close(400, "bad request: " + ec.message());

    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    request rq;
    rq.method = std::string(msg.method_string());
    rq.target = std::string(msg.target());
    const auto q = rq.target.find('?');
    rq.path = rq.target.substr(0, q);
    if (q != std::string::npos) rq.query = rq.target.substr(q + 1);
    for (const auto& f : msg)
      rq.headers.emplace_back(lower(std::string_view(f.name_string().data(), f.name_string().size())),
                              std::string(f.value()));
    rq.body = std::move(msg.body());
    ++srv_.requests;
    started_ = std::chrono::steady_clock::now();
    route_ = srv_.routes.size();

    const route* found = nullptr;
    bool path_known = false;
    for (const auto& r : srv_.routes) {
      const bool match = r.prefix ? rq.path.rfind(r.path, 0) == 0 : rq.path == r.path;
      if (!match) continue;
      path_known = true;
      if (r.method == rq.method) {
        found = &r;
        break;
      }
    }
    if (!found) {
      response no;
      no.status = path_known ? 405 : 404;
      no.body = path_known ? rq.method + " is not allowed on " + rq.path + "\n" : "no such path: " + rq.path + "\n";
      if (path_known) {
        std::string allow;
        for (const auto& r : srv_.routes)
          if (r.prefix ? rq.path.rfind(r.path, 0) == 0 : rq.path == r.path)
            allow += (allow.empty() ? "" : ", ") + r.method;
        no.headers.emplace_back("Allow", allow);
      }
      return write(std::move(no));
    }
    route_ = static_cast<std::size_t>(found - srv_.routes.data());
    busy_ = true;
    stream_.expires_never();  // the handler may answer later (when events are durable)
    // The session lives until the handler answers (nothing else is pending on it meanwhile),
    // and not longer because a handler keeps a copy of its responder.
    struct answer_slot {
      std::mutex mu;
      std::shared_ptr<session> s;
    };
    auto slot = std::make_shared<answer_slot>();
    slot->s = shared_from_this();
    responder respond = [slot](response r) {
      std::shared_ptr<session> self;
      {
        std::lock_guard lock(slot->mu);
        self = std::move(slot->s);
      }
      if (!self) return;  // answered already
      auto ex = self->stream_.get_executor();
      net::post(ex, [self = std::move(self), r = std::move(r)]() mutable { self->write(std::move(r)); });
    };
    try {
      found->fn(rq, respond);
    } catch (const std::exception& e) {
      respond({500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n", {}});
    }
  }

  void write(response r) {
    busy_ = true;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), 11);
    res->set(bhttp::field::server, "statefold");
    res->set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !closing_);
    res->prepare_payload();
    stream_.expires_after(srv_.o.read_timeout);  // a client that does not read its answer
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res, status = r.status](beast::error_code ec, std::size_t) {
      self->busy_ = false;
      self->srv_.answered(self->route_, status, std::chrono::steady_clock::now() - self->started_);
      self->route_ = self->srv_.routes.size();
      if (ec || !res->keep_alive()) return self->shutdown();
      self->read();
    });
  }

  void reply_and_close(unsigned status, std::string why) {
    keep_alive_ = false;
    started_ = std::chrono::steady_clock::now();
    route_ = srv_.routes.size();
    write({status, "text/plain; charset=utf-8", why + "\n", {}});
  }

  void shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<server::impl> keep_;  // a late answer (after stop() gave up waiting) finds it alive
  server::impl& srv_;
  bool keep_alive_ = true;
  std::size_t route_ = 0;  // of the request being answered; routes.size(): none
  std::chrono::steady_clock::time_point started_;
  bool busy_ = false;
  bool closing_ = false;
};

}  // namespace

void server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!acceptor.is_open()) return;
      if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
        // Out of file descriptors: back off instead of spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return accept();
    }
    ++connections;
    ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
    std::shared_ptr<session> s;
    {
      std::lock_guard lock(mu);
      if (!stopping && open < o.max_connections) {
        ++open;
        s = std::make_shared<session>(std::move(socket), shared_from_this());
        std::erase_if(sessions, [](const auto& w) { return w.expired(); });
        sessions.push_back(s);
      }
    }
    if (s) {
      s->start();
    } else {
      ++refused;
      const std::string body = "too many connections (" + std::to_string(o.max_connections) + "); retry in 1 s\n";
      const std::string busy =
          "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n"
          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      beast::error_code ignored;
      net::write(socket, net::buffer(busy.data(), busy.size()), ignored);
      socket.close(ignored);
    }
    accept();
  });
}

result<std::pair<std::string, uint16_t>> parse_listen_address(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return status(errc::invalid_argument, "listen address '" + std::string(s) + "': expected HOST:PORT");
  unsigned port = 0;
  const std::string_view p = s.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port > 65535 || p.empty())
    return status(errc::invalid_argument, "listen address '" + std::string(s) + "': the port must be 0..65535");
  std::string host(s.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  beast::error_code bad_ip;
  net::ip::make_address(host, bad_ip);
  if (bad_ip)
    return status(errc::invalid_argument, "listen address '" + std::string(s) +
                                              "': the host must be an IP address (127.0.0.1, 0.0.0.0, [::1])");
  return std::pair{host, static_cast<uint16_t>(port)};
}

result<std::unique_ptr<server>> server::start(server_options o, std::vector<route> routes) {
  SF_ASSIGN_OR_RETURN(auto hp, parse_listen_address(o.listen));
  auto i = std::make_shared<impl>();
  i->o = o;
  i->routes = std::move(routes);
  i->latency.resize(i->routes.size() + 1);
  beast::error_code ec;
  const auto addr = net::ip::make_address(hp.first, ec);
  if (ec) return status(errc::invalid_argument, "listen address '" + o.listen + "': " + ec.message());
  const tcp::endpoint ep(addr, hp.second);
  auto fail = [&](const char* what) {
    return status(errc::io_error, "http: cannot listen on " + o.listen + ": " + what + ": " + ec.message());
  };
  i->acceptor.open(ep.protocol(), ec);
  if (ec) return fail("open");
  // Asio does not set close-on-exec: a child the service spawns would keep the port open
  // (and accepting) after stop().
  ::fcntl(i->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  i->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  i->acceptor.bind(ep, ec);
  if (ec) return fail("bind");
  i->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const auto bound = i->acceptor.local_endpoint(ec);
  i->address = (bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string()) +
               ":" + std::to_string(bound.port());
  i->accept();
  for (int t = 0; t < std::max(1, o.threads); ++t) i->threads.emplace_back([p = i.get()] { p->ioc.run(); });
  return std::unique_ptr<server>(new server(std::move(i)));
}

server::server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}
server::~server() { stop(); }

const std::string& server::address() const noexcept { return impl_->address; }

server::counters server::stats() const {
  const auto& i = *impl_;
  counters c;
  c.connections = i.connections.load();
  c.requests = i.requests.load();
  c.refused = i.refused.load();
  {
    std::lock_guard lock(impl_->mu);
    c.open = i.open;
  }
  auto name = [&](std::size_t r) -> std::pair<std::string, std::string> {
    if (r >= i.routes.size()) return {};
    return {i.routes[r].method, i.routes[r].prefix ? i.routes[r].path + "*" : i.routes[r].path};
  };
  std::lock_guard lock(impl_->stats_mu);
  for (const auto& [k, n] : i.answers) {
    auto [method, route] = name(k.first);
    c.answers.push_back({std::move(method), std::move(route), k.second, n});
  }
  for (std::size_t r = 0; r < i.latency.size(); ++r) {
    if (i.latency[r].count == 0) continue;
    auto [method, route] = name(r);
    c.latency.push_back({std::move(method), std::move(route), i.latency[r]});
  }
  return c;
}

void server::stop() {
  auto& i = *impl_;
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(i.mu);
    if (i.stopped) return;
    i.stopped = true;
    i.stopping = true;
    for (auto& w : i.sessions)
      if (auto s = w.lock()) live.push_back(std::move(s));
    i.sessions.clear();
  }
  net::post(i.ioc, [&i] {
    beast::error_code ec;
    i.acceptor.close(ec);
  });
  for (auto& s : live) s->close_when_idle();
  live.clear();
  {
    std::unique_lock lock(i.mu);
    i.cv.wait_for(lock, i.o.stop_timeout, [&] { return i.open == 0; });
  }
  i.work.reset();
  i.ioc.stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
}

std::string percent_decode(std::string_view s) { return percent_decoded(s, false); }

std::string request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

std::string request::param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    const auto eq = pair.find('=');
    if (percent_decoded(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : percent_decoded(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace statefold::http
