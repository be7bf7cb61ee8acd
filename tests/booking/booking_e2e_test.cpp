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

#include "booking_oracle.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

extern char** environ;

namespace {

using namespace booking_test;

TEST(booking_e2e_test, RunThenExportEqualsTheIndependentFold) {
  temp_dir t;
  auto input = make_input(300, 1);
  write_jsonl(t / "in.jsonl", input);
  auto r = run("run --data " + (t / "data") + " --partitions 3 --input " + (t / "in.jsonl") +
               " --ack-log " + (t / "acks"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("malformed        0"), std::string::npos) << r.out;
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
  EXPECT_NE(r.out.find("malformed        5"), std::string::npos) << r.out;
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
  const std::string log = data + "/lanes/L-0000/log";
  auto segs = statefold::testing::files_in(log);
  const std::string seg = log + "/" + segs.back();
  std::string bytes = statefold::testing::read_bytes(seg);
  const std::size_t end = bytes.find_last_not_of('\0') + 1;
  bytes.replace(end + 20, 7, "garbage");  // after the end marker: a torn next record
  bytes.replace(end, 4, std::string("\x12\x34\x56\x78", 4));
  statefold::testing::write_bytes(seg, bytes);
  auto again = run("run --data " + data + " --input /dev/null");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("cut "), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("torn tail"), std::string::npos) << again.out;
  expect_export_matches(data, input);
}

}  // namespace
