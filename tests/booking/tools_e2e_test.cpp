// The first hour of a careful user, through the real binaries: reads that never write (and
// work beside a running writer), input that cannot inject into the terminal, strict parsing,
// graceful stops, options checked before anything is created, and the README's file
// behaviours (unterminated last lines, appends, stdin trickles).

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "booking_oracle.hpp"

namespace {

using namespace booking_test;
namespace stdfs = std::filesystem;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Every entry under `dir` with its size and modification time (nanoseconds): a write, a
// truncation, a creation or a removal shows, to prove that a command wrote nothing.
std::map<std::string, std::string> tree_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  out[dir] = std::to_string(stdfs::last_write_time(dir).time_since_epoch().count());
  for (const auto& e : stdfs::recursive_directory_iterator(dir))
    out[e.path().string()] = std::to_string(e.is_regular_file() ? e.file_size() : 0) + "@" +
                             std::to_string(e.last_write_time().time_since_epoch().count());
  return out;
}

class tools_test : public ::testing::Test {
 protected:
  std::string data() const { return t_ / "data"; }
  std::string in() const { return t_ / "in.jsonl"; }
  temp_dir t_;
};

TEST_F(tools_test, GetAndExportWriteNothingTakeNoLockAndBumpNoEpoch) {
  const auto input = make_input(400, 21, 20);
  write_jsonl(in(), input);
  ASSERT_EQ(run("run --data " + data() + " --input " + in()).exit_code, 0);
  const auto before = tree_of(data());
  auto g = run("get --data " + data() + " bk-7");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto x = run("export --data " + data());
  ASSERT_EQ(x.exit_code, 0) << x.err;
  EXPECT_EQ(tree_of(data()), before) << "a read changed the data directory";
  expect_export_matches(data(), input);
}

