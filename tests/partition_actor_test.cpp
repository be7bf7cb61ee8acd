// The partition actor under CAF's deterministic test coordinator: every actor (the partition
// actor and its flusher, spawned here without caf::detached) runs in the test thread, one
// message at a time, in the order the test chooses. State, files and fdatasync are real.
//
// CAF's DSL macros (expect/allow/CAF_CHECK) need CAF's own test runner and crash under
// GoogleTest, so the scheduler is driven by hand: step(a) runs the next message of actor a.

#define CAF_TEST_NO_MAIN
#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>  // CAF's test engine; exactly once per executable
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "statefold/detail/messages.hpp"
#include "statefold/detail/flusher_actor.hpp"
#include "statefold/detail/partition_actor.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::fault_file_system;
using testing::fs_op;

using testing::ledger;
using testing::ledger_event;
using testing::ledger_model;
using ledger_state_t = partition_state<ledger_model>;
using actor_state = detail::partition_actor_state<ledger_model>;

/// What a batch_completion reported, and when.
struct answer {
  bool ran = false;
  int order = -1;                 // 0 for the first completion to run in this test, 1, ...
  uint64_t durable_at_answer = 0; // partition_state::durable_lsn() while the callback ran
  std::vector<submit_result> results;
};

class partition_actor_test : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }

  void TearDown() override {
    // Stop both actors while everything they point at (options, fs, temp dir) still exists.
    if (part_) caf::anon_send_exit(part_, caf::exit_reason::user_shutdown);
    if (flusher_) caf::anon_send_exit(flusher_, caf::exit_reason::user_shutdown);
    caf_->run();
    part_ = nullptr;
    flusher_ = nullptr;
    ps_.reset();
    caf_.reset();
  }

  /// Opens the partition state (on `fs`) and spawns flusher and partition actor.
  void start(file_system& fs) {
    partition_options po;
    po.dir = t_ / "p0";
    po.partition = 0;
    po.dedup_window = 1000;
    po.inline_rebuild = false;
    po.log.segment_bytes = 1 << 20;
    po.log.max_record_bytes = 64 << 10;
    auto ps = ledger_state_t::open(fs, std::move(po));
    ASSERT_TRUE(ps) << ps.error().to_string();
    ps_ = std::shared_ptr<ledger_state_t>(std::move(ps).value());

    opts_.dir = t_ / "unused";
    opts_.mode = durability::sync;
    opts_.checkpoint_every_events = 0;
    opts_.checkpoint_every = std::chrono::seconds(0);
    opts_.checkpoint_on_close = false;
    detail::partition_context ctx{0, &opts_, spdlog::default_logger().get(), &flight_, &restarts_};

    // Production spawns the flusher detached; here it is scheduled, so the test runs it.
    flusher_ = caf_->sys.spawn(detail::flusher_actor<ledger_model>);
    part_ = caf_->sys.spawn(detail::partition_actor<ledger_model>, ps_, flusher_, ctx);
    caf_->sched.run();  // initialization of both actors
    ASSERT_FALSE(caf_->sched.has_job());
  }

  actor_state& state() {
    auto* a = dynamic_cast<detail::partition_actor_type<ledger_model>*>(
        caf::actor_cast<caf::abstract_actor*>(part_));
    return a->state;
  }

  bool has_job(const caf::actor& a) {
    auto* r = dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(a));
    auto& jobs = caf_->sched.jobs;
    return std::find(jobs.begin(), jobs.end(), r) != jobs.end();
  }

  /// Lets actor `a` (and only it) handle its next message. False if it has none.
  bool step(const caf::actor& a) {
    if (!caf_->sched.prioritize(a)) return false;
    caf_->sched.run_once();
    return true;
  }
  /// The flusher takes the flush request (queued), then its own commit message: one round,
  /// write + fdatasync, and the reply `flushed`.
  bool flush_step() { return step(flusher_) && step(flusher_); }

  /// Sends a batch of events to the partition actor as engine::submit_batch does.
  std::shared_ptr<answer> submit(std::vector<ledger_event> events) {
    auto ans = std::make_shared<answer>();
    auto c = std::make_shared<detail::batch_completion>();
    c->results.resize(events.size());
    for (auto& r : c->results) r.reason = "not processed";
    std::weak_ptr<ledger_state_t> ps = ps_;
    c->on_batch = [ans, ps, counter = answers_](std::vector<submit_result>& rs) {
      ans->ran = true;
      ans->order = (*counter)++;
      if (auto p = ps.lock()) ans->durable_at_answer = p->durable_lsn();
      ans->results = rs;
    };
    auto w = std::make_shared<detail::submit_work<ledger_model>>();
    w->events = std::move(events);
    w->done = std::move(c);
    caf::anon_send(part_, detail::submit_atom::value, detail::work_ptr(std::move(w)));
    return ans;
  }

  testing::temp_dir t_;
  engine_options opts_;
  detail::flight_counter flight_;
  std::atomic<uint64_t> restarts_{0};
  std::shared_ptr<int> answers_ = std::make_shared<int>(0);
  std::unique_ptr<fault_file_system> fault_;  // outlives the partition state on top of it
  std::shared_ptr<ledger_state_t> ps_;
  // Declared after everything the actors point at, so the actor system goes first.
  std::unique_ptr<::test_coordinator_fixture<>> caf_ =
      std::make_unique<::test_coordinator_fixture<>>();
  caf::actor flusher_;
  caf::actor part_;
};

