// Downstream smoke test of statefold::http: links it from outside and RUNS an engine with its
// /metrics served on a loopback port, fetched over a real socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <statefold/engine.hpp>
#include <statefold/http/engine_endpoints.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <string>

namespace {

struct tally_model {
  struct state {
    int64_t n = 0;
  };
  struct event {
    std::string id, key;
  };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event&) { ++s.n; }
  static void encode_event(const event&, std::string&) {}
  static bool decode_event(std::string_view, const statefold::event_context& c, event& e) {
    e = {std::string(c.event_id), std::string(c.key)};
    return true;
  }
  static void encode_state(const state& s, std::string& out) { statefold::put_u64(out, static_cast<uint64_t>(s.n)); }
  static bool decode_state(std::string_view in, state& s) {
    uint64_t v;
    statefold::byte_reader r(in);
    if (!r.u64(v)) return false;
    s.n = static_cast<int64_t>(v);
    return true;
  }
};

std::string get(const std::string& address, const std::string& path) {
  const auto colon = address.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  const std::string rq = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ::send(fd, rq.data(), rq.size(), 0);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace

int main() {
  const auto dir = std::filesystem::temp_directory_path() / ("statefold-http-consumer-" + std::to_string(::getpid()));
  auto e = statefold::engine<tally_model>::open({.dir = dir.string(), .partitions = 2});
  if (!e) {
    std::fprintf(stderr, "http consumer: open: %s\n", e.error().to_string().c_str());
    return 1;
  }
  std::promise<void> done;
  if (!(*e)->submit_batch({{"e1", "a"}, {"e2", "b"}}, [&](auto&) { done.set_value(); }).is_ok()) return 1;
  done.get_future().get();
  auto s = statefold::http::server::start({.listen = "127.0.0.1:0"}, statefold::http::engine_routes(**e));
  if (!s) {
    std::fprintf(stderr, "http consumer: %s\n", s.error().to_string().c_str());
    return 1;
  }
  const std::string metrics = get((*s)->address(), "/metrics");
  (*s)->stop();
  const bool ok = metrics.find("HTTP/1.1 200") == 0 &&
                  metrics.find("statefold_events_total{outcome=\"applied\"} 2\n") != std::string::npos;
  if (!(*e)->close().is_ok()) return 1;
  std::filesystem::remove_all(dir);
  if (!ok) {
    std::fprintf(stderr, "http consumer: unexpected /metrics answer:\n%s\n", metrics.c_str());
    return 1;
  }
  std::printf("http consumer: OK (/metrics on %s)\n", (*s)->address().c_str());
  return 0;
}
