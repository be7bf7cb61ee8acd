// statefold::stores::redis_store and stateless_consumer against a real redis-server, started
// by the test on a free loopback port in a temporary directory (appendfsync always).

#include <gtest/gtest.h>

#include <thread>

#include "statefold/stateless_consumer.hpp"
#include "statefold/stores/redis_store.hpp"
#include "statefold/testing/hooked_store.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/redis_server.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::ledger;
using testing::ledger_event;
using testing::ledger_model;
using testing::ledger_state;
using stores::redis_store;
using consumer = stateless_consumer<ledger_model>;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::redis_server::start({.dir = dir_.path()});
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
  }
  std::unique_ptr<redis_store> connect(stores::redis_options o = {}) {
    auto c = redis_store::connect(server_->url(), o);
    EXPECT_TRUE(c) << c.error().to_string();
    return c ? std::move(*c) : nullptr;
  }
  static std::vector<event_meta> positioned(const std::string& source, std::vector<uint64_t> offsets) {
    std::vector<event_meta> m(offsets.size());
    for (std::size_t i = 0; i < offsets.size(); ++i) m[i].source = source_position{source, offsets[i]};
    return m;
  }

  testing::temp_dir dir_;
  std::unique_ptr<testing::redis_server> server_;
};

std::vector<outcome> kinds(const std::vector<stateless_result>& rs) {
  std::vector<outcome> out;
  for (const auto& r : rs) out.push_back(r.kind);
  return out;
}

TEST_F(StoreTest, AnswersLikeTheEngineAndAppliesEachEventOnce) {
  auto store = connect();
  consumer c(*store);
  ASSERT_TRUE(c.open().is_ok());
  const std::vector<ledger_event> batch = {
      ledger("e1", "k", 1, 10),
      ledger("e2", "k", 2, 5),
      ledger("e1", "k", 1, 10),    // the same event again in the batch: duplicate
      ledger("e2", "k", 2, 6),     // e2 with another body: conflict
      ledger("e3", "k", 3, -999),  // the handler throws after changing the state: rejected
      ledger("e1", "other", 1, 1), // the same ID on another key: another event
      ledger("e4", "", 1, 1),      // invalid: rejected
  };
  auto rs = c.process(batch);
  ASSERT_TRUE(rs) << rs.error().to_string();
  EXPECT_EQ(kinds(*rs), (std::vector<outcome>{outcome::applied, outcome::applied, outcome::duplicate,
                                               outcome::conflict, outcome::rejected, outcome::applied,
                                               outcome::rejected}));
  auto k = c.get("k");
  ASSERT_TRUE(k && *k);
  EXPECT_EQ(**k, (ledger_state{2, 15, 2, 0, 0}));  // the throw's half-change is undone

  // Redelivered in another batch, by another consumer: nothing applies twice.
  auto store2 = connect();
  consumer c2(*store2);
  auto again = c2.process(batch);
  ASSERT_TRUE(again);
  EXPECT_EQ(kinds(*again), (std::vector<outcome>{outcome::duplicate, outcome::duplicate, outcome::duplicate,
                                                  outcome::conflict, outcome::rejected, outcome::duplicate,
                                                  outcome::rejected}));
  EXPECT_EQ(**c2.get("k"), (ledger_state{2, 15, 2, 0, 0}));
  EXPECT_EQ(**c2.get("other"), (ledger_state{1, 1, 1, 0, 0}));
  EXPECT_EQ(store->get_state("k")->version, 1u);  // one commit changed it
}