TEST_F(partition_actor_test, AckWaitsForTheFlushedMessage) {
  ASSERT_NO_FATAL_FAILURE(start(posix_file_system()));
  auto a = submit({ledger("e1", "k", 1, 10), ledger("e2", "k", 2, 20), ledger("e3", "k", 3, 30)});

  ASSERT_TRUE(step(part_));  // applies the three events, sends the flush request
  EXPECT_FALSE(a->ran) << "answered before the flusher was even asked";
  EXPECT_TRUE(state().flushing);
  EXPECT_EQ(state().waiting.size(), 1u);
  EXPECT_EQ(ps_->durable_lsn(), 0u);
  EXPECT_FALSE(has_job(part_));
  ASSERT_TRUE(has_job(flusher_));

  ASSERT_TRUE(flush_step());  // write + fdatasync, replies `flushed`
  EXPECT_FALSE(a->ran) << "answered before the partition actor saw the flusher's reply";
  EXPECT_GE(ps_->durable_lsn(), 3u);
  ASSERT_TRUE(has_job(part_));

  ASSERT_TRUE(step(part_));  // handles `flushed`
  ASSERT_TRUE(a->ran);
  ASSERT_EQ(a->results.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a->results[i].kind, outcome::applied) << a->results[i].reason;
    EXPECT_EQ(a->results[i].lsn, i + 1);
  }
  EXPECT_GE(a->durable_at_answer, 3u);
  EXPECT_GE(ps_->durable_lsn(), 3u);
  EXPECT_EQ(state().syncs, 1u);
  EXPECT_FALSE(state().flushing);
  EXPECT_TRUE(state().waiting.empty());
  EXPECT_FALSE(caf_->sched.has_job());
}

