// statefold::http over real sockets on loopback: curl as the independent client, raw sockets
// for what curl will not do (a client that stalls, too many connections), and Debian's
// python3-prometheus-client as the independent parser of /metrics.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "statefold/engine.hpp"
#include "statefold/http/engine_endpoints.hpp"
#include "statefold/http/server.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold::http {
namespace {

struct shell_result {
  int code = -1;
  std::string out;
};

shell_result sh(const std::string& cmd) {
  shell_result r;
  // Every curl gets a time limit: a server that never answers fails the test, not hangs it.
  std::string c = cmd;
  for (std::size_t at = 0; (at = c.find("curl ", at)) != std::string::npos; at += 5) c.insert(at + 5, "--max-time 20 ");
  FILE* p = ::popen((c + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

int connect_to(const std::string& address) {
  const auto colon = address.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

route echo_route() {
  return {"POST", "/echo", false, [](request& rq, responder answer) {
            answer({200, "text/plain", "got " + std::to_string(rq.body.size()) + " bytes, x=" + rq.param("x"), {}});
          }};
}

TEST(HttpServer, RoutesAnswersAndErrorsOverRealSockets) {
  std::vector<route> routes = {
      echo_route(),
      {"GET", "/later", false,
       [](request&, responder answer) {  // answered from another thread, later
         std::thread([answer] {
           std::this_thread::sleep_for(std::chrono::milliseconds(100));
           answer({202, "text/plain", "later\n", {{"X-Answered", "late"}}});
         }).detach();
       }},
      {"GET", "/throws", false, [](request&, responder) { throw std::runtime_error("boom"); }},
  };
  server_options o;
  o.listen = "127.0.0.1:0";
  o.max_body_bytes = 1000;
  o.max_header_bytes = 2000;
  auto s = server::start(o, routes);
  ASSERT_TRUE(s) << s.error().to_string();
  const std::string base = "http://" + (*s)->address();

  auto echo = sh("curl -s -X POST --data-binary 'hello' '" + base + "/echo?x=a%20b&y=2'");
  EXPECT_EQ(echo.out, "got 5 bytes, x=a b");
  auto later = sh("curl -s -i " + base + "/later");
  EXPECT_NE(later.out.find("HTTP/1.1 202"), std::string::npos) << later.out;
  EXPECT_NE(later.out.find("X-Answered: late"), std::string::npos) << later.out;
  EXPECT_EQ(sh("curl -s -o /dev/null -w '%{http_code}' " + base + "/nope").out, "404");
  EXPECT_EQ(sh("curl -s -o /dev/null -w '%{http_code}' " + base + "/echo").out, "405");
  auto thrown = sh("curl -s -w ' %{http_code}' " + base + "/throws");
  EXPECT_EQ(thrown.out, "internal error: boom\n 500");
  auto big = sh("head -c 5000 /dev/zero | curl -s -w ' %{http_code}' -X POST --data-binary @- " + base + "/echo");
  EXPECT_EQ(big.out, "request body larger than 1000 bytes\n 413");
  auto header = sh("curl -s -w ' %{http_code}' -H 'X-Big: " + std::string(3000, 'a') + "' " + base + "/nope");
  EXPECT_EQ(header.out, "request header larger than 2000 bytes\n 431");
  // Keep-alive: two requests, one connection.
  auto two = sh("curl -s -o /dev/null -o /dev/null -w '%{num_connects}\\n' " + base + "/later " + base + "/later");
  EXPECT_EQ(two.out, "1\n0\n");
  EXPECT_EQ((*s)->stats().requests, 7u);  // 413 and 431 end before a request is whole

  // Every answer is counted by route and code (an answer counts once written: poll briefly).
  auto answers = [&] {
    std::map<std::string, uint64_t> by;
    for (const auto& a : (*s)->stats().answers) by[a.method + " " + a.route + " " + std::to_string(a.status)] += a.answers;
    return by;
  };
  // (The last /later answer may be counted a moment after curl has read it: wait for all.)
  const std::map<std::string, uint64_t> want = {{"POST /echo 200", 1}, {"GET /later 202", 3}, {"GET /throws 500", 1},
                                                {"  404", 1}, {"  405", 1}, {"  413", 1}, {"  431", 1}};
  for (int i = 0; i < 500 && answers() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(answers(), want);
  metrics_text m;
  server_metrics(m, (*s)->stats());
  testing::temp_dir scratch;
  const std::string file = scratch / "metrics.txt";
  {
    std::ofstream(file) << m.text();
  }
  auto parsed = sh("/usr/bin/python3 -c \"\nfrom prometheus_client.parser import text_string_to_metric_families\n"
                   "for f in text_string_to_metric_families(open('" + file + "').read()):\n  for s in f.samples:\n"
                   "    if s.name=='statefold_http_requests_total' and s.labels['route']=='/later': print(s.labels['code'], int(s.value))\n"
                   "    if s.name=='statefold_http_request_seconds_count' and s.labels['route']=='/later': print('count', int(s.value))\n\"");
  EXPECT_EQ(parsed.out, "202 3\ncount 3\n");
}

TEST(HttpServer, ASlowClientIsCutOffAndTooManyConnectionsGet503) {
  server_options o;
  o.listen = "127.0.0.1:0";
  o.read_timeout = std::chrono::milliseconds(300);
  o.max_connections = 2;
  auto s = server::start(o, {echo_route()});
  ASSERT_TRUE(s) << s.error().to_string();
  // Half a request, then nothing: closed after the read timeout, without an answer.
  const int slow = connect_to((*s)->address());
  ASSERT_GE(slow, 0);
  const std::string half = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
  ASSERT_EQ(::send(slow, half.data(), half.size(), 0), static_cast<ssize_t>(half.size()));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(read_all(slow), "");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
  ::close(slow);

  const int a = connect_to((*s)->address()), b = connect_to((*s)->address());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto third = sh("curl -s -i http://" + (*s)->address() + "/echo -X POST -d x");
  EXPECT_NE(third.out.find("HTTP/1.1 503"), std::string::npos) << third.out;
  EXPECT_NE(third.out.find("Retry-After: 1"), std::string::npos) << third.out;
  EXPECT_EQ((*s)->stats().refused, 1u);
  ::close(a);
  ::close(b);
}

TEST(HttpServer, StopReadsARequestPartlyReceivedAndAnswersIt) {
  auto s = server::start({.listen = "127.0.0.1:0"}, {echo_route()});
  ASSERT_TRUE(s);
  const int c = connect_to((*s)->address());
  const int idle = connect_to((*s)->address());  // connected, nothing sent: closed at once
  ASSERT_GE(c, 0);
  ASSERT_GE(idle, 0);
  const std::string first = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
  ASSERT_EQ(::send(c, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // parsed as far as it goes
  auto stopped = std::async(std::launch::async, [&] { (*s)->stop(); });
  EXPECT_EQ(read_all(idle), "");
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "stop() did not wait for the request being received";
  const std::string rest = "defghij";
  ASSERT_EQ(::send(c, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
  const std::string answer = read_all(c);
  EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_NE(answer.find("got 10 bytes"), std::string::npos) << answer;
  stopped.get();
  ::close(c);
  ::close(idle);
}

TEST(HttpServer, StopLetsAnAnswerInFlightOutAndRefusesNewConnections) {
  std::promise<responder> pending;
  auto s = server::start({.listen = "127.0.0.1:0"},
                         {{"GET", "/slow", false, [&](request&, responder r) { pending.set_value(r); }}});
  ASSERT_TRUE(s);
  const std::string address = (*s)->address();
  auto client = std::async(std::launch::async, [&] { return sh("curl -s -i http://" + address + "/slow"); });
  responder answer = pending.get_future().get();
  auto stopping = std::async(std::launch::async, [&] { (*s)->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // (Also: curl, a child of this process, must not have inherited the listening socket.)
  EXPECT_LT(connect_to(address), 0) << "accepting after stop(): " << sh("ss -ltnp").out;
  answer({200, "text/plain", "drained\n", {}});
  stopping.get();
  const auto got = client.get().out;
  EXPECT_NE(got.find("drained"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
}

TEST(HttpServer, AnAddressInUseIsAClearError) {
  auto a = server::start({.listen = "127.0.0.1:0"}, {});
  ASSERT_TRUE(a);
  auto b = server::start({.listen = (*a)->address()}, {});
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("cannot listen on " + (*a)->address()), std::string::npos) << b.error().to_string();
  EXPECT_FALSE(server::start({.listen = "localhost"}, {}));
  EXPECT_FALSE(server::start({.listen = "127.0.0.1:99999"}, {}));
}

// The engine's /metrics through a real Prometheus parser, its counters against the events sent.
TEST(EngineEndpoints, MetricsParseAndAgreeWithTheEventsSent) {
  testing::temp_dir dir;
  auto e = engine<testing::ledger_model>::open({.dir = dir.path(), .partitions = 3});
  ASSERT_TRUE(e) << e.error().to_string();
  std::vector<testing::ledger_event> batch;
  for (int i = 0; i < 300; ++i) batch.push_back(testing::ledger("e" + std::to_string(i), "k" + std::to_string(i % 40), i / 40 + 1, 1));
  for (int i = 0; i < 20; ++i) batch.push_back(batch[static_cast<std::size_t>(i)]);  // duplicates
  std::promise<void> done;
  ASSERT_TRUE((*e)->submit_batch(batch, [&](std::vector<submit_result>&) { done.set_value(); }).is_ok());
  done.get_future().get();

  for (bool per_partition : {false, true}) {
    SCOPED_TRACE(per_partition ? "per partition" : "totals");
    engine_metrics_options mo;
    mo.per_partition = per_partition;
    auto s = server::start({.listen = "127.0.0.1:0"}, engine_routes(**e, mo));
    ASSERT_TRUE(s);
    testing::temp_dir scratch;
    const std::string file = scratch / "metrics.txt";
    ASSERT_EQ(sh("curl -s -f -o " + file + " http://" + (*s)->address() + "/metrics").code, 0);
    // Sums every sample of a name (over its labels) with the reference parser.
    auto sum = [&](const std::string& name, const std::string& label_filter = "True") {
      auto r = sh("/usr/bin/python3 -c \"\nimport sys\nfrom prometheus_client.parser import "
                  "text_string_to_metric_families\nt=0\nfor f in text_string_to_metric_families(open('" +
                  file + "').read()):\n  for s in f.samples:\n    if s.name=='" + name + "' and (" + label_filter +
                  "): t+=s.value\nprint(int(t))\"");
      EXPECT_EQ(r.code, 0) << r.out;
      return r.out;
    };
    EXPECT_EQ(sum("statefold_events_total", "s.labels['outcome']=='applied'"), "300\n");
    EXPECT_EQ(sum("statefold_events_total", "s.labels['outcome']=='duplicate'"), "20\n");
    EXPECT_EQ(sum("statefold_partitions"), "3\n");
    EXPECT_EQ(sum("statefold_ack_latency_seconds_count"), "320\n");
    EXPECT_EQ(sum("statefold_entities"), "40\n");
    EXPECT_EQ(sum("statefold_events_total", "'partition' in s.labels"), per_partition ? "320\n" : "0\n");
    EXPECT_EQ(sh("curl -s http://" + (*s)->address() + "/healthz").out, "ok\n");
    EXPECT_EQ(sh("curl -s http://" + (*s)->address() + "/readyz").out, "ready\n");
  }
  ASSERT_TRUE((*e)->close().is_ok());
}

TEST(EngineEndpoints, HealthNamesThePartitionsThatAreDown) {
  std::vector<engine_partition_stats> stats(3);
  for (uint32_t p = 0; p < 3; ++p) stats[p].partition = p;
  stats[1].failure = "io_error: p-0001/000001.log: write: No space left on device";
  const auto h = engine_health(stats);
  EXPECT_EQ(h.status, 503u);
  EXPECT_EQ(h.body, "partition 1 is down: io_error: p-0001/000001.log: write: No space left on device\n");
  EXPECT_EQ(engine_ready(stats, true).status, 503u);
  stats[1].failure.clear();
  EXPECT_EQ(engine_ready(stats, true).status, 200u);
  EXPECT_EQ(engine_ready(stats, false).status, 503u);
}

TEST(Prometheus, LabelValuesAreEscaped) {
  metrics_text m;
  m.family("x_total", "counter", "help with \\ and\nnewline");
  m.sample("x_total", {{"k", "a\"b\\c\nd"}}, 3);
  EXPECT_EQ(m.text(), "# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\nx_total{k=\"a\\\"b\\\\c\\nd\"} 3\n");
}

}  // namespace
}  // namespace statefold::http