// `run` holds the directory while get, export and inspect verify read it, over and over: each
// must succeed, never report damage, and see a state that only grows.
TEST_F(tools_test, ReadsBesideARunningWriterSeeDurableStateAndNeverFalseDamage) {
  const auto input = make_input(30000, 22, 20);  // ~180 k events: a few seconds of writing
  write_jsonl(in(), input);
  ASSERT_EQ(run("run --data " + data() + " --partitions 3 --input /dev/null").exit_code, 0);
  bool writer_seen = false;
  std::size_t reads = 0, last_count = 0;
  const std::vector<std::string> args = {"run", "--data", data(), "--input", in()};
  std::size_t frozen_reads = 0;
  run_and_kill(args, t_.path(), [&](const std::string& err, pid_t writer) {
    if (err.find("statefold engine open") == std::string::npos) return false;
    writer_seen = true;
    // The first read runs with the writer stopped mid-run (SIGSTOP): it overlaps the writer
    // however loaded the machine is; the later ones run beside it.
    const bool freeze = frozen_reads == 0 && err.find("closing:") == std::string::npos;
    if (freeze) ::kill(writer, SIGSTOP);
    struct resume {
      pid_t pid;
      bool on;
      ~resume() {
        if (on) ::kill(pid, SIGCONT);
      }
    } resume_writer{writer, freeze};
    frozen_reads += freeze;
    auto x = run("export --data " + data());
    EXPECT_EQ(x.exit_code, 0) << x.err;
    const auto lines = lines_of(x.out);
    EXPECT_GE(lines.size(), last_count) << "the export went back in time";
    last_count = lines.size();
    for (const char* cmd : {" verify ", " stats ", " dump --limit 5 "}) {
      auto v = run_program(std::string(STATEFOLD_INSPECT) + cmd + quoted(data()));
      EXPECT_EQ(v.exit_code, 0) << cmd << v.out << v.err;
      EXPECT_EQ(v.out.find("error"), std::string::npos) << cmd << v.out;
    }
    ++reads;
    return err.find("closing:") != std::string::npos;  // then let it finish
  }, 120'000);
  EXPECT_TRUE(writer_seen);
  EXPECT_GE(frozen_reads, 1u) << "no read while the writer was mid-run";
  EXPECT_GE(reads, 1u);
  expect_export_matches(data(), input);
  // The whole log dumps, the consumer's position records included.
  auto dump = run_program(std::string(STATEFOLD_INSPECT) + " dump " + quoted(data()));
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_NE(dump.out.find("\"type\":\"position\""), std::string::npos);
}

TEST_F(tools_test, AGarbageManifestIsNamedNotTakenForAMissingDirectory) {
  ASSERT_EQ(run("run --data " + data() + " --events 1000 --bookings 100").exit_code, 0);
  statefold::testing::write_bytes(data() + "/MANIFEST", "this is not a manifest\n");
  for (const char* cmd : {"export --data ", "get B100001 --data "}) {
    auto r = run(std::string(cmd) + data());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("MANIFEST: no crc32c line"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("run first"), std::string::npos) << r.err;
  }
}

TEST_F(tools_test, InputIsEscapedCappedAndNeverFloodsTheTerminal) {
  std::ofstream f(in());
  // A forged message, ANSI colours and a 1 MB ID.
  f << "{\"event_id\":\"x\\n" << "in.jsonl:99: FAKE\",\"booking_id\":\"\\u001b[31mred\",\"type\":\"nope\"}\n";
  f << R"({"event_id":")" << std::string(1'000'000, 'A') << R"(","booking_id":"b","type":"confirmed"})" << "\n";
  for (int i = 0; i < 100; ++i) f << "garbage " << i << "\n";
  f.close();
  auto r = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "an escape character reached the terminal";
  EXPECT_EQ(r.err.find("\nin.jsonl:99: FAKE"), std::string::npos);
  EXPECT_LT(r.err.size(), 20'000u) << "stderr flooded: " << r.err.size() << " bytes";
  EXPECT_NE(r.err.find("field 'event_id' is 1000000 bytes, longer than 256"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("more malformed lines (not shown)"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("malformed        102"), std::string::npos) << r.out;
}

TEST_F(tools_test, StrictParsingRefusesDuplicateKeysLongIdsAndReportsNumbersAsWritten) {
  std::ofstream f(in());
  f << R"({"event_id":"e1","booking_id":"b","type":"created","type":"payment","amount_cents":5})" << "\n";
  f << R"({"event_id":"e2","booking_id":"b","type":"seats_changed","seats":18446744073709551615})" << "\n";
  f << R"({"event_id":"e3","booking_id":"b","type":"seats_changed","seats":02})" << "\n";
  f << R"({"event_id":"e4","booking_id":"b","type":"confirmed","note":tru})" << "\n";
  f << R"({"event_id":"e5","booking_id":"b","type":"payment","amount_cents":5,"seats":"many"})" << "\n";
  f << R"({"event_id":"e6","booking_id":"b","type":"confirmed"} trailing)" << "\n";
  f.close();
  auto r = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"in.jsonl:1: malformed event: field 'type' appears twice",
                           "in.jsonl:2: malformed event: field 'seats' is 18446744073709551615, outside 1..100",
                           "in.jsonl:3: malformed event: not valid JSON",
                           "in.jsonl:4: malformed event: not valid JSON",
                           "in.jsonl:5: malformed event: field 'seats' must be an integer",
                           "in.jsonl:6: malformed event: not valid JSON"})
    EXPECT_NE(r.err.find(want), std::string::npos) << want << "\n" << r.err;
  EXPECT_NE(r.out.find("applied          0"), std::string::npos) << r.out;
  // An over-long ID under --strict stops the run with exit 2, like any malformed line.
  std::ofstream g(t_ / "long.jsonl");
  g << R"({"event_id":")" << std::string(300, 'x') << R"(","booking_id":"b","type":"confirmed"})" << "\n";
  g.close();
  auto s = run("run --strict --data " + (t_ / "strict") + " --input " + (t_ / "long.jsonl"));
  EXPECT_EQ(s.exit_code, 2) << s.err;
}

TEST_F(tools_test, SigtermStopsGracefullyAndTheRerunFinishes) {
  const auto input = make_input(30000, 23, 20);
  write_jsonl(in(), input);
  temp_dir logs;
  std::vector<std::string> all = {STATEFOLD_BOOKING, "run", "--data", data(), "--input", in()};
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = logs / "out", err = logs / "err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), ::environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 20'000 && statefold::testing::read_bytes(err).find("engine open") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGTERM);
  int ws;
  ::waitpid(pid, &ws, 0);
  ASSERT_TRUE(WIFEXITED(ws)) << "killed by a signal instead of stopping";
  EXPECT_EQ(WEXITSTATUS(ws), 0) << statefold::testing::read_bytes(err);
  const std::string summary = statefold::testing::read_bytes(out);
  if (summary.find("stopped by SIGTERM") == std::string::npos)
    GTEST_SKIP() << "the run finished before SIGTERM arrived; nothing to check";
  auto rest = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_NE(rest.err.find("resumed"), std::string::npos) << rest.err;
  expect_export_matches(data(), input);
}

TEST_F(tools_test, OptionsAreCheckedBeforeAnythingIsCreated) {
  for (const std::string bad : {"--duplicates 2", "--duplicates -1", "--input /nonexistent",
                                "--ack-log /nonexistent-dir/acks", "--partitions 0",
                                "--durability fast"}) {
    auto r = run("run --data " + data() + " " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_FALSE(stdfs::exists(data())) << bad << " created the data directory";
  }
  auto v = run("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("statefold-booking "), std::string::npos) << v.out;
}

// A last line without a newline is consumed when whole, and the file can still grow; half a
// line (a producer still writing) is left for the next run.
TEST_F(tools_test, AnUnterminatedLastLineAndAHalfWrittenOneResumeCorrectly) {
  const std::string created =
      R"({"event_id":"e1","booking_id":"A","type":"created","show":"S","customer":"C","seats":1,"price_cents":5})";
  statefold::testing::write_bytes(in(), created + "\n" + R"({"event_id":"e2","booking_id":"A","ty)");
  auto first = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("not consumed; the next run reads it again"), std::string::npos) << first.err;
  statefold::testing::append_bytes(in(), R"(pe":"payment","amount_cents":5})");  // whole, no newline yet
  auto second = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("applied          1"), std::string::npos) << second.out;
  statefold::testing::append_bytes(in(), "\n" + std::string(R"({"event_id":"e3","booking_id":"A","type":"confirmed"})") + "\n");
  auto third = run("run --data " + data() + " --input " + in());
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.out.find("applied          1"), std::string::npos) << third.out;
  auto g = run("get --data " + data() + " A");
  EXPECT_NE(g.out.find("\"status\": \"confirmed\""), std::string::npos) << g.out;
}

