// statefold-booking serve through real sockets, curl as the client: events posted in JSON
// Lines batches, bookings read back one by one and page by page, the service stopped with
// SIGTERM and started again, malformed and oversized bodies, and a SIGKILL in the middle of
// a load: every event acknowledged before it is answered `duplicate` when posted again, and
// the final state is the fold of the input.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <future>

#include "booking_oracle.hpp"

namespace {

using namespace booking_test;

class service {
 public:
  service(const std::string& data, const std::string& logs, std::vector<std::string> extra = {}) : logs_(logs) {
    std::vector<std::string> all = {STATEFOLD_BOOKING, "serve", "--listen", "127.0.0.1:0", "--data", data};
    all.insert(all.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    err_ = logs + "/serve.err";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), ::environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 20'000 && base_.empty(); ++i) {
      const std::string err = statefold::testing::read_bytes(err_);
      if (auto at = err.find("serving on http://"); at != std::string::npos)
        base_ = err.substr(at + 11, err.find(' ', at + 11) - at - 11);
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_FALSE(base_.empty()) << statefold::testing::read_bytes(err_);
  }
  ~service() {
    if (pid_ > 0) kill(SIGKILL);
  }
  const std::string& base() const { return base_; }
  int kill(int sig) {
    ::kill(pid_, sig);
    int ws = 0;
    ::waitpid(pid_, &ws, 0);
    pid_ = -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  }
  std::string err() const { return statefold::testing::read_bytes(err_); }

 private:
  std::string logs_, err_, base_;
  pid_t pid_ = -1;
};

// POSTs `lines` as one JSON Lines body; returns {status, parsed body}.
std::pair<int, json> post(const std::string& base, const std::vector<json>& lines, const std::string& file,
                          const std::string& headers = "") {
  std::string body;
  for (const auto& l : lines) body += l.dump() + "\n";
  statefold::testing::write_bytes(file, body);
  auto r = run_program("curl -s --max-time 30 -o " + file + ".out -w '%{http_code}' " + headers +
                       " -X POST --data-binary @" + file + " " + base + "/events");
  json j;
  try {
    j = json::parse(statefold::testing::read_bytes(file + ".out"));
  } catch (...) {
  }
  return {r.out.empty() ? 0 : std::stoi(r.out), j};
}

std::vector<json> all_pages(const std::string& base, int limit) {
  std::vector<json> out;
  std::string cursor;
  for (int page = 0; page < 10'000; ++page) {
    auto r = run_program("curl -s --max-time 30 '" + base + "/bookings?limit=" + std::to_string(limit) +
                         (cursor.empty() ? "" : "&cursor=" + cursor) + "'");
    const json j = json::parse(r.out);
    for (const auto& b : j["bookings"]) out.push_back(b);
    if (!j.contains("next_cursor")) break;
    cursor = j["next_cursor"];
  }
  return out;
}

void expect_pages_match(const std::string& base, const std::vector<json>& input) {
  const auto got = all_pages(base, 37);
  auto want = fold(input);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& g : got) {
    const auto& w = want[g["booking_id"]];
    EXPECT_EQ(g["status"], w.status) << g;
    EXPECT_EQ(g["paid_cents"], w.paid) << g;
    EXPECT_EQ(g["events"], w.events) << g;
    EXPECT_EQ(g["rejected"], w.rejected) << g;
  }
}

std::string metric(const std::string& base, const std::string& name, const std::string& filter = "True") {
  return prometheus_sum(base + "/metrics", name, filter);
}

