// Exactly once and in order, through the real statefold-booking binary on a real disk: reruns
// far beyond the dedup window, runs killed at any point (the final checkpoint included), the
// window as a property of the data, a full disk in the middle of a run, a lost MANIFEST, one
// event ID on two bookings, another file under the same source name. Every end state is
// compared with a fold computed here, independently of the model's code.

#include <gtest/gtest.h>

#include <random>

#include "booking_oracle.hpp"

namespace {

using namespace booking_test;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

class exactly_once_test : public ::testing::Test {
 protected:
  std::string data() const { return t_ / "data"; }
  std::string in() const { return t_ / "in.jsonl"; }
  // A directory made with a small window (64 IDs per partition), which it keeps: every rerun
  // after this uses default flags and is still far beyond the window. (The inputs redeliver
  // only recent events, well within the window: make_input's `recent`.)
  void create_with_small_window(const std::vector<json>& input, int partitions = 3) {
    write_jsonl(in(), input);
    auto r = run("run --data " + data() + " --partitions " + std::to_string(partitions) +
                 " --dedup-window 64 --input " + in());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_export_matches(data(), input);
  }
  temp_dir t_;
};

TEST_F(exactly_once_test, ARerunFarBeyondTheDedupWindowAppliesNothingTwice) {
  const auto input = make_input(3000, 7, 20);  // ~18 k events: 90 times the window per partition
  create_with_small_window(input);
  auto again = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("applied          0\n"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("resumed " + in() + " at line " + std::to_string(input.size() + 1)),
            std::string::npos)
      << again.err;
  EXPECT_NE(again.out.find("dedup window     64 event IDs per partition"), std::string::npos) << again.out;
  expect_export_matches(data(), input);

  // The file grows (a log being appended to): the next run applies only what is new.
  auto more = make_input(500, 8, 20);
  for (auto& e : more) e["booking_id"] = "more-" + e["booking_id"].get<std::string>();
  {
    std::ofstream f(in(), std::ios::app);
    for (const auto& e : more) f << e.dump() << "\n";
  }
  auto grown = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(grown.exit_code, 0) << grown.err;
  auto all = input;
  all.insert(all.end(), more.begin(), more.end());
  expect_export_matches(data(), all);
}

TEST_F(exactly_once_test, RunsKilledAnywhereEvenInTheFinalCheckpointRerunExactly) {
  const auto input = make_input(6000, 9, 20);  // ~36 k events
  write_jsonl(in(), input);
  ASSERT_EQ(run("run --data " + data() + " --partitions 3 --dedup-window 64 --input /dev/null").exit_code, 0);
  const std::vector<std::string> args = {"run", "--data", data(), "--input", in()};
  std::mt19937 rng(5);
  int killed = 0, killed_closing = 0;
  for (int round = 0; round < 6; ++round) {
    if (round % 2 == 0) {
      // At a random moment of the run.
      const auto start = std::chrono::steady_clock::now();
      const int after_ms = 30 + static_cast<int>(rng() % 300);
      killed += run_and_kill(args, t_.path(), [&](const std::string&) {
        return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(after_ms);
      }, 20'000);
    } else {
      // While it syncs and checkpoints at the end.
      const bool k = run_and_kill(args, t_.path(), [](const std::string& err) {
        return err.find("closing: syncing and checkpointing") != std::string::npos;
      }, 60'000);
      killed += k;
      killed_closing += k;
    }
  }
  EXPECT_GT(killed, 0) << "no run was killed mid-way; the test proved nothing";
  EXPECT_GT(killed_closing, 0) << "no run was killed during its final checkpoint";
  auto last = run("run --data " + data() + " --input " + in());  // default flags
  ASSERT_EQ(last.exit_code, 0) << last.err;
  expect_export_matches(data(), input);
}

TEST_F(exactly_once_test, TheWindowBelongsToTheDataSmallerIsRefusedZeroNeedsItsFlag) {
  create_with_small_window(make_input(50, 1, 20));
  auto smaller = run("run --data " + data() + " --dedup-window 5 --input /dev/null");
  EXPECT_EQ(smaller.exit_code, 1);
  EXPECT_NE(smaller.err.find("keeps a dedup window of 64"), std::string::npos) << smaller.err;
  auto zero = run("run --data " + data() + " --dedup-window 0 --input /dev/null");
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("--unsafe-no-dedup"), std::string::npos) << zero.err;
  auto zero_flagged = run("run --data " + data() + " --dedup-window 0 --unsafe-no-dedup --input /dev/null");
  EXPECT_EQ(zero_flagged.exit_code, 1) << "an existing window is not switched off either";
  auto larger = run("run --data " + data() + " --dedup-window 128 --input /dev/null");
  ASSERT_EQ(larger.exit_code, 0) << larger.err;
  EXPECT_NE(larger.err.find("dedup window grown from 64 to 128"), std::string::npos) << larger.err;
  auto plain = run("run --data " + data() + " --input /dev/null");
  EXPECT_NE(plain.out.find("dedup window     128 event IDs"), std::string::npos) << plain.out;
}

// A full disk under one partition's log in the middle of a run (pwrite answers ENOSPC, once,
// through an LD_PRELOAD library: the program itself has no test code). The partition fails and
// restarts; nothing later from the input may be applied to it before what failed, or the rerun
// would apply the failed events after later ones of the same booking.
TEST_F(exactly_once_test, AFullDiskMidRunKeepsPerKeyOrderAndTheRerunIsExact) {
  const auto input = make_input(4000, 11, 20);
  write_jsonl(in(), input);
  const std::string env = std::string("LD_PRELOAD=") + STATEFOLD_WRITE_FAULT +
                          " STATEFOLD_FAULT_PATH=/lanes/L-0001/log/ STATEFOLD_FAULT_AFTER=2";
  auto failed = run("run --data " + data() + " --partitions 3 --lanes 3 --input " + in(), env);
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_NE(failed.err.find("No space left on device"), std::string::npos) << failed.err;
  EXPECT_EQ(count_of(failed.err, "events not acknowledged"), 1u) << "one line per failed partition\n" << failed.err;
  EXPECT_NE(failed.err.find("partition 1: "), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("Rerun the same command"), std::string::npos) << failed.err;
  EXPECT_NE(failed.out.find("NOT ACKNOWLEDGED"), std::string::npos) << failed.out;
  auto rerun = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  expect_export_matches(data(), input);
}

// The same full disk under the one journal lane that three partitions share: all three fail
// (each says so), and the rerun still applies every event exactly once, in order per booking.
TEST_F(exactly_once_test, AFullDiskUnderASharedLaneFailsItsPartitionsAndTheRerunIsExact) {
  const auto input = make_input(4000, 12, 20);
  write_jsonl(in(), input);
  const std::string env = std::string("LD_PRELOAD=") + STATEFOLD_WRITE_FAULT +
                          " STATEFOLD_FAULT_PATH=/lanes/L-0000/log/ STATEFOLD_FAULT_AFTER=2";
  auto failed = run("run --data " + data() + " --partitions 3 --input " + in(), env);
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_NE(failed.err.find("No space left on device"), std::string::npos) << failed.err;
  EXPECT_GE(count_of(failed.err, "events not acknowledged"), 1u) << failed.err;
  EXPECT_NE(failed.err.find("Rerun the same command"), std::string::npos) << failed.err;
  auto rerun = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  expect_export_matches(data(), input);
}

TEST_F(exactly_once_test, AMissingManifestIsRefusedNotRecreatedOverTheData) {
  const auto input = make_input(200, 3, 20);
  create_with_small_window(input, 4);
  ASSERT_EQ(std::remove((data() + "/MANIFEST").c_str()), 0);
  auto r = run("run --data " + data() + " --partitions 2 --input " + in());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("MANIFEST is missing, but the directory holds partition data"), std::string::npos) << r.err;
  auto e = run("export --data " + data());
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_TRUE(e.out.empty());
  EXPECT_NE(e.err.find("MANIFEST is missing, but the directory holds partition data"), std::string::npos) << e.err;
  const std::string verify = std::string(STATEFOLD_INSPECT) + " verify " + quoted(data()) + " >/dev/null 2>&1";
  EXPECT_NE(std::system(verify.c_str()), 0) << "inspect verify must fail too";
  EXPECT_FALSE(std::ifstream(data() + "/MANIFEST").good()) << "nothing recreated it";
}

TEST_F(exactly_once_test, OneEventIdOnTwoBookingsIsTwoEventsInEveryLayout) {
  std::vector<json> input;
  for (const char* b : {"b1", "b2", "b3", "b4", "b5", "b6"})
    input.push_back({{"event_id", "e1"}, {"booking_id", b}, {"type", "created"}, {"show", "S"},
                     {"customer", "C"}, {"seats", 1}, {"price_cents", 100}});
  write_jsonl(in(), input);
  for (int partitions : {1, 2, 3, 7}) {
    const std::string dir = t_ / ("p" + std::to_string(partitions));
    auto r = run("run --data " + dir + " --partitions " + std::to_string(partitions) + " --input " + in());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("applied          6\n"), std::string::npos) << partitions << " partitions\n" << r.out;
    expect_export_matches(dir, input);
  }
}