TEST_F(StoreTest, CommitIsAllOrNothing) {
  auto store = connect();
  ASSERT_TRUE(store->commit("a", "A1", "e1", 1, 0)->committed);
  ASSERT_TRUE(store->commit("b", "B1", "e2", 2, 0)->committed);
  const committed_event ea{"e3", 3}, eb{"e4", 4};
  const key_commit both[] = {{"a", 1, "A2", false, std::span(&ea, 1)},
                             {"b", 0, "B2", false, std::span(&eb, 1)}};  // b's version is 1: stale
  auto r = store->commit(both, nullptr);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->committed);
  EXPECT_NE(r->moved.find("version"), std::string::npos) << r->moved;
  EXPECT_EQ(store->get_state("a")->bytes, "A1");  // a was not written either
  EXPECT_FALSE(*store->is_processed("a", "e3"));
  // An event processed already makes the commit stale, whatever the versions.
  auto again = store->commit("a", "A2", "e1", 1, 1);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->committed);
  EXPECT_NE(again->moved.find("marker"), std::string::npos) << again->moved;
}


// The scripted interleaving of two consumers on one key: B commits between A's read and A's
// commit. A's commit is stale, A reads again and redoes its batch: both updates land.
TEST_F(StoreTest, TwoConsumersInterleavedOnOneKeyLoseNoUpdate) {
  auto store_a = connect(), store_b = connect();
  testing::hooked_store a_view(*store_a);
  stateless_consumer<ledger_model> a(a_view), b(*store_b);
  a_view.before_commit = [&](int n) {
    if (n != 0) return;
    auto rb = b.process(std::vector{ledger("b1", "seat-7", 1, 100)});
    ASSERT_TRUE(rb && (*rb)[0].kind == outcome::applied);
  };
  auto ra = a.process(std::vector{ledger("a1", "seat-7", 2, 1)});
  ASSERT_TRUE(ra) << ra.error().to_string();
  EXPECT_EQ((*ra)[0].kind, outcome::applied);
  EXPECT_EQ(a.stats().retries, 1u);
  EXPECT_EQ(a_view.commits(), 2);
  const auto s = **a.get("seat-7");
  EXPECT_EQ(s.count, 2u);
  EXPECT_EQ(s.sum, 101);
}

TEST_F(StoreTest, TheSourcePositionMakesARerunExactEvenWhenMarkersExpire) {
  stores::redis_options o;
  o.processed_ttl_s = 1;  // markers expire: only the source position is left to dedup by
  auto store = connect(o);
  consumer c(*store);
  const std::vector<ledger_event> events = {ledger("e1", "k", 1, 1), ledger("e2", "k", 2, 2),
                                            ledger("e3", "j", 1, 3)};
  const auto metas = positioned("in.jsonl", {0, 10, 20});
  const source_span span{"in.jsonl", 0, {30, 30, 0xabc}};
  ASSERT_TRUE(c.process(events, metas, &span));
  EXPECT_EQ(*store->progress("in.jsonl"), (source_progress{30, 30, 0xabc}));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  ASSERT_FALSE(*store->is_processed("k", "e1"));  // expired

  auto rerun = c.process(events, metas, &span);
  ASSERT_TRUE(rerun) << rerun.error().to_string();
  EXPECT_EQ(kinds(*rerun), std::vector<outcome>(3, outcome::duplicate));
  EXPECT_EQ((*c.get("k"))->count, 2u);
}

TEST_F(StoreTest, OverlappingSourceRangesApplyOnlyWhatIsNotConsumed) {
  auto store = connect();
  consumer c(*store);
  const std::vector<ledger_event> first = {ledger("e1", "k", 1, 1), ledger("e2", "k", 2, 2)};
  const source_span s1{"src", 0, {20, 20, 1}};
  ASSERT_TRUE(c.process(first, positioned("src", {0, 10}), &s1));
  // A second consumer started at 0 too: its batch [0, 30) overlaps.
  auto store2 = connect();
  consumer c2(*store2);
  const std::vector<ledger_event> second = {ledger("e1", "k", 1, 1), ledger("e2", "k", 2, 2),
                                            ledger("e3", "k", 3, 3)};
  const source_span s2{"src", 0, {30, 30, 2}};
  auto r = c2.process(second, positioned("src", {0, 10, 20}), &s2);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(kinds(*r), (std::vector<outcome>{outcome::duplicate, outcome::duplicate, outcome::applied}));
  EXPECT_EQ(**c2.get("k"), (ledger_state{3, 6, 3, 0, 0}));
  EXPECT_EQ(store->progress("src")->next, 30u);
}

