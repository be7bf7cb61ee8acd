// statefold-booking run --store: the seed's stateless consumer over a real redis-server
// (started by the test on a free loopback port, appendfsync always), through the real binary.
// Every end state is compared with the fold computed in booking_oracle.hpp, independently of
// the model's code: consumers killed anywhere, two consumers at once on the same and on
// overlapping inputs, the server killed mid-run, an unreachable server.

#include <gtest/gtest.h>

#include <random>

#include "booking_oracle.hpp"
#include "statefold/testing/redis_server.hpp"

namespace {

using namespace booking_test;
using statefold::testing::redis_server;

// A statefold-booking process running in the background.
struct child {
  pid_t pid = -1;
  std::string out, err;  // file paths
  int wait() {
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    pid = -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    wait();
  }
};

std::vector<std::string> lines_of_text(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

uint64_t size_of(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

child spawn_booking(const std::vector<std::string>& args, const std::string& logs, const std::string& name) {
  std::vector<std::string> all = {STATEFOLD_BOOKING};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  child c;
  c.out = logs + "/" + name + ".out";
  c.err = logs + "/" + name + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), ::environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0);
  return c;
}

class store_e2e_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(t_ / "redis");
    auto s = redis_server::start({.dir = t_ / "redis"});
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
  }
  std::string store() const { return "--store " + server_->url(); }
  std::string in() const { return t_ / "in.jsonl"; }

  temp_dir t_;
  std::unique_ptr<redis_server> server_;
};

TEST_F(store_e2e_test, ExportEqualsTheFoldAndTheStatefulRunsAndARerunAppliesNothing) {
  const auto input = make_input(2000, 3);  // redeliveries of any earlier event, and rule breaks
  write_jsonl(in(), input);
  auto r = run("run " + store() + " --input " + in());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(stateless)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("store            appendonly yes, appendfsync always"), std::string::npos) << r.out;
  expect_exported(store(), input);

  // The stateful engine on the same input exports the same bytes: one Model, two designs.
  auto stateful = run("run --data " + (t_ / "data") + " --input " + in());
  ASSERT_EQ(stateful.exit_code, 0) << stateful.err;
  EXPECT_EQ(run("export " + store()).out, run("export --data " + (t_ / "data")).out);
  const std::string id = input.front()["booking_id"];
  EXPECT_EQ(run("get " + store() + " " + id).out, run("get --data " + (t_ / "data") + " " + id).out);

  auto again = run("run " + store() + " --input " + in());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("applied          0\n"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("resumed " + in() + " at line " + std::to_string(input.size() + 1)), std::string::npos)
      << again.err;
  expect_exported(store(), input);
}

