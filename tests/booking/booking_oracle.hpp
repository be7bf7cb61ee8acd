#pragma once

// Helpers for the end-to-end tests of statefold-booking: run the real binary, generate
// inputs, and fold them independently of the model's code (from the README's rules) to
// compare with what `export` prints.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

extern char** environ;

namespace booking_test {

using json = nlohmann::json;
using statefold::testing::temp_dir;

struct output {
  int exit_code = -1;
  std::string out, err;
};

/// Runs a shell command line, capturing its stdout, stderr and exit code.
inline output run_program(const std::string& cmd) {
  temp_dir t;
  int rc = std::system((cmd + " >" + (t / "out") + " 2>" + (t / "err")).c_str());
  output o;
  o.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  o.out = statefold::testing::read_bytes(t / "out");
  o.err = statefold::testing::read_bytes(t / "err");
  return o;
}

/// The sum of the samples of `name` on `url` (a /metrics address) that pass `filter` (Python,
/// over s.labels), read through python3-prometheus-client: the whole text must parse. "none"
/// when no sample passes.
inline std::string prometheus_sum(const std::string& url, const std::string& name, const std::string& filter = "True") {
  auto r = run_program("curl -s -f --max-time 20 " + url +
                       " | /usr/bin/python3 -c \"\nimport sys\nfrom prometheus_client.parser import "
                       "text_string_to_metric_families\nt=None\nfor f in text_string_to_metric_families(sys.stdin.read()):\n"
                       "  for s in f.samples:\n    if s.name=='" + name + "' and " + filter +
                       ": t=(t or 0)+s.value\nprint('none' if t is None else int(t))\"");
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  return r.out;
}

/// Runs statefold-booking with `args` (after `env`, e.g. "LD_PRELOAD=...").
inline output run(const std::string& args, const std::string& env = "") {
  return run_program(env + " " + std::string(STATEFOLD_BOOKING) + " " + args);
}

inline std::vector<json> lines_of(const std::string& text) {
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

inline std::map<std::string, expected_booking> fold(const std::vector<json>& input) {
  std::map<std::string, expected_booking> out;
  // An event's identity is (booking_id, event_id): the same identity again is a duplicate (same
  // body) or a conflict (another body); neither is applied.
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& e : input) {
    if (!seen.insert({e["booking_id"].get<std::string>(), e["event_id"].get<std::string>()}).second) continue;
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

/// `export` with `where` ("--data DIR" or "--store URL") prints the fold of `input`.
inline void expect_exported(const std::string& where, const std::vector<json>& input) {
  auto exported = run("export " + where);
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

inline void expect_export_matches(const std::string& data, const std::vector<json>& input) {
  expect_exported("--data " + data, input);
}

template <class T>
json with(json e, const char* field, T value) {
  e[field] = value;
  return e;
}

/// A deterministic input with every event type, rule breaks and redeliveries (5 % of the
/// events are sent again: any earlier one, or with `recent` > 0 one of the last `recent`).
/// A redelivery is a new line, at a new position: the dedup window catches it, so with a
/// small window pass a `recent` well inside it.
inline std::vector<json> make_input(int bookings, uint64_t seed, std::size_t recent = 0) {
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
      if (rng() % 20 == 0) {  // a redelivery
        const std::size_t span = recent ? std::min(recent, out.size()) : out.size();
        out.push_back(out[out.size() - 1 - rng() % span]);
      }
    }
  }
  return out;
}

inline void write_jsonl(const std::string& path, const std::vector<json>& events) {
  std::ofstream f(path);
  for (const auto& e : events) f << e.dump() << "\n";
}

/// Starts the program with `args` (stdout and stderr to files in `logs`), and kills it with
/// SIGKILL once `kill_when` returns true (polled every millisecond; it gets the stderr so
/// far, and the child's pid if it takes two arguments) or after `max_ms`. True if it was
/// killed while running.
template <class Pred>
bool run_and_kill(const std::vector<std::string>& args, const std::string& logs, Pred kill_when,
                  int max_ms) {
  std::vector<std::string> all = {STATEFOLD_BOOKING};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = logs + "/kill.out", err = logs + "/kill.err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), ::environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  for (int ms = 0; ms < max_ms; ++ms) {
    int ws;
    if (::waitpid(pid, &ws, WNOHANG) == pid) return false;  // it ended by itself
    if constexpr (std::is_invocable_v<Pred, const std::string&, pid_t>) {
      if (kill_when(statefold::testing::read_bytes(err), pid)) break;
    } else {
      if (kill_when(statefold::testing::read_bytes(err))) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  int ws;
  ::waitpid(pid, &ws, 0);
  return WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL;
}

inline std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace booking_test