TEST_F(partition_actor_test, BatchesArrivingDuringAFlushGoIntoTheNextOne) {
  ASSERT_NO_FATAL_FAILURE(start(posix_file_system()));
  auto a = submit({ledger("a1", "k", 1, 1)});
  ASSERT_TRUE(step(part_));  // A applied, flush #1 requested
  ASSERT_TRUE(state().flushing);
  ASSERT_TRUE(has_job(flusher_));

  auto b = submit({ledger("b1", "k", 2, 1), ledger("b2", "k", 3, 1)});
  auto c = submit({ledger("c1", "k", 4, 1)});
  int handled = 0;
  while (step(part_)) ++handled;  // the flusher does not run meanwhile
  EXPECT_EQ(handled, 2);
  EXPECT_EQ(state().waiting.size(), 3u);  // A, B, C all wait; no second flush in flight
  EXPECT_EQ(state().syncs, 0u);
  EXPECT_FALSE(a->ran || b->ran || c->ran);

  ASSERT_TRUE(flush_step());  // flush #1 (A only)
  ASSERT_TRUE(step(part_));     // its reply: answers A, requests flush #2 for B and C
  EXPECT_EQ(state().syncs, 1u);
  ASSERT_TRUE(a->ran);
  EXPECT_EQ(a->results[0].lsn, 1u);
  EXPECT_FALSE(b->ran || c->ran);
  EXPECT_TRUE(state().flushing);

  ASSERT_TRUE(flush_step());  // flush #2 (B and C together)
  ASSERT_TRUE(step(part_));
  EXPECT_EQ(state().syncs, 2u);
  ASSERT_TRUE(b->ran);
  ASSERT_TRUE(c->ran);
  EXPECT_EQ(b->results[0].lsn, 2u);
  EXPECT_EQ(b->results[1].lsn, 3u);
  EXPECT_EQ(c->results[0].lsn, 4u);
  EXPECT_GE(c->durable_at_answer, 4u);

  caf_->sched.run();  // nothing else is pending: no third flush
  EXPECT_EQ(state().syncs, 2u);
  EXPECT_FALSE(state().flushing);
}

TEST_F(partition_actor_test, DuplicateIsAnsweredOnlyWhenTheOriginalIsDurable) {
  ASSERT_NO_FATAL_FAILURE(start(posix_file_system()));
  auto first = submit({ledger("e1", "k", 1, 10)});
  ASSERT_TRUE(step(part_));  // e1 applied at LSN 1, flush requested
  auto again = submit({ledger("e1", "k", 1, 10)});
  ASSERT_TRUE(step(part_));  // recognised as a duplicate; e1 is not durable yet
  EXPECT_FALSE(again->ran) << "duplicate answered before the original was durable";
  EXPECT_EQ(ps_->durable_lsn(), 0u);

  ASSERT_TRUE(flush_step());
  EXPECT_FALSE(again->ran);
  ASSERT_TRUE(step(part_));  // the reply to the flush covering e1
  ASSERT_TRUE(first->ran);
  ASSERT_TRUE(again->ran);
  EXPECT_EQ(first->results[0].kind, outcome::applied);
  EXPECT_EQ(again->results[0].kind, outcome::duplicate) << again->results[0].reason;
  EXPECT_LT(first->order, again->order);
  EXPECT_GE(again->durable_at_answer, 1u);
  EXPECT_EQ(state().syncs, 1u);
}

TEST_F(partition_actor_test, FailedPersistAnswersEveryoneFailedAndStops) {
  fault_ = std::make_unique<fault_file_system>(posix_file_system());
  ASSERT_NO_FATAL_FAILURE(start(*fault_));
  caf_->self->monitor(part_);
  fault_->fail(fs_op::sync, 1, errc::io_error);

  auto a = submit({ledger("e1", "k", 1, 10), ledger("e2", "k", 2, 20)});
  ASSERT_TRUE(step(part_));
  ASSERT_TRUE(flush_step());  // the fdatasync fails
  EXPECT_FALSE(a->ran);
  ASSERT_TRUE(step(part_));     // the failed reply: answer everyone, quit
  ASSERT_TRUE(a->ran);
  for (auto& r : a->results) {
    EXPECT_EQ(r.kind, outcome::failed);
    EXPECT_NE(r.reason.find("io_error"), std::string::npos) << r.reason;
  }
  EXPECT_EQ(a->durable_at_answer, 0u);

  caf_->sched.run();
  bool down = false;
  caf_->self->receive(
      [&](caf::down_msg& dm) {
        down = true;
        EXPECT_EQ(dm.source, part_.address());
        EXPECT_EQ(dm.reason, detail::make_error(detail::actor_errc::partition_failed))
            << caf::to_string(dm.reason);
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
  EXPECT_TRUE(down) << "the partition actor is still running";
  EXPECT_FALSE(caf_->sched.has_job());
}

}  // namespace
}  // namespace statefold