TEST_F(store_e2e_test, ConsumersKilledAnywhereRerunExactly) {
  const auto input = make_input(4000, 9);
  write_jsonl(in(), input);
  std::mt19937 rng(11);
  int killed = 0;
  for (int round = 0; round < 6; ++round) {
    const auto start = std::chrono::steady_clock::now();
    const int after_ms = 20 + static_cast<int>(rng() % 250);
    killed += run_and_kill({"run", "--store", server_->url(), "--input", in(), "--ack-log", t_ / "acks"},
                           t_.path(), [&](const std::string&) {
                             return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(after_ms);
                           }, 20'000);
  }
  EXPECT_GT(killed, 0);
  auto last = run("run " + store() + " --input " + in());
  ASSERT_EQ(last.exit_code, 0) << last.err;
  expect_exported(store(), input);
}

TEST_F(store_e2e_test, TwoConsumersOnTheSameInputOneKilledAndRestartedApplyEachEventOnce) {
  const auto input = make_input(4000, 21);
  write_jsonl(in(), input);
  const std::vector<std::string> args = {"run", "--store", server_->url(), "--input", in()};
  child a = spawn_booking(args, t_.path(), "a");
  child b = spawn_booking(args, t_.path(), "b");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  b.kill9();
  child b2 = spawn_booking(args, t_.path(), "b2");
  EXPECT_EQ(a.wait(), 0) << statefold::testing::read_bytes(a.err);
  EXPECT_EQ(b2.wait(), 0) << statefold::testing::read_bytes(b2.err);
  expect_exported(store(), input);
}

TEST_F(store_e2e_test, TwoConsumersOnOverlappingInputsApplyEachEventOnce) {
  // Two files (two sources) that share a third of the bookings, each booking's events in the
  // same order in both: per key, whichever consumer gets there first applies, the other
  // finds the event processed.
  const auto input = make_input(3000, 33);
  std::vector<json> first, second;
  for (const auto& e : input) {
    const int b = std::stoi(e["booking_id"].get<std::string>().substr(3));
    if (b < 2000) first.push_back(e);
    if (b >= 1000) second.push_back(e);
  }
  write_jsonl(t_ / "first.jsonl", first);
  write_jsonl(t_ / "second.jsonl", second);
  child a = spawn_booking({"run", "--store", server_->url(), "--input", t_ / "first.jsonl"}, t_.path(), "a");
  child b = spawn_booking({"run", "--store", server_->url(), "--input", t_ / "second.jsonl"}, t_.path(), "b");
  EXPECT_EQ(a.wait(), 0) << statefold::testing::read_bytes(a.err);
  EXPECT_EQ(b.wait(), 0) << statefold::testing::read_bytes(b.err);
  expect_exported(store(), input);
}

TEST_F(store_e2e_test, ARedisKilledMidRunLosesNothingAcknowledgedAndTheRerunIsExact) {
  const auto input = make_input(6000, 41);
  write_jsonl(in(), input);
  std::map<std::string, std::string> booking_of;
  for (const auto& e : input) booking_of[e["event_id"]] = e["booking_id"];
  child c = spawn_booking({"run", "--store", server_->url(), "--input", in(), "--ack-log", t_ / "acks"},
                          t_.path(), "c");
  // Kill the server once the consumer has acknowledged something.
  for (int ms = 0; ms < 20'000 && size_of(t_ / "acks") < 20'000; ++ms)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server_->kill();
  EXPECT_EQ(c.wait(), 1);
  const std::string err = statefold::testing::read_bytes(c.err);
  EXPECT_NE(err.find(server_->url()), std::string::npos) << err;
  ASSERT_TRUE(server_->restart().is_ok());

  // Every acknowledged event is in the restarted server (its AOF was fsynced before the reply).
  const auto acked = lines_of_text(statefold::testing::read_bytes(t_ / "acks"));
  ASSERT_GT(acked.size(), 0u);
  for (const auto& id : acked) {
    const std::string& key = booking_of[id];
    auto r = statefold::testing::redis_command(
        server_->port(), {"EXISTS", "statefold:e:" + std::to_string(key.size()) + ":" + key + id});
    ASSERT_TRUE(r);
    ASSERT_EQ(*r, ":1") << "acknowledged event " << id << " is not in the restarted server";
  }
  auto rerun = run("run " + store() + " --input " + in());
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  expect_exported(store(), input);
}

TEST_F(store_e2e_test, AnUnreachableStoreIsAClearErrorAndAcknowledgesNothing) {
  write_jsonl(in(), make_input(50, 1));
  const int port = server_->port();
  ASSERT_TRUE(server_->stop().is_ok());
  const std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  auto r = run("run --store " + url + " --input " + in() + " --ack-log " + (t_ / "acks"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(url + ": cannot connect"), std::string::npos) << r.err;
  EXPECT_EQ(statefold::testing::read_bytes(t_ / "acks"), "");
  auto g = run("get --store " + url + " bk-1");
  EXPECT_EQ(g.exit_code, 1);
  EXPECT_NE(g.err.find(url), std::string::npos) << g.err;
}

TEST_F(store_e2e_test, ALastLineConsumedWithoutItsNewlineResumesWhenTheNewlineArrives) {
  const auto input = make_input(300, 13);
  std::string text;
  for (const auto& e : input) text += e.dump() + "\n";
  const std::size_t half = text.find('\n', text.size() / 2);  // a whole line, its '\n' held back
  statefold::testing::write_bytes(in(), text.substr(0, half));
  auto first = run("run " + store() + " --input " + in());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  statefold::testing::append_bytes(in(), text.substr(half));  // the newline, and the rest
  auto second = run("run " + store() + " --input " + in());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  expect_exported(store(), input);
  // The same through the stateful engine, for the same input history: the same export.
  statefold::testing::write_bytes(t_ / "b.jsonl", text.substr(0, half));
  ASSERT_EQ(run("run --data " + (t_ / "data") + " --input " + (t_ / "b.jsonl")).exit_code, 0);
  statefold::testing::append_bytes(t_ / "b.jsonl", text.substr(half));
  ASSERT_EQ(run("run --data " + (t_ / "data") + " --input " + (t_ / "b.jsonl")).exit_code, 0);
  EXPECT_EQ(run("export " + store()).out, run("export --data " + (t_ / "data")).out);
}

TEST_F(store_e2e_test, GetAndExportWriteNothingAndAnEmptyStoreIsAnError) {
  auto e = run("export " + store());
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("no statefold state under prefix 'statefold'"), std::string::npos) << e.err;
  auto g = run("get --store " + server_->url(5) + " bk-1");  // another database: empty too
  EXPECT_EQ(g.exit_code, 1);
  for (int db : {0, 5}) {
    auto keys = run_program("redis-cli -p " + std::to_string(server_->port()) + " -n " + std::to_string(db) + " dbsize");
    EXPECT_EQ(keys.out, "0\n") << "a reader wrote to database " << db;
  }
}

TEST_F(store_e2e_test, StoreOptionsAreCheckedBeforeAnythingIsTouched) {
  for (const std::string& bad : {std::string("--store-prefix 'a:b'"), std::string("--store-prefix ''"),
                                 std::string("--processed-ttl 0"), std::string("--processed-ttl -1"),
                                 std::string("--processed-ttl 999999999999")}) {
    auto r = run("run " + store() + " " + bad + " --events 10");
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
  }
  auto secret = run("run --store redis://user:hunter2@127.0.0.1:1/0 --events 10");
  EXPECT_EQ(secret.exit_code, 2);
  EXPECT_EQ(secret.err.find("hunter2"), std::string::npos) << secret.err;
  auto exported = run("export --store http://x");
  EXPECT_EQ(exported.exit_code, 2) << exported.err;
  auto keys = run_program("redis-cli -p " + std::to_string(server_->port()) + " dbsize");
  EXPECT_EQ(keys.out, "0\n");
}

TEST_F(store_e2e_test, EngineOnlyFlagsAreRefusedWithAStore) {
  for (const char* flag : {"--data x", "--partitions 2", "--durability none", "--dedup-window 9"}) {
    auto r = run("run " + store() + " " + flag + " --events 10");
    EXPECT_EQ(r.exit_code, 2) << flag;
    EXPECT_NE(r.err.find("excludes"), std::string::npos) << flag << ": " << r.err;
  }
  auto bad = run("run --store http://x --events 10");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("expected redis://HOST[:PORT][/DB]"), std::string::npos) << bad.err;
}

}  // namespace