// The input replaced before the run's first marker: the fingerprint announced before the
// first events still catches it.
TEST_F(tools_test, AReplacedFileIsRefusedEvenAfterARunKilledBeforeItsFirstMarker) {
  write_jsonl(in(), make_input(30000, 24, 20));
  const std::vector<std::string> args = {"run", "--data", data(), "--input", in()};
  for (int delay_ms : {150, 400, 800}) {
    auto opened = std::chrono::steady_clock::time_point::max();
    run_and_kill(args, t_.path(), [&](const std::string& err) {
      if (opened == std::chrono::steady_clock::time_point::max() && err.find("engine open") != std::string::npos)
        opened = std::chrono::steady_clock::now();
      return std::chrono::steady_clock::now() > opened &&
             std::chrono::steady_clock::now() - opened > std::chrono::milliseconds(delay_ms);
    }, 30'000);
    write_jsonl(t_ / "other.jsonl", make_input(30000, 25, 20));
    std::filesystem::copy_file(in(), t_ / "orig.jsonl", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(t_ / "other.jsonl", in(), std::filesystem::copy_options::overwrite_existing);
    auto r = run("run --data " + data() + " --input " + in());
    std::filesystem::copy_file(t_ / "orig.jsonl", in(), std::filesystem::copy_options::overwrite_existing);
    if (r.err.find("is new to") != std::string::npos) continue;  // nothing was durable yet: fine
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("It is not the input that was consumed under this name before"), std::string::npos) << r.err;
    return;
  }
  GTEST_SKIP() << "no run got an event durable before it was killed";
}

}  // namespace