TEST(serve_e2e_test, PostReadRestartAndReadAgain) {
  temp_dir t;
  const auto input = make_input(400, 17);
  {
    service s(t / "data", t.path());
    for (std::size_t i = 0; i < input.size(); i += 150) {
      std::vector<json> chunk(input.begin() + i, input.begin() + std::min(input.size(), i + 150));
      auto [code, body] = post(s.base(), chunk, t / "body");
      ASSERT_EQ(code, 200) << body;
      ASSERT_EQ(body["results"].size(), chunk.size());
    }
    expect_pages_match(s.base(), input);
    // /metrics agrees: the events answered, and the requests by route and code.
    const std::size_t posts = (input.size() + 149) / 150;
    EXPECT_EQ(metric(s.base(), "statefold_http_requests_total",
                     "s.labels['route']=='/events' and s.labels['code']=='200' and s.labels['method']=='POST'"),
              std::to_string(posts) + "\n");
    EXPECT_EQ(metric(s.base(), "statefold_http_request_seconds_count", "s.labels['route']=='/events'"),
              std::to_string(posts) + "\n");
    EXPECT_EQ(metric(s.base(), "statefold_booking_events_total"), std::to_string(input.size()) + "\n");
    EXPECT_EQ(metric(s.base(), "statefold_events_total"), std::to_string(input.size()) + "\n");
    auto one = run_program("curl -s --max-time 30 -w ' %{http_code}' " + s.base() + "/bookings/bk-3");
    EXPECT_NE(one.out.find("\"booking_id\":\"bk-3\""), std::string::npos) << one.out;
    EXPECT_EQ(run_program("curl -s --max-time 30 -w ' %{http_code}' " + s.base() + "/bookings/nope").out,
              "{\"error\":\"booking 'nope' is unknown\"}\n 404");
    EXPECT_EQ(s.kill(SIGTERM), 0) << s.err();
    EXPECT_NE(s.err().find("stopped: "), std::string::npos) << s.err();
  }
  service again(t / "data", t.path());
  expect_pages_match(again.base(), input);
}

TEST(serve_e2e_test, WithLogFormatJsonEveryLineOnStderrIsJson) {
  temp_dir t;
  service s(t / "data", t.path(), {"--log-format", "json", "--partitions", "2"});
  auto [code, body] = post(s.base(), make_input(5, 3), t / "body");
  ASSERT_EQ(code, 200) << body << s.err();
  EXPECT_EQ(s.kill(SIGTERM), 0) << s.err();
  std::istringstream err(s.err());
  int lines = 0;
  bool stopped = false;
  for (std::string line; std::getline(err, line); ++lines) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    stopped = stopped || j["msg"].get<std::string>().rfind("stopped: ", 0) == 0;
  }
  EXPECT_GE(lines, 5);
  EXPECT_TRUE(stopped) << s.err();
}