TEST_F(StoreTest, ACommitThatLeavesAGapIsRefused) {
  auto store = connect();
  consumer c(*store);
  const source_span span{"src", 100, {110, 110, 0}};
  auto r = c.process(std::vector{ledger("e1", "k", 1, 1)}, positioned("src", {100}), &span);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("never committed"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(store->get_state("k")->version, 0u);
}

TEST_F(StoreTest, AnotherModelsStoreIsRefusedByName) {
  auto store = connect();
  ASSERT_TRUE(store->check_model("booking", 2).is_ok());
  ASSERT_TRUE(store->check_model("booking", 2).is_ok());
  auto st = store->check_model("wallet", 1);
  EXPECT_EQ(st.code(), errc::config_mismatch);
  EXPECT_NE(st.message().find("'booking' codec version 2"), std::string::npos) << st.to_string();
}

TEST_F(StoreTest, AnUnreachableServerIsAClearError) {
  const int port = server_->port();
  ASSERT_TRUE(server_->stop().is_ok());
  auto c = redis_store::connect("redis://127.0.0.1:" + std::to_string(port) + "/0");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::io_error);
  EXPECT_NE(c.error().message().find("redis://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << c.error().to_string();
  for (const char* bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:1/x", "redis://h:99999"}) {
    auto r = stores::parse_redis_url(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message().find("expected redis://HOST[:PORT][/DB]"), std::string::npos);
    }
  }
  auto good = stores::parse_redis_url("redis://db.example:6380/3");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->host, "db.example");
  EXPECT_EQ(good->port, 6380);
  EXPECT_EQ(good->db, 3);
}

TEST_F(StoreTest, AServerThatDiesIsAnErrorAndARestartedOneHasEverythingAcknowledged) {
  auto store = connect();
  consumer c(*store);
  ASSERT_TRUE(c.process(std::vector{ledger("e1", "k", 1, 1)}));  // acknowledged: on the AOF
  server_->kill();
  auto r = c.process(std::vector{ledger("e2", "k", 2, 1)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::io_error);
  EXPECT_NE(r.error().message().find(server_->url()), std::string::npos) << r.error().to_string();
  ASSERT_TRUE(server_->restart().is_ok());
  auto fresh = connect();
  consumer c2(*fresh);
  EXPECT_EQ(**c2.get("k"), (ledger_state{1, 1, 1, 0, 0}));
  // The script cache does not survive a restart (nor SCRIPT FLUSH): the store reloads it.
  auto flushed = testing::redis_command(server_->port(), {"SCRIPT", "FLUSH"});
  ASSERT_TRUE(flushed && *flushed == "+OK");
  auto r2 = c2.process(std::vector{ledger("e2", "k", 2, 1)});
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_EQ((*r2)[0].kind, outcome::applied);
}

TEST_F(StoreTest, ExportSeesEveryKeyOnce) {
  auto store = connect();
  consumer c(*store);
  std::vector<ledger_event> events;
  for (int i = 0; i < 2500; ++i) events.push_back(ledger("e" + std::to_string(i), "key*" + std::to_string(i), 1, i));
  ASSERT_TRUE(c.process(events));
  std::map<std::string, uint64_t> seen;
  ASSERT_TRUE(store->for_each_state([&](std::string_view k, const stored_state& s) {
                     ++seen[std::string(k)];
                     EXPECT_EQ(s.version, 1u);
                     return status::ok();
                   }).is_ok());
  EXPECT_EQ(seen.size(), 2500u);
  for (const auto& [k, n] : seen) EXPECT_EQ(n, 1u) << k;
}

}  // namespace
}  // namespace statefold
