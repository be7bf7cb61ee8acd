// statefold-booking run --metrics-listen: /metrics, /healthz and /readyz of a running program
// fed through a pipe, read with curl and parsed by Debian's python3-prometheus-client; the
// counters must agree with the events sent. Both designs: the engine and --store (Redis).

#include <gtest/gtest.h>

#include "booking_oracle.hpp"
#include "statefold/http/server.hpp"
#include "statefold/testing/redis_server.hpp"

namespace {

using namespace booking_test;

// A statefold-booking run reading its standard input from a pipe this test writes.
class piped_run {
 public:
  piped_run(std::vector<std::string> args, const std::string& logs) : err_(logs + "/piped.err"), out_(logs + "/piped.out") {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    std::vector<std::string> all = {STATEFOLD_BOOKING};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), ::environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[0]);
    in_ = fds[1];
  }
  ~piped_run() {
    if (in_ >= 0) ::close(in_);
    if (pid_ > 0) ::kill(pid_, SIGKILL), wait();
  }
  void send(const std::string& text) { ASSERT_EQ(::write(in_, text.data(), text.size()), static_cast<ssize_t>(text.size())); }
  int finish() {
    ::close(in_);
    in_ = -1;
    return wait();
  }
  /// The metrics address the program printed (waits for it).
  std::string address() {
    for (int i = 0; i < 20'000; ++i) {
      const std::string err = statefold::testing::read_bytes(err_);
      if (auto at = err.find("metrics: http://"); at != std::string::npos) {
        const auto from = at + 16;
        return err.substr(from, err.find("/metrics", from) - from);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "no metrics address on stderr: " << statefold::testing::read_bytes(err_);
    return "";
  }
  std::string out() const { return statefold::testing::read_bytes(out_); }

 private:
  int wait() {
    int ws = 0;
    ::waitpid(pid_, &ws, 0);
    pid_ = -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  }
  std::string err_, out_;
  pid_t pid_ = -1;
  int in_ = -1;
};

// The value of one sample (summed over its labels, or those of one outcome).
std::string sample(const std::string& address, const std::string& name, const std::string& outcome = "") {
  return prometheus_sum("http://" + address + "/metrics", name,
                        outcome.empty() ? "True" : "s.labels.get('outcome')=='" + outcome + "'");
}

void exercise(piped_run& p, const std::string& engine_series) {
  const std::string address = p.address();
  ASSERT_FALSE(address.empty());
  const auto input = make_input(200, 5);
  std::string text;
  for (const auto& e : input) text += e.dump() + "\n";
  text += "not json\n";
  p.send(text);
  const auto want = fold(input);
  uint64_t applied = 0;  // rule breaks are applied too: they are state
  for (const auto& [id, b] : want) applied += b.events + b.rejected;
  // Wait until everything is answered (the pipe stays open: the program keeps running).
  std::string got;
  for (int i = 0; i < 200; ++i) {
    got = sample(address, "statefold_booking_events_total", "applied");
    if (got == std::to_string(applied) + "\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(got, std::to_string(applied) + "\n");
  EXPECT_EQ(sample(address, "statefold_booking_events_total", "duplicate"),
            std::to_string(input.size() - applied) + "\n");
  EXPECT_EQ(sample(address, "statefold_booking_events_total", "malformed"), "1\n");
  EXPECT_NE(sample(address, "process_open_fds"), "none\n");
  if (!engine_series.empty()) {
    EXPECT_EQ(sample(address, engine_series, "applied"), std::to_string(applied) + "\n");
  }
  EXPECT_EQ(run_program("curl -s --max-time 20 http://" + address + "/healthz").out, "ok\n");
  EXPECT_EQ(run_program("curl -s --max-time 20 http://" + address + "/readyz").out, "ready\n");
  EXPECT_EQ(p.finish(), 0);
  EXPECT_NE(p.out().find("applied          " + std::to_string(applied) + "\n"), std::string::npos) << p.out();
}

TEST(metrics_e2e_test, TheEnginesRunServesMetricsThatAgreeWithTheEventsSent) {
  temp_dir t;
  piped_run p({"run", "--data", t / "data", "--input", "-", "--source", "pipe", "--metrics-listen", "127.0.0.1:0"},
              t.path());
  exercise(p, "statefold_events_total");
}

TEST(metrics_e2e_test, TheStatelessRunServesMetricsThatAgreeWithTheEventsSent) {
  temp_dir t;
  std::filesystem::create_directories(t / "redis");
  auto server = statefold::testing::redis_server::start({.dir = t / "redis"});
  ASSERT_TRUE(server) << server.error().to_string();
  piped_run p({"run", "--store", (*server)->url(), "--input", "-", "--source", "pipe", "--metrics-listen",
               "127.0.0.1:0"},
              t.path());
  exercise(p, "");
}

TEST(metrics_e2e_test, ABadListenAddressIsAUsageErrorAndTouchesNothing) {
  temp_dir t;
  auto r = run("run --data " + (t / "data") + " --events 10 --metrics-listen 127.0.0.1:99999");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(t / "data"));
  EXPECT_NE(r.err.find("--metrics-listen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("port must be"), std::string::npos) << r.err;
  // A port in use: an error before any event is read, naming the address.
  auto first = statefold::http::server::start({.listen = "127.0.0.1:0"}, {});
  ASSERT_TRUE(first);
  auto busy = run("run --data " + (t / "data") + " --events 10 --metrics-listen " + (*first)->address());
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("cannot listen on " + (*first)->address()), std::string::npos) << busy.err;
  EXPECT_EQ(busy.out, "");
}

}  // namespace

// --log-format json: every line on stderr is a JSON object (the engine's and the program's own),
// and a line about an event carries its partition, session, source and line; a recovery line
// its partition and LSN.
TEST(log_format_e2e_test, JsonLinesCarryPartitionLsnSessionAndLine) {
  temp_dir t;
  const std::string in = t / "in.jsonl";
  statefold::testing::write_bytes(
      in,
      "{\"event_id\":\"e1\",\"booking_id\":\"b1\",\"type\":\"created\",\"show\":\"s\",\"customer\":\"c\",\"seats\":2,"
      "\"price_cents\":100,\"session\":\"sess-1\"}\n"
      "{\"event_id\":\"e1\",\"booking_id\":\"b1\",\"type\":\"created\",\"show\":\"s\",\"customer\":\"other\",\"seats\":2,"
      "\"price_cents\":100,\"session\":\"sess-\\\"2\\\"\"}\n"
      "not json \xff\x01\n"
      "{\"event_id\":\"e2\",\"booking_id\":\"b1\",\"type\":\"payment\",\"amount_cents\":50}\n");
  for (int pass = 0; pass < 2; ++pass) {  // the second run recovers what the first wrote
    SCOPED_TRACE(pass);
    auto r = run("run --data " + (t / "data") + " --partitions 3 --input " + in + " --log-format json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> lines;
    std::istringstream err(r.err);
    for (std::string line; std::getline(err, line);) {
      json j = json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
      ASSERT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
      lines.push_back(std::move(j));
    }
    auto find = [&](const std::string& words) -> json {
      for (const auto& j : lines)
        if (j["msg"].get<std::string>().find(words) != std::string::npos) return j;
      return {};
    };
    // Each partition's recovery names it, with the last LSN it holds.
    for (int p = 0; p < 3; ++p) {
      const json rec = find("partition " + std::to_string(p) + (pass == 0 ? ": new" : " recovered"));
      ASSERT_FALSE(rec.is_null()) << r.err;
      EXPECT_EQ(rec["partition"], p);
      EXPECT_EQ(rec.contains("lsn"), pass == 1) << rec;  // a new partition holds no LSN yet
    }
    if (pass == 1) {
      EXPECT_FALSE(find("resumed").is_null()) << r.err;  // nothing new: no conflict line again
      continue;
    }
    const json conflict = find("conflict: event 'e1'");
    ASSERT_FALSE(conflict.is_null()) << r.err;
    EXPECT_EQ(conflict["level"], "warning");
    EXPECT_EQ(conflict["session"], "sess-\"2\"");
    EXPECT_EQ(conflict["line"], 2);
    EXPECT_EQ(conflict["source"], in);
    EXPECT_TRUE(conflict["partition"].is_number()) << conflict;
    const json malformed = find("malformed event");
    ASSERT_FALSE(malformed.is_null()) << r.err;
    EXPECT_EQ(malformed["line"], 3);
    EXPECT_EQ(malformed.count("partition"), 0u);
  }
}
