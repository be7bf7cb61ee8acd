// What the seed's literal TicketBookingConsumer gets wrong, shown deterministically against a
// real redis-server, and the same scripts run through stateless_consumer, which gets them
// right (docs/stores.md, "What the seed's sequence gets wrong").
//
// The seed's loop, per event:
//   if (stateStore.isProcessed(id)) return;
//   state = stateStore.getState(key); state.update(event);
//   stateStore.saveState(key, state);
//   stateStore.markAsProcessed(id);

#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>

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

struct crash : std::runtime_error {
  crash() : std::runtime_error("simulated crash") {}
};

// The seed's consumer, word for word, over the store's four operations. `between` runs at the
// named points of the sequence: a test crashes there (throws) or lets another consumer run.
class seed_consumer {
 public:
  enum class point { after_get, after_save };
  explicit seed_consumer(state_store& s) : store_(s) {}
  std::function<void(point)> between = [](point) {};

  void process(const ledger_event& e) {
    if (*store_.is_processed(e.key, e.id)) return;
    auto got = *store_.get_state(e.key);
    ledger_state s;
    if (got.version != 0) {
      ASSERT_TRUE(ledger_model::decode_state(got.bytes, s));
    }
    between(point::after_get);
    ledger_model::apply(s, e);
    std::string bytes;
    ledger_model::encode_state(s, bytes);
    ASSERT_TRUE(store_.save_state(e.key, bytes).is_ok());
    between(point::after_save);
    ASSERT_TRUE(store_.mark_processed(e.key, e.id, 0).is_ok());
  }

 private:
  state_store& store_;
};

class SeedSequenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::redis_server::start({.dir = dir_.path()});
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
  }
  std::unique_ptr<stores::redis_store> connect() {
    auto c = stores::redis_store::connect(server_->url());
    EXPECT_TRUE(c) << c.error().to_string();
    return c ? std::move(*c) : nullptr;
  }
  ledger_state state_of(const std::string& key) {
    auto store = connect();
    auto got = *store->get_state(key);
    ledger_state s;
    EXPECT_TRUE(got.version == 0 || ledger_model::decode_state(got.bytes, s));
    return s;
  }

  testing::temp_dir dir_;
  std::unique_ptr<testing::redis_server> server_;
};

// A crash between saveState and markAsProcessed, then the event redelivered.
TEST_F(SeedSequenceTest, TheSeedsSequenceAppliesAnEventTwiceAfterACrashBetweenSaveAndMark) {
  auto store = connect();
  seed_consumer seed(*store);
  seed.between = [](seed_consumer::point p) {
    if (p == seed_consumer::point::after_save) throw crash();
  };
  const auto payment = ledger("pay-1", "booking-1", 1, 50);
  EXPECT_THROW(seed.process(payment), crash);
  seed.between = [](seed_consumer::point) {};
  seed.process(payment);  // redelivered after the restart
  const auto s = state_of("booking-1");
  EXPECT_EQ(s.count, 2u) << "the seed's sequence was expected to apply the payment twice";
  EXPECT_EQ(s.sum, 100);
  EXPECT_EQ(s.repeats, 1u);
}

TEST_F(SeedSequenceTest, TheAtomicCommitAppliesItOnceWhereverTheCrashFalls) {
  // A crash before the commit leaves nothing; a crash after it (before the acknowledgement
  // reaches anyone) leaves the event processed: the redelivery is a duplicate either way.
  for (bool crash_after_commit : {false, true}) {
    SCOPED_TRACE(crash_after_commit ? "crash after the commit" : "crash before the commit");
    auto store = connect();
    const std::string key = crash_after_commit ? "booking-a" : "booking-b";
    const auto payment = ledger("pay-1", key, 1, 50);
    {
      stateless_consumer<ledger_model> c(*store);
      if (crash_after_commit) {
        ASSERT_TRUE(c.process(std::vector{payment}));
      }
      // (before: the process died before process() was called or before its commit ran)
    }
    stateless_consumer<ledger_model> restarted(*store);
    auto r = restarted.process(std::vector{payment});
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[0].kind, crash_after_commit ? outcome::duplicate : outcome::applied);
    const auto s = state_of(key);
    EXPECT_EQ(s.count, 1u);
    EXPECT_EQ(s.sum, 50);
  }
}

// Two consumers on one key: B runs its whole step between A's getState and A's saveState.
TEST_F(SeedSequenceTest, TheSeedsSequenceLosesAnUpdateWhenTwoConsumersInterleave) {
  auto store_a = connect(), store_b = connect();
  seed_consumer a(*store_a), b(*store_b);
  a.between = [&](seed_consumer::point p) {
    if (p == seed_consumer::point::after_get) b.process(ledger("pay-b", "booking-1", 1, 30));
  };
  a.process(ledger("pay-a", "booking-1", 1, 20));
  const auto s = state_of("booking-1");
  EXPECT_EQ(s.count, 1u) << "the seed's sequence was expected to lose B's update";
  EXPECT_EQ(s.sum, 20);  // B's 30 is gone, though B's event is marked processed
  EXPECT_TRUE(store_a->is_processed("booking-1", "pay-b")->has_value());
}

// The same interleaving through stateless_consumer: A's commit finds the version moved, A
// reads again and redoes its event on top of B's.
TEST_F(SeedSequenceTest, TheAtomicCommitLosesNoUpdateInTheSameInterleaving) {
  auto store_a = connect(), store_b = connect();
  stateless_consumer<ledger_model> b(*store_b);
  testing::hooked_store a_store(*store_a);
  a_store.before_commit = [&](int n) {
    if (n != 0) return;
    auto r = b.process(std::vector{ledger("pay-b", "booking-1", 1, 30)});
    ASSERT_TRUE(r && (*r)[0].kind == outcome::applied);
  };
  stateless_consumer<ledger_model> a(a_store);
  auto r = a.process(std::vector{ledger("pay-a", "booking-1", 1, 20)});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ((*r)[0].kind, outcome::applied);
  EXPECT_EQ(a.stats().retries, 1u);
  const auto s = state_of("booking-1");
  EXPECT_EQ(s.count, 2u);
  EXPECT_EQ(s.sum, 50);
}

}  // namespace
}  // namespace statefold
