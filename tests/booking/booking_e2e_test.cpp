// statefold-booking end to end, through the real binary on a real disk: a JSONL file in, the
// export out, compared with a fold computed here independently of the model's code; kill -9
// in the middle of runs; malformed input; a torn tail.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fcntl.h>

#include <fstream>
#include <map>
#include <set>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "testkit/temp_dir.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;
using statefold::testkit::temp_dir;

struct output {
  int exit_code = -1;
  std::string out, err;
};

output run(const std::string& args) {
  temp_dir t;
  const std::string cmd = std::string(STATEFOLD_BOOKING) + " " + args + " >" + (t / "out") + " 2>" + (t / "err");
  int rc = std::system(cmd.c_str());
  output o;
  o.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  o.out = statefold::testkit::read_bytes(t / "out");
  o.err = statefold::testkit::read_bytes(t / "err");
  return o;
}

std::vector<json> lines_of(const std::string& text) {
  std::vector<json> v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

// The expected state, folded here from the README's rules (not from booking_model.cpp).
struct expected_booking {
  std::string status = "unknown", show, customer, last_event_id, session;
  int64_t seats = 0, price = 0, paid = 0;
  uint64_t events = 0, rejected = 0;
};

std::map<std::string, expected_booking> fold(const std::vector<json>& input) {
  std::map<std::string, expected_booking> out;
  std::set<std::string> seen;
  for (const auto& e : input) {
    if (!seen.insert(e["event_id"].get<std::string>()).second) continue;  // duplicate
    auto& b = out[e["booking_id"].get<std::string>()];
    const std::string type = e["type"];
    b.last_event_id = e["event_id"];
    if (e.contains("session")) b.session = e["session"];
    bool ok = false;
    if (type == "created" && b.status == "unknown") {
      ok = true;
      b.status = "pending";
      b.show = e["show"];
      b.customer = e["customer"];
      b.seats = e["seats"];
      b.price = e["price_cents"];
    } else if (type == "seats_changed" && b.status == "pending") {
      ok = true;
      b.seats = e["seats"];
    } else if (type == "payment" && (b.status == "pending" || b.status == "confirmed")) {
      ok = true;
      b.paid += e["amount_cents"].get<int64_t>();
    } else if (type == "confirmed" && b.status == "pending" && b.paid >= b.seats * b.price) {
      ok = true;
      b.status = "confirmed";
    } else if (type == "cancelled" && (b.status == "pending" || b.status == "confirmed")) {
      ok = true;
      b.status = "cancelled";
    }
    ++(ok ? b.events : b.rejected);
  }
  return out;
}

void expect_export_matches(const std::string& data, const std::vector<json>& input) {
  auto exported = run("export --data " + data);
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  auto want = fold(input);
  auto got = lines_of(exported.out);
  ASSERT_EQ(got.size(), want.size());
  std::string prev;
  for (const auto& g : got) {
    const std::string id = g["booking_id"];
    EXPECT_LT(prev, id) << "export is sorted by booking_id";
    prev = id;
    ASSERT_TRUE(want.count(id)) << id;
    const auto& w = want[id];
    EXPECT_EQ(g["status"], w.status) << id;
    EXPECT_EQ(g["show"], w.show) << id;
    EXPECT_EQ(g["customer"], w.customer) << id;
    EXPECT_EQ(g["seats"], w.seats) << id;
    EXPECT_EQ(g["price_cents"], w.price) << id;
    EXPECT_EQ(g["paid_cents"], w.paid) << id;
    EXPECT_EQ(g["events"], w.events) << id;
    EXPECT_EQ(g["rejected"], w.rejected) << id;
    EXPECT_EQ(g["last_event_id"], w.last_event_id) << id;
    EXPECT_EQ(g["session"], w.session) << id;
  }
}

template <class T>
json with(json e, const char* field, T value) {
  e[field] = value;
  return e;
}

// A deterministic input with every event type, rule breaks and redeliveries.
std::vector<json> make_input(int bookings, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<json>> scripts(bookings);
  for (int b = 0; b < bookings; ++b) {
    const std::string id = "bk-" + std::to_string(b);
    int n = 0;
    auto ev = [&](const char* type) {
      json e = {{"event_id", id + "." + std::to_string(++n)}, {"booking_id", id}, {"type", type}};
      if (rng() % 2) e["session"] = "s" + std::to_string(rng() % 7);
      return e;
    };
    if (rng() % 10 == 0) scripts[b].push_back(with(ev("payment"), "amount_cents", 5));  // before created
    json c = ev("created");
    c["show"] = "show-" + std::to_string(rng() % 5);
    c["customer"] = "cust-" + std::to_string(rng() % 100);
    c["seats"] = 1 + static_cast<int>(rng() % 4);
    c["price_cents"] = 1000 * (1 + static_cast<int>(rng() % 5));
    scripts[b].push_back(c);
    if (rng() % 4 == 0) scripts[b].push_back(with(ev("seats_changed"), "seats", 1 + static_cast<int>(rng() % 4)));
    if (rng() % 5 == 0) scripts[b].push_back(ev("confirmed"));  // maybe too early
    for (int p = 0; p < 1 + static_cast<int>(rng() % 3); ++p)
      scripts[b].push_back(with(ev("payment"), "amount_cents", 2000 + static_cast<int>(rng() % 4000)));
    scripts[b].push_back(rng() % 6 == 0 ? with(ev("cancelled"), "reason", "changed mind") : ev("confirmed"));
    if (rng() % 8 == 0) scripts[b].push_back(with(ev("payment"), "amount_cents", 100));
  }
  std::vector<json> out;
  std::vector<std::size_t> next(bookings, 0);
  for (bool more = true; more;) {
    more = false;
    for (int b = 0; b < bookings; ++b) {
      if (next[b] >= scripts[b].size()) continue;
      more = true;
      if (rng() % 3 == 0) continue;
      out.push_back(scripts[b][next[b]++]);
      if (rng() % 20 == 0) out.push_back(out[rng() % out.size()]);  // redelivery
    }
  }
  return out;
}

void write_jsonl(const std::string& path, const std::vector<json>& events) {
  std::ofstream f(path);
  for (const auto& e : events) f << e.dump() << "\n";
}

TEST(booking_e2e_test, RunThenExportEqualsTheIndependentFold) {
  temp_dir t;
  auto input = make_input(300, 1);
  write_jsonl(t / "in.jsonl", input);
  auto r = run("run --data " + (t / "data") + " --partitions 3 --input " + (t / "in.jsonl") +
               " --ack-log " + (t / "acks"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("malformed   0"), std::string::npos) << r.out;
  expect_export_matches(t / "data", input);
  // Every event is acknowledged exactly once per line of input (duplicates too).
  std::ifstream acks(t / "acks");
  std::size_t n = 0;
  for (std::string line; std::getline(acks, line);) ++n;
  EXPECT_EQ(n, input.size());
  auto g = run("get --data " + (t / "data") + " bk-7");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(json::parse(g.out)["booking_id"], "bk-7");
  auto unknown = run("get --data " + (t / "data") + " no-such-booking");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown"), std::string::npos);
}

TEST(booking_e2e_test, KilledRunsRepeatedOnTheSameInputLoseNothingAndApplyNothingTwice) {
  temp_dir t;
  auto input = make_input(20000, 2);  // ~120 k events: long enough to be killed mid-way
  write_jsonl(t / "in.jsonl", input);
  const std::string data = t / "data";
  std::mt19937 rng(3);
  int killed = 0;
  for (int round = 0; round < 4; ++round) {
    std::vector<std::string> args = {STATEFOLD_BOOKING, "run", "--data", data, "--input", t / "in.jsonl",
                                     "--ack-log", t / "acks"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 200));
    ::kill(pid, SIGKILL);
    int ws;
    ::waitpid(pid, &ws, 0);
    killed += WIFSIGNALED(ws);
  }
  auto last = run("run --data " + data + " --input " + (t / "in.jsonl"));
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_GT(killed, 0) << "no run was actually killed mid-way; the test proved nothing";
  expect_export_matches(data, input);
}

TEST(booking_e2e_test, MalformedLinesAreReportedWithLineNumbersAndSkipped) {
  temp_dir t;
  {
    std::ofstream f(t / "in.jsonl");
    f << R"({"event_id":"a1","booking_id":"b","type":"created","show":"S","customer":"C","seats":2,"price_cents":100})" << "\n";
    f << "this is not json\n";
    f << R"({"event_id":"a2","booking_id":"b","type":"payment"})" << "\n";
    f << R"({"event_id":"a3","booking_id":"b","type":"teleported"})" << "\n";
    f << R"({"event_id":"a4","booking_id":"b","type":"seats_changed","seats":"two"})" << "\n";
    f << R"({"event_id":"a5","booking_id":"b","type":"seats_changed","seats":101})" << "\n";
    f << R"({"event_id":"a6","booking_id":"b","type":"payment","amount_cents":200})" << "\n";
  }
  auto r = run("run --data " + (t / "data") + " --input " + (t / "in.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"in.jsonl:2: malformed event: not valid JSON",
                           "in.jsonl:3: malformed event: missing field 'amount_cents'",
                           "in.jsonl:4: malformed event: unknown type 'teleported'",
                           "in.jsonl:5: malformed event: field 'seats' must be an integer",
                           "in.jsonl:6: malformed event: field 'seats' is 101, outside 1..100"})
    EXPECT_NE(r.err.find(want), std::string::npos) << want << "\n" << r.err;
  EXPECT_NE(r.out.find("malformed   5"), std::string::npos) << r.out;
  auto g = run("get --data " + (t / "data") + " b");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto b = json::parse(g.out);
  EXPECT_EQ(b["paid_cents"], 200);
  EXPECT_EQ(b["events"], 2);

  auto strict = run("run --strict --data " + (t / "strict") + " --input " + (t / "in.jsonl"));
  EXPECT_EQ(strict.exit_code, 2);
  EXPECT_NE(strict.err.find("in.jsonl:2:"), std::string::npos);
  EXPECT_EQ(strict.err.find("in.jsonl:3:"), std::string::npos) << "strict stops at the first one";
}

TEST(booking_e2e_test, ATornTailIsCutAndReportedOnTheNextRun) {
  temp_dir t;
  auto input = make_input(50, 4);
  write_jsonl(t / "in.jsonl", input);
  const std::string data = t / "data";
  ASSERT_EQ(run("run --data " + data + " --partitions 1 --input " + (t / "in.jsonl")).exit_code, 0);
  // Garbage where the next record would go: as if a write was cut by a crash.
  const std::string log = data + "/p-0000/log";
  auto segs = statefold::testkit::files_in(log);
  const std::string seg = log + "/" + segs.back();
  std::string bytes = statefold::testkit::read_bytes(seg);
  const std::size_t end = bytes.find_last_not_of('\0') + 1;
  bytes.replace(end + 20, 7, "garbage");  // after the end marker: a torn next record
  bytes.replace(end, 4, std::string("\x12\x34\x56\x78", 4));
  statefold::testkit::write_bytes(seg, bytes);
  auto again = run("run --data " + data + " --input /dev/null");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("cut "), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("torn tail"), std::string::npos) << again.out;
  expect_export_matches(data, input);
}

}  // namespace