TEST(serve_e2e_test, SigtermAnswersARequestPartlyReceivedWith503AndTakesNothingOfIt) {
  temp_dir t;
  service s(t / "data", t.path(), {"--partitions", "1"});
  const std::string hostport = s.base().substr(7);  // "http://" cut
  const auto colon = hostport.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1))));
  ::inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &a.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string event =
      R"({"event_id":"late-1","booking_id":"late","type":"created","show":"s","customer":"c","seats":1,"price_cents":5})"
      "\n";
  const std::string head = "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(event.size()) +
                           "\r\n\r\n" + event.substr(0, 10);
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto exit_code = std::async(std::launch::async, [&] { return s.kill(SIGTERM); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string rest = event.substr(10);
  ASSERT_EQ(::send(fd, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 503"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("draining"), std::string::npos) << answer;
  EXPECT_EQ(exit_code.get(), 0) << s.err();
  auto got = run("get --data " + (t / "data") + " late");
  EXPECT_NE(got.exit_code, 0) << "taken while draining: " << got.out;
}

TEST(serve_e2e_test, MalformedAndOversizedBodiesGet4xxAndChangeNothing) {
  temp_dir t;
  service s(t / "data", t.path(), {"--max-body", "2048"});
  auto [code, body] = post(s.base(), {json{{"event_id", "x"}}}, t / "b1");
  EXPECT_EQ(code, 400);
  EXPECT_NE(body["results"][0]["reason"].get<std::string>().find("booking_id"), std::string::npos) << body;
  std::vector<json> big;
  for (int i = 0; i < 40; ++i) big.push_back(make_input(1, static_cast<uint64_t>(i))[0]);
  auto [big_code, big_body] = post(s.base(), big, t / "b2");
  EXPECT_EQ(big_code, 413);
  auto bad_header = run_program("curl -s --max-time 30 -w ' %{http_code}' -H 'X-Position: 7' -X POST -d '{}' " +
                                s.base() + "/events");
  EXPECT_EQ(bad_header.out, "{\"error\":\"X-Position needs X-Source\"}\n 400");
  EXPECT_EQ(all_pages(s.base(), 10).size(), 0u);
}

TEST(serve_e2e_test, ARetriedRequestWithASourceIsExactlyOnceBeyondTheDedupWindow) {
  temp_dir t;
  service s(t / "data", t.path(), {"--dedup-window", "4", "--partitions", "1"});
  const auto input = make_input(20, 29, 2);  // ~120 events, 30 times the window (redeliveries inside it)
  const std::string headers = "-H 'X-Source: client-7' -H 'X-Position: 1000'";
  auto [code, first] = post(s.base(), input, t / "body", headers);
  ASSERT_EQ(code, 200) << first;
  auto [again_code, again] = post(s.base(), input, t / "body", headers);
  ASSERT_EQ(again_code, 200) << again;
  EXPECT_EQ(again["applied"], 0) << again;
  EXPECT_EQ(again["duplicate"], input.size()) << again;
  expect_pages_match(s.base(), input);
  // Without a source, the same retry is caught only within the window: applied again.
  auto [plain_code, plain] = post(s.base(), input, t / "body");
  ASSERT_EQ(plain_code, 200);
  EXPECT_GT(plain["applied"].get<int>(), 0) << "the window of 4 caught everything?";
}

TEST(serve_e2e_test, OneSourceOneRequestAtATimeAndOtherEdges) {
  temp_dir t;
  service s(t / "data", t.path());
  // A second request of a source while one is in flight: 409, nothing of it taken. Whether the
  // second arrives before the first is answered depends on the machine's load: a try where
  // the first was done already (the second is then answered, a duplicate) is tried again.
  std::vector<json> big;
  bool refused = false;
  for (int attempt = 0; attempt < 5 && !refused; ++attempt) {
    SCOPED_TRACE(attempt);
    const std::string source = "src-" + std::to_string(attempt);
    big.clear();
    for (int i = 0; i < 150'000; ++i)
      big.push_back({{"event_id", "big-" + std::to_string(attempt) + "-" + std::to_string(i)},
                     {"booking_id", "b" + std::to_string(i % 50)}, {"type", "payment"}, {"amount_cents", 1}});
    std::string body;
    for (const auto& l : big) body += l.dump() + "\n";
    statefold::testing::write_bytes(t / "first", body);
    auto first = std::async(std::launch::async, [&] {
      return run_program("curl -s --max-time 60 -o /dev/null -w '%{http_code}' -H 'X-Source: " + source +
                         "' -H 'X-Position: 1' -X POST --data-binary @" + (t / "first") + " " + s.base() + "/events");
    });
    // Until the first is in the engine (in flight), then the second.
    for (int i = 0; i < 2000; ++i) {
      auto m = run_program("curl -s --max-time 30 " + s.base() + "/metrics");
      const auto at = m.out.find("\nstatefold_in_flight_events ");
      if (at != std::string::npos && m.out.compare(at + 28, 2, "0\n") != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // Second requests for as long as the first is unanswered (one may land just after it).
    while (!refused) {
      const bool first_answered = first.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
      auto [second_code, second] =
          post(s.base(), {big[0]}, t / "second", "-H 'X-Source: " + source + "' -H 'X-Position: 200000'");
      refused = second_code == 409;
      if (!refused) {  // too late: the first was answered, and the second found its event applied
        EXPECT_EQ(second_code, 200) << second;
        EXPECT_EQ(second["duplicate"], 1) << second;
      }
      if (first_answered) break;
    }
    EXPECT_EQ(first.get().out, "200");
  }
  EXPECT_TRUE(refused) << "five times, the second request of a source was not refused while the first was in flight";
  // Positions past 2^64: 400, nothing taken.
  auto [wrap_code, wrap] = post(s.base(), {big[1], big[2]}, t / "wrap",
                                "-H 'X-Source: other' -H 'X-Position: 18446744073709551615'");
  EXPECT_EQ(wrap_code, 400) << wrap;
  // A booking ID that needs percent-encoding in the path.
  json odd = {{"event_id", "o1"}, {"booking_id", "a b/cé"}, {"type", "created"}, {"show", "s"},
              {"customer", "c"}, {"seats", 1}, {"price_cents", 5}};
  ASSERT_EQ(post(s.base(), {odd}, t / "odd").first, 200);
  auto got = run_program("curl -s --max-time 30 -w ' %{http_code}' " + s.base() + "/bookings/a%20b%2Fc%C3%A9");
  EXPECT_NE(got.out.find(" 200"), std::string::npos) << got.out;
  // Expect: 100-continue is answered (curl would wait a second for it otherwise).
  const auto t0 = std::chrono::steady_clock::now();
  auto cont = run_program("curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H 'Expect: 100-continue' -X POST "
                          "--data-binary @" + (t / "odd") + " " + s.base() + "/events");
  EXPECT_EQ(cont.out, "200");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
  // 405 names what is allowed.
  auto not_allowed = run_program("curl -s -i --max-time 30 -X DELETE " + s.base() + "/events");
  EXPECT_NE(not_allowed.out.find("Allow: POST"), std::string::npos) << not_allowed.out;
}

TEST(serve_e2e_test, AHostNameIsAUsageErrorAndTouchesNothing) {
  temp_dir t;
  auto r = run("serve --listen localhost:0 --data " + (t / "data"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("must be an IP address"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(t / "data"));
}

TEST(serve_e2e_test, ASigkillDuringALoadLosesNoAcknowledgedEvent) {
  temp_dir t;
  const auto input = make_input(3000, 23);
  std::vector<std::vector<json>> bodies;
  for (std::size_t i = 0; i < input.size(); i += 200)
    bodies.emplace_back(input.begin() + i, input.begin() + std::min(input.size(), i + 200));
  std::set<std::string> acked;
  {
    service s(t / "data", t.path());
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> posted{0};
    std::thread client([&] {
      for (std::size_t b = 0; b < bodies.size() && !stop; ++b, ++posted) {
        auto [code, body] = post(s.base(), bodies[b], t / "body");
        if (code != 200) break;  // the service died under it
        for (const auto& r : body["results"])
          if (r["outcome"] == "applied" || r["outcome"] == "duplicate") acked.insert(r["event_id"].get<std::string>());
      }
    });
    while (posted < bodies.size() / 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.kill(SIGKILL);  // with bodies in flight
    stop = true;
    client.join();
  }
  ASSERT_GT(acked.size(), 0u);
  service again(t / "data", t.path());
  std::size_t redelivered = 0;
  for (const auto& b : bodies) {  // the client retries everything
    auto [code, body] = post(again.base(), b, t / "body");
    ASSERT_EQ(code, 200) << body;
    for (const auto& r : body["results"])
      if (acked.count(r["event_id"].get<std::string>())) {
        ++redelivered;
        EXPECT_EQ(r["outcome"], "duplicate") << "acknowledged before the kill, yet not durable: " << r;
      }
  }
  EXPECT_GE(redelivered, acked.size());
  expect_pages_match(again.base(), input);
}

}  // namespace