TEST_F(exactly_once_test, TheSameIdentityWithAnotherBodyIsAConflictNotADuplicate) {
  std::vector<json> input = {
      {{"event_id", "e1"}, {"booking_id", "b"}, {"type", "created"}, {"show", "S"}, {"customer", "C"},
       {"seats", 1}, {"price_cents", 100}},
      {{"event_id", "e2"}, {"booking_id", "b"}, {"type", "payment"}, {"amount_cents", 100}},
      {{"event_id", "e2"}, {"booking_id", "b"}, {"type", "payment"}, {"amount_cents", 999}},
      {{"event_id", "e2"}, {"booking_id", "b"}, {"type", "payment"}, {"amount_cents", 100}}};
  write_jsonl(in(), input);
  auto r = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("conflicts        1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("duplicates       1"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("in.jsonl:3: conflict: event 'e2': event ID already applied to this key with a different body"),
            std::string::npos)
      << r.err;
  expect_export_matches(data(), input);
}

TEST_F(exactly_once_test, AnotherInputUnderTheSameSourceNameIsRefused) {
  const auto input = make_input(300, 4, 20);
  create_with_small_window(input);
  // The same path, rewritten with other content.
  auto other = make_input(300, 5, 20);
  write_jsonl(in(), other);
  auto r = run("run --data " + data() + " --input " + in());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("It is not the input that was consumed under this name before"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--source"), std::string::npos) << r.err;
  // Under a name of its own it is a new source.
  auto named = run("run --data " + data() + " --source other-file --input " + in());
  ASSERT_EQ(named.exit_code, 0) << named.err;
}

TEST_F(exactly_once_test, StandardInputNeedsASourceNameAndResumesByReading) {
  const auto input = make_input(400, 6, 20);
  write_jsonl(in(), input);
  auto unnamed = run("run --data " + data() + " --input - < " + in());
  EXPECT_EQ(unnamed.exit_code, 2) << "a usage error";
  EXPECT_NE(unnamed.err.find("needs --source NAME"), std::string::npos) << unnamed.err;
  auto first = run("run --data " + data() + " --dedup-window 64 --source feed --input - < " + in());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto second = run("run --data " + data() + " --source feed --input - < " + in());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("applied          0\n"), std::string::npos) << second.out;
  expect_export_matches(data(), input);
}

TEST_F(exactly_once_test, TheDemoWorkloadIsASourceToo) {
  const std::string demo = " --events 30000 --bookings 8000 --seed 3";
  auto first = run("run --data " + data() + " --dedup-window 64" + demo);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto before = run("export --data " + data());
  auto again = run("run --data " + data() + demo);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("applied          0\n"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("resumed demo at event 30001"), std::string::npos) << again.err;
  EXPECT_EQ(run("export --data " + data()).out, before.out);
}

}  // namespace
