// engine<Model> on real CAF actors and a real disk: acknowledgements only after durability,
// per-key order, duplicates across restarts, failure isolation, backpressure, clean close.

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "statefold/data_reader.hpp"
#include "statefold/engine.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::fault_file_system;
using testing::fs_op;

using testing::ledger;
using testing::ledger_event;
using testing::ledger_model;
using testing::ledger_state;
using testing::temp_dir;
using ledger_engine = engine<ledger_model>;

class engine_test : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }

  engine_options options() {
    engine_options o;
    o.dir = t_ / "data";
    o.partitions = 3;
    o.threads = 2;
    o.dedup_window = 10'000;
    o.log.segment_bytes = 1 << 20;
    o.log.max_record_bytes = 64 << 10;
    o.checkpoint_every_events = 0;
    o.checkpoint_every = std::chrono::seconds(0);
    return o;
  }

  // options() on a fault-injecting file system, with a short restart backoff.
  engine_options options_on(fault_file_system& ffs) {
    engine_options o = options();
    o.fs = &ffs;
    o.restart_backoff = std::chrono::milliseconds(10);
    return o;
  }
  // The same with a journal lane per partition (lanes/L-000p holds partition p's records):
  // a fault in one lane is a fault in one partition.
  engine_options lane_per_partition_on(fault_file_system& ffs) {
    engine_options o = options_on(ffs);
    o.lanes = o.partitions;
    return o;
  }

  std::unique_ptr<ledger_engine> open(engine_options o) {
    auto e = ledger_engine::open(std::move(o));
    EXPECT_TRUE(e) << e.error().to_string();
    return e ? std::move(e).value() : nullptr;
  }

  temp_dir t_;
};

TEST_F(engine_test, SubmitAcknowledgesOnlyDurableEventsAndGetSeesThem) {
  auto e = open(options());
  auto f = e->submit(ledger("e1", "k", 1, 10));
  submit_result r = f.get();
  ASSERT_EQ(r.kind, outcome::applied) << r.reason;
  EXPECT_EQ(r.lsn, 1u);
  auto st = e->stats();
  EXPECT_GE(st[r.partition].core.durable_lsn, r.lsn);  // acknowledged => durable
  auto s = e->get("k");
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->sum, 10);
  auto unknown = e->get("unknown");
  ASSERT_TRUE(unknown) << unknown.error().to_string();
  EXPECT_FALSE(*unknown);
  EXPECT_TRUE(e->close().is_ok());
}

// Several producer threads, each owning its keys, submitting in batches with per-key
// sequence numbers; returns the IDs acknowledged as applied.
std::vector<std::string> run_producers(ledger_engine& e, int threads, int keys_per_thread,
                                       int events_per_key, int batch = 64) {
  std::mutex mu;
  std::vector<std::string> acked;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<ledger_event> pending;
      auto flush = [&] {
        auto done = std::make_shared<std::promise<void>>();
        auto fut = done->get_future();
        std::vector<std::string> ids;
        for (auto& ev : pending) ids.push_back(ev.id);
        status st = e.submit_batch(std::move(pending), [&, done, ids](std::vector<submit_result>& rs) {
          {
            std::lock_guard lock(mu);
            for (std::size_t i = 0; i < rs.size(); ++i)
              if (rs[i].kind == outcome::applied) acked.push_back(ids[i]);
          }
          // Last: once the producer wakes up, `mu` and `acked` may be gone.
          done->set_value();
        });
        pending.clear();
        if (st.is_ok()) fut.wait();
      };
      for (int seq = 1; seq <= events_per_key; ++seq) {
        for (int k = 0; k < keys_per_thread; ++k) {
          const std::string key = "t" + std::to_string(t) + "-k" + std::to_string(k);
          pending.push_back(ledger(key + "-" + std::to_string(seq), key, seq, seq));
          if (static_cast<int>(pending.size()) == batch) flush();
        }
      }
      if (!pending.empty()) flush();
    });
  }
  for (auto& th : ts) th.join();
  return acked;
}

TEST_F(engine_test, ManyProducersKeepPerKeyOrderAndEveryAckIsInTheState) {
  auto e = open(options());
  auto acked = run_producers(*e, 4, 25, 40);
  EXPECT_EQ(acked.size(), 4u * 25 * 40);
  auto all = e->export_all();
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->size(), 100u);
  for (const auto& [key, s] : *all) {
    EXPECT_EQ(s.count, 40u) << key;
    EXPECT_EQ(s.gaps, 0u) << key;
    EXPECT_EQ(s.repeats, 0u) << key;
    EXPECT_EQ(s.sum, 40 * 41 / 2) << key;
  }
  uint64_t syncs = 0;
  for (const auto& st : e->stats()) syncs += st.syncs;
  EXPECT_LT(syncs, 4000u) << "group commit: many events per sync";
  ASSERT_TRUE(e->close().is_ok());
}

TEST_F(engine_test, CloseAndReopenGiveTheSameState) {
  std::vector<std::pair<std::string, ledger_state>> before;
  {
    auto e = open(options());
    run_producers(*e, 2, 10, 30);
    auto all = e->export_all();
    ASSERT_TRUE(all) << all.error().to_string();
    before = std::move(all).value();
    ASSERT_TRUE(e->close().is_ok());
  }
  auto e = open(options());
  auto after = e->export_all();
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(*after, before);
  for (const auto& st : e->stats()) EXPECT_TRUE(st.recovery.used_checkpoint) << st.partition;
}

// The lane's size limit, on the actors: one partition takes an event and falls silent while the
// others write on; at its next ticks the silent one checkpoints for its lane (with no-op
// records: it has nothing new) and the lane shrinks back under max_lane_bytes. A reopen finds
// every state as it was.
TEST_F(engine_test, ASilentPartitionCheckpointsForItsLaneSoTheLaneShrinksUnderItsLimit) {
  engine_options o = options();
  o.lanes = 1;
  o.log.segment_bytes = 64 << 10;
  o.log.max_record_bytes = 4 << 10;
  o.max_lane_bytes = 4 * (64 << 10);
  o.checkpoint_every_events = 500;
  std::vector<std::pair<std::string, ledger_state>> before;
  uint32_t quiet = 0;
  {
    auto e = open(o);
    quiet = e->router().partition_of("quiet");
    ASSERT_EQ(e->submit(ledger("q1", "quiet", 1, 3)).get().kind, outcome::applied);
    ASSERT_TRUE(e->checkpoint().is_ok());
    // 30,000 events of the other partitions: about 35 segments of 64 KiB.
    for (int i = 0; i < 30000; i += 500) {
      std::vector<ledger_event> batch;
      for (int j = i; j < i + 500; ++j) {
        std::string key = "k" + std::to_string(j % 997);
        if (e->router().partition_of(key) == quiet) key += "x";
        if (e->router().partition_of(key) == quiet) continue;
        batch.push_back(ledger("e" + std::to_string(j), key, j / 997 + 1, 1));
      }
      std::promise<void> done;
      ASSERT_TRUE(e->submit_batch(std::move(batch), [&](std::vector<submit_result>& rs) {
                     for (const auto& r : rs) EXPECT_EQ(r.kind, outcome::applied) << r.reason;
                     done.set_value();
                   }).is_ok());
      done.get_future().wait();
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (e->lane_stats()[0].bytes > o.max_lane_bytes && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_LE(e->lane_stats()[0].bytes, o.max_lane_bytes) << e->lane_stats()[0].segments << " segments";
    const auto st = e->stats()[quiet];
    EXPECT_GE(st.core.lane_checkpoints, 1u);
    EXPECT_EQ(st.core.applied, 1u);
    auto all = e->export_all();
    ASSERT_TRUE(all) << all.error().to_string();
    before = std::move(all).value();
    ASSERT_TRUE(e->close().is_ok());
  }
  auto e = open(o);
  auto after = e->export_all();
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(*after, before);
  auto q = e->get("quiet");
  ASSERT_TRUE(q && *q);
  EXPECT_EQ((*q)->sum, 3);
  EXPECT_EQ(e->submit(ledger("q1", "quiet", 1, 3)).get().kind, outcome::duplicate);
}

// Partitions at runtime: release() answers the partition's events failed at once while the
// others keep acknowledging, and seals it; the others' checkpoints then release its records
// from the lane; activate() brings it back from its sealed checkpoint, duplicates included.
// A reopen with start_released starts none; activate starts one at a time.
TEST_F(engine_test, ReleaseAndActivateAPartitionWhileTheOthersKeepRunning) {
  engine_options o = options();
  o.lanes = 1;
  o.log.segment_bytes = 64 << 10;
  o.log.max_record_bytes = 4 << 10;
  o.checkpoint_every_events = 300;
  auto e = open(o);
  const uint32_t gone = e->router().partition_of("mine");
  auto key_not_gone = [&](int i) {
    std::string key = "k" + std::to_string(i % 211);
    while (e->router().partition_of(key) == gone) key += "x";
    return key;
  };
  for (int i = 0; i < 20; ++i) ASSERT_EQ(e->submit(ledger("m" + std::to_string(i), "mine", i + 1, 1)).get().kind, outcome::applied);

  // Producers on the other partitions all along.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed_others{0};
  std::thread producer([&] {
    for (int i = 0; !stop.load(); ++i) {
      auto r = e->submit(ledger("o" + std::to_string(i), key_not_gone(i), i / 211 + 1, 1)).get();
      if (r.kind != outcome::applied) ++failed_others;
      sent.store(i + 1);
    }
  });
  ASSERT_TRUE(e->release(gone).is_ok());
  EXPECT_FALSE(e->active(gone));
  EXPECT_EQ(e->release(gone).code(), errc::invalid_argument);
  auto refused = e->submit(ledger("m-late", "mine", 21, 1)).get();
  EXPECT_EQ(refused.kind, outcome::failed);
  EXPECT_NE(refused.reason.find("is released"), std::string::npos) << refused.reason;
  auto g = e->get("mine");
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message().find("is released"), std::string::npos) << g.error().to_string();
  EXPECT_FALSE(e->stats()[gone].active);
  EXPECT_TRUE(e->checkpoint().is_ok()) << "the active ones";
  // Enough for the others' checkpoints to release the segments the sealed one replays from.
  while (sent.load() < 4000) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto all = e->export_all();
  ASSERT_TRUE(all) << all.error().to_string();
  for (const auto& [k, s] : *all) EXPECT_NE(k, "mine") << "a released partition is not exported";

  ASSERT_TRUE(e->activate(gone).is_ok());
  EXPECT_TRUE(e->active(gone));
  EXPECT_EQ(e->activate(gone).code(), errc::invalid_argument);
  stop.store(true);
  producer.join();
  EXPECT_EQ(failed_others.load(), 0);
  auto mine = e->get("mine");
  ASSERT_TRUE(mine && *mine) << (mine ? "unknown" : mine.error().to_string());
  EXPECT_EQ((*mine)->count, 20u);
  EXPECT_EQ(e->submit(ledger("m3", "mine", 4, 1)).get().kind, outcome::duplicate);
  EXPECT_EQ(e->submit(ledger("m-late", "mine", 21, 1)).get().kind, outcome::applied);
  const auto rec = e->stats()[gone].recovery;
  EXPECT_TRUE(rec.used_checkpoint);
  EXPECT_NE(rec.summary().find("is sealed"), std::string::npos) << rec.summary();
  EXPECT_NE(rec.summary().find("unsealed"), std::string::npos) << rec.summary();
  EXPECT_GT(e->lane_stats()[0].durable_lsn, 4000u);
  auto before = e->export_all();
  ASSERT_TRUE(before);
  ASSERT_TRUE(e->close().is_ok());
  e.reset();

  engine_options r = o;
  r.start_released = true;
  auto e2 = open(r);
  for (uint32_t p = 0; p < e2->partitions(); ++p) EXPECT_FALSE(e2->active(p)) << p;
  EXPECT_EQ(e2->submit(ledger("m-later", "mine", 22, 1)).get().kind, outcome::failed);
  ASSERT_TRUE(e2->export_all()->empty());
  for (uint32_t p = 0; p < e2->partitions(); ++p) ASSERT_TRUE(e2->activate(p).is_ok()) << p;
  auto after = e2->export_all();
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(*after, *before);
  EXPECT_EQ(e2->activate(e2->partitions()).code(), errc::invalid_argument);
}

// A release writes its seal once: the close that seals may be reached twice in one actor turn,
// and a second seal would rewrite the file while the releasing thread goes on (torture caught
// an activation meeting its sealed.tmp). With everything checkpointed before, the release's
// only rename is the seal's.
TEST_F(engine_test, AReleaseWritesItsSealExactlyOnce) {
  fault_file_system ffs(posix_file_system());
  engine_options o = options_on(ffs);
  auto e = open(o);
  ASSERT_EQ(e->submit(ledger("a", "k", 1, 1)).get().kind, outcome::applied);
  ASSERT_TRUE(e->checkpoint().is_ok());
  const uint32_t p = e->router().partition_of("k");
  const uint64_t renames = ffs.ops(fs_op::rename);
  ASSERT_TRUE(e->release(p).is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(ffs.ops(fs_op::rename), renames + 1);
  ASSERT_TRUE(e->activate(p).is_ok());
  auto s = e->get("k");
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->count, 1u);
}

// A checkpoint of 60 k entities is built in several steps on the actor and written in several
// slices by the flusher, while events keep being acknowledged; checkpoint() answers only once
// a checkpoint that began after the call is durable, and a reopen starts from it.
TEST_F(engine_test, LargeCheckpointIsBuiltAndWrittenInStepsWhileEventsAreAcknowledged) {
  engine_options o = options();
  o.partitions = 1;
  o.checkpoint_on_close = false;
  std::vector<std::pair<std::string, ledger_state>> before;
  uint64_t lsn_at_request = 0;
  {
    auto e = open(o);
    auto submit_range = [&](int from, int to) {
      for (int i = from; i < to; i += 500) {
        std::vector<ledger_event> batch;
        for (int j = i; j < std::min(to, i + 500); ++j)
          batch.push_back(ledger("e" + std::to_string(j), "k" + std::to_string(j % 60000), j / 60000 + 1, 7));
        ASSERT_TRUE(e->submit_batch(std::move(batch), [](std::vector<submit_result>&) {}).is_ok());
      }
    };
    submit_range(0, 60000);
    lsn_at_request = e->stats()[0].core.next_lsn - 1;  // submit_batch applies in order: >= this
    std::thread more([&] { submit_range(60000, 120000); });
    ASSERT_TRUE(e->checkpoint().is_ok());
    more.join();
    auto all = e->export_all();
    ASSERT_TRUE(all) << all.error().to_string();
    before = std::move(all).value();
    const auto st = e->stats()[0];
    EXPECT_GE(st.core.checkpoints_written, 1u);
    EXPECT_GE(st.core.last_checkpoint_lsn, lsn_at_request);
    ASSERT_TRUE(e->close().is_ok());
  }
  auto e = open(o);
  const auto st = e->stats()[0];
  EXPECT_TRUE(st.recovery.used_checkpoint);
  EXPECT_GE(st.recovery.checkpoint_lsn, lsn_at_request);
  auto after = e->export_all();
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(*after, before);
}

TEST_F(engine_test, DuplicatesAreAnsweredDuplicateBeforeAndAfterARestart) {
  {
    auto e = open(options());
    ASSERT_EQ(e->submit(ledger("once", "k", 1, 5)).get().kind, outcome::applied);
    EXPECT_EQ(e->submit(ledger("once", "k", 1, 5)).get().kind, outcome::duplicate);
  }  // the destructor closes
  auto e = open(options());
  EXPECT_EQ(e->submit(ledger("once", "k", 1, 5)).get().kind, outcome::duplicate);
  EXPECT_EQ(e->get("k").value()->count, 1u);
}

TEST_F(engine_test, AcknowledgedEventsSurviveAPowerLossWhileOthersAreInFlight) {
  for (int round = 0; round < 5; ++round) {
    std::filesystem::remove_all(options().dir);
    fault_file_system ffs(posix_file_system());
    auto o = options();
    o.fs = &ffs;
    std::mutex mu;
    std::vector<std::string> acked;
    {
      auto e = open(o);
      // Three producers keep batches in flight without waiting for their answers.
      std::atomic<bool> stop{false};
      std::vector<std::thread> producers;
      for (int t = 0; t < 3; ++t)
        producers.emplace_back([&, t] {
          for (int seq = 1; !stop && seq <= 400; ++seq) {
            std::vector<ledger_event> batch;
            std::vector<std::string> ids;
            for (int k = 0; k < 8; ++k) {
              const std::string key = "t" + std::to_string(t) + "-k" + std::to_string(k);
              ids.push_back(key + "-" + std::to_string(seq));
              batch.push_back(ledger(ids.back(), key, seq, seq));
            }
            ignore(e->submit_batch(std::move(batch), [&, ids](std::vector<submit_result>& rs) {
              std::lock_guard lock(mu);
              for (std::size_t i = 0; i < rs.size(); ++i)
                if (rs[i].kind == outcome::applied) acked.push_back(ids[i]);
            }));
          }
        });
      // Crash once some events are acknowledged, while more are being applied and synced.
      for (;;) {
        {
          std::lock_guard lock(mu);
          if (acked.size() >= 200u * (round + 1)) break;
        }
        std::this_thread::yield();
      }
      ffs.crash_at(1);
      stop = true;
      for (auto& p : producers) p.join();
    }
    std::vector<std::string> acked_at_crash;
    {
      std::lock_guard lock(mu);
      acked_at_crash = acked;
    }
    ASSERT_TRUE(ffs.power_loss({/*torn=*/true, static_cast<uint64_t>(round)}).is_ok());
    auto e = open(options());  // the real file system, after the "reboot"
    auto all = e->export_all();
    ASSERT_TRUE(all) << all.error().to_string();
    std::map<std::string, ledger_state> by_key(all->begin(), all->end());
    for (const auto& id : acked_at_crash) {
      const std::string key = id.substr(0, id.rfind('-'));
      const uint64_t seq = std::stoull(id.substr(id.rfind('-') + 1));
      ASSERT_GE(by_key[key].last_seq, seq) << "round " << round << ": acknowledged event lost: " << id;
    }
    for (const auto& [key, s] : by_key) {
      EXPECT_EQ(s.gaps, 0u) << key;
      EXPECT_EQ(s.repeats, 0u) << key;
    }
  }
}

// key_of[p] is a key that partition p owns.
std::vector<std::string> one_key_per_partition(const ledger_engine& e) {
  std::vector<std::string> key_of(e.partitions());
  for (int i = 0; std::any_of(key_of.begin(), key_of.end(), [](auto& k) { return k.empty(); }); ++i) {
    std::string k = "key" + std::to_string(i);
    auto p = e.router().partition_of(k);
    if (key_of[p].empty()) key_of[p] = k;
  }
  return key_of;
}

TEST_F(engine_test, EioInOnePartitionRestartsItWhileTheOthersKeepAcknowledging) {
  fault_file_system ffs(posix_file_system());
  auto e = open(lane_per_partition_on(ffs));
  const auto key_of = one_key_per_partition(*e);
  ASSERT_EQ(e->submit(ledger("a1", key_of[1], 1, 1)).get().kind, outcome::applied);
  ffs.fail_on("L-0001/", fs_op::sync, 1, errc::io_error);
  auto failed = e->submit(ledger("a2", key_of[1], 2, 1)).get();
  EXPECT_EQ(failed.kind, outcome::failed);
  EXPECT_NE(failed.reason.find("io_error"), std::string::npos) << failed.reason;
  EXPECT_NE(failed.reason.find("lanes/L-0001/log/00000000000000000001.seg:"), std::string::npos) << failed.reason;
  // The others never noticed.
  EXPECT_EQ(e->submit(ledger("b1", key_of[0], 1, 1)).get().kind, outcome::applied);
  EXPECT_EQ(e->submit(ledger("c1", key_of[2], 1, 1)).get().kind, outcome::applied);
  // Partition 1 comes back, recovered from disk: a1 is there; a2 may or may not be (it was
  // never acknowledged), and resubmitting it is safe.
  submit_result again;
  for (int i = 0; i < 200; ++i) {
    again = e->submit(ledger("a2", key_of[1], 2, 1)).get();
    if (again.kind != outcome::failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(again.kind == outcome::applied || again.kind == outcome::duplicate) << again.reason;
  auto s = e->get(key_of[1]);
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->count, 2u);
  EXPECT_EQ(e->stats()[1].restarts, 1u);
  EXPECT_TRUE(e->close().is_ok());
}

// One lane for three partitions: its failure is every partition's. Each is restarted over the
// lane reopened from disk, the idle ones too (they would otherwise fail only at their next
// event), and nothing acknowledged before is lost.
TEST_F(engine_test, EioInASharedLaneRestartsEveryPartitionOnItAndLosesNothingAcknowledged) {
  fault_file_system ffs(posix_file_system());
  auto o = options_on(ffs);
  o.lanes = 1;
  auto e = open(o);
  const auto key_of = one_key_per_partition(*e);
  for (uint32_t p = 0; p < 3; ++p)
    ASSERT_EQ(e->submit(ledger("a" + std::to_string(p), key_of[p], 1, 1)).get().kind, outcome::applied);
  ffs.fail_on("L-0000/", fs_op::sync, 1, errc::io_error);
  auto failed = e->submit(ledger("b1", key_of[1], 2, 1)).get();
  EXPECT_EQ(failed.kind, outcome::failed);
  EXPECT_NE(failed.reason.find("lanes/L-0000/log/"), std::string::npos) << failed.reason;
  // Every partition comes back (restarts counted), with its acknowledged event.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (uint32_t p = 0; p < 3; ++p) {
    while (e->stats()[p].restarts == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(e->stats()[p].restarts, 1u) << "partition " << p;
    auto s = e->get(key_of[p]);
    ASSERT_TRUE(s && *s) << "partition " << p;
    EXPECT_GE((*s)->count, 1u);
  }
  submit_result again;
  for (int i = 0; i < 200; ++i) {
    again = e->submit(ledger("b1", key_of[1], 2, 1)).get();
    if (again.kind != outcome::failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(again.kind == outcome::applied || again.kind == outcome::duplicate) << again.reason;
  EXPECT_EQ(e->submit(ledger("c0", key_of[0], 2, 1)).get().kind, outcome::applied);
  EXPECT_EQ(e->submit(ledger("c2", key_of[2], 2, 1)).get().kind, outcome::applied);
  EXPECT_TRUE(e->close().is_ok());
}

// A lane reopened after a failure has heard from no partition; a released (sealed) partition
// never speaks again until activated. The engine speaks for it, or the reopened lane would be
// pinned from its start for as long as the partition stays released.
TEST_F(engine_test, AReleasedPartitionDoesNotPinItsLaneOnceTheLaneIsReopenedAfterAFailure) {
  fault_file_system ffs(posix_file_system());
  auto o = options_on(ffs);
  o.lanes = 1;
  o.log.segment_bytes = 64 << 10;
  o.log.max_record_bytes = 4 << 10;
  o.checkpoint_every_events = 300;
  auto e = open(o);
  const auto key_of = one_key_per_partition(*e);
  for (uint32_t p = 0; p < 3; ++p)
    ASSERT_EQ(e->submit(ledger("a" + std::to_string(p), key_of[p], 1, 1)).get().kind, outcome::applied);
  ASSERT_TRUE(e->release(2).is_ok());
  ffs.fail_on("L-0000/", fs_op::sync, 1, errc::io_error);
  EXPECT_EQ(e->submit(ledger("b0", key_of[0], 2, 1)).get().kind, outcome::failed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (uint32_t p = 0; p < 2; ++p)
    while (e->stats()[p].restarts == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(e->active(2)) << "a released partition is not restarted";
  // About 35 segments of events for partitions 0 and 1, checkpointing every 300.
  for (int i = 0; i < 30000; i += 500) {
    std::vector<ledger_event> batch;
    for (int j = i; j < i + 500; ++j) batch.push_back(ledger("c" + std::to_string(j), key_of[j % 2], 3 + j / 2, 1));
    std::promise<void> done;
    ASSERT_TRUE(e->submit_batch(std::move(batch), [&](std::vector<submit_result>&) { done.set_value(); }).is_ok());
    done.get_future().wait();
  }
  EXPECT_LE(e->lane_stats()[0].segments, 6u) << "the released partition pins the reopened lane";
  ASSERT_TRUE(e->activate(2).is_ok());
  auto s = e->get(key_of[2]);
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->count, 1u);
  EXPECT_TRUE(e->close().is_ok());
}

// One applied event per partition; then partition 1's log fails, and so does every attempt to
// recover it (listing its directory fails): it stays down until `ffs` is cleared.
void take_partition_1_down(ledger_engine& e, fault_file_system& ffs, std::vector<std::string>& key_of) {
  key_of = one_key_per_partition(e);
  for (uint32_t p = 0; p < key_of.size(); ++p)
    ASSERT_EQ(e.submit(ledger("a" + std::to_string(p), key_of[p], 1, 1)).get().kind, outcome::applied);
  ffs.fail_on("p-0001/", fs_op::list, 1, errc::io_error, /*persistent=*/true);  // its checkpoints
  ffs.fail_on("L-0001/", fs_op::sync, 1, errc::io_error);
  ASSERT_EQ(e.submit(ledger("b1", key_of[1], 2, 1)).get().kind, outcome::failed);
}

TEST_F(engine_test, ExportAllFailsNamingAPartitionThatStaysDownInsteadOfExportingTheRest) {
  fault_file_system ffs(posix_file_system());
  auto e = open(lane_per_partition_on(ffs));
  std::vector<std::string> key_of;
  ASSERT_NO_FATAL_FAILURE(take_partition_1_down(*e, ffs, key_of));

  const auto t0 = std::chrono::steady_clock::now();
  auto all = e->export_all(std::chrono::milliseconds(1000));
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(all) << "a partial export of " << all->size() << " entities";
  EXPECT_EQ(all.error().code(), errc::failed);
  const std::string why = all.error().message();
  EXPECT_NE(why.find("partition 1 is restarting"), std::string::npos) << why;
  EXPECT_NE(why.find("recovery from disk failed"), std::string::npos) << why;
  EXPECT_NE(why.find("io_error"), std::string::npos) << why;
  EXPECT_NE(why.find("not back within 1000 ms"), std::string::npos) << why;
  EXPECT_EQ(why.find("partition 0"), std::string::npos) << why;
  EXPECT_EQ(why.find("partition 2"), std::string::npos) << why;
  EXPECT_GE(waited, std::chrono::milliseconds(1000)) << "it gave up without waiting for the restart";
  // The other partitions are unaffected.
  EXPECT_EQ(e->submit(ledger("c0", key_of[0], 2, 1)).get().kind, outcome::applied);
}

TEST_F(engine_test, ExportAllWaitsForARestartingPartitionAndReturnsEverything) {
  fault_file_system ffs(posix_file_system());
  auto e = open(lane_per_partition_on(ffs));
  std::vector<std::string> key_of;
  ASSERT_NO_FATAL_FAILURE(take_partition_1_down(*e, ffs, key_of));
  // While its recovery keeps failing, partition 1 is down for sure, and its backoff grows.
  ASSERT_FALSE(e->export_all(std::chrono::milliseconds(200)));
  EXPECT_EQ(e->stats()[1].restarts, 0u);

  // The disk recovers; the supervisor's next attempt brings the partition back, and the
  // export waits for it instead of leaving it out.
  ffs.clear_faults();
  auto all = e->export_all();
  ASSERT_TRUE(all) << all.error().to_string();
  std::map<std::string, ledger_state> by_key(all->begin(), all->end());
  EXPECT_EQ(by_key.size(), key_of.size());
  for (const auto& k : key_of) EXPECT_EQ(by_key.count(k), 1u) << k;
  EXPECT_GE(by_key[key_of[1]].count, 1u);  // a1 was acknowledged; b1 may or may not be there
  EXPECT_EQ(e->stats()[1].restarts, 1u);
  EXPECT_TRUE(e->close().is_ok());
}

// get() on a down partition must not answer "unknown key" (it did, before: a nullopt).
TEST_F(engine_test, GetOnAPartitionThatStaysDownFailsNamingItThenWaitsForItsRestart) {
  fault_file_system ffs(posix_file_system());
  auto e = open(lane_per_partition_on(ffs));
  std::vector<std::string> key_of;
  ASSERT_NO_FATAL_FAILURE(take_partition_1_down(*e, ffs, key_of));

  const auto t0 = std::chrono::steady_clock::now();
  auto down = e->get(key_of[1], std::chrono::milliseconds(500));
  ASSERT_FALSE(down) << "a down partition answered " << (*down ? "a state" : "unknown key");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_EQ(down.error().code(), errc::failed);
  const std::string why = down.error().message();
  EXPECT_NE(why.find("partition 1 is restarting"), std::string::npos) << why;
  EXPECT_NE(why.find("not back within 500 ms"), std::string::npos) << why;
  auto up = e->get(key_of[0], std::chrono::milliseconds(0));  // other partitions answer
  ASSERT_TRUE(up) << up.error().to_string();
  EXPECT_TRUE(*up);

  ffs.clear_faults();  // the disk recovers: the next get waits for the restart
  auto back = e->get(key_of[1]);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(*back);
  EXPECT_GE((*back)->count, 1u);  // a1 was acknowledged
  EXPECT_TRUE(e->close().is_ok());
  EXPECT_FALSE(e->get(key_of[0]));  // closed
}

TEST_F(engine_test, AThrowingHandlerIsRejectedAndItsPartitionKeepsItsState) {
  auto e = open(options());
  std::vector<ledger_event> batch = {ledger("x1", "k", 1, 5), ledger("boom", "k", 2, -999),
                                     ledger("x2", "k", 2, 7)};
  std::promise<std::vector<submit_result>> pr;
  ASSERT_TRUE(e->submit_batch(std::move(batch), [&](std::vector<submit_result>& rs) { pr.set_value(rs); }).is_ok());
  auto rs = pr.get_future().get();
  EXPECT_EQ(rs[0].kind, outcome::applied);
  EXPECT_EQ(rs[1].kind, outcome::rejected);
  EXPECT_NE(rs[1].reason.find("refused by the handler"), std::string::npos);
  EXPECT_EQ(rs[2].kind, outcome::applied);
  auto s = e->get("k");
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->sum, 12);  // the handler's half-change before throwing is gone
  EXPECT_EQ((*s)->count, 2u);
  EXPECT_EQ(e->stats()[rs[0].partition].core.rebuilds, 1u);
}

TEST_F(engine_test, BackpressureRejectBoundsEventsInFlight) {
  auto o = options();
  o.max_in_flight = 256;
  o.when_full = backpressure::reject;
  auto e = open(o);
  std::atomic<uint64_t> busy{0}, applied{0};
  for (int b = 0; b < 200; ++b) {
    std::vector<ledger_event> batch;
    for (int i = 0; i < 100; ++i) {
      const int n = b * 100 + i;
      batch.push_back(ledger("f" + std::to_string(n), "k" + std::to_string(n % 50), 0, 1));
    }
    ASSERT_TRUE(e->submit_batch(std::move(batch), [&](std::vector<submit_result>& rs) {
      for (auto& r : rs) (r.kind == outcome::busy ? busy : applied)++;
    }).is_ok());
    for (const auto& st : e->stats()) EXPECT_LE(st.in_flight, 256u + 100u);
  }
  ASSERT_TRUE(e->close().is_ok());
  EXPECT_EQ(busy + applied, 20000u);
  EXPECT_GT(applied.load(), 0u);
}

TEST_F(engine_test, BackpressureWaitBlocksTheProducerInsteadOfGrowingMemory) {
  auto o = options();
  o.max_in_flight = 128;
  auto e = open(o);
  std::atomic<int64_t> peak{0};
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop) {
      for (const auto& st : e->stats()) peak = std::max<int64_t>(peak, static_cast<int64_t>(st.in_flight));
    }
  });
  std::atomic<uint64_t> answered{0};
  for (int n = 0; n < 5000; ++n)
    ASSERT_TRUE(e->submit(ledger("w" + std::to_string(n), "k" + std::to_string(n % 10), 0, 1),
                          [&](const submit_result&) { ++answered; }).is_ok());
  stop = true;
  watcher.join();
  ASSERT_TRUE(e->close().is_ok());
  EXPECT_EQ(answered.load(), 5000u);
  EXPECT_LE(peak.load(), 128);
}

TEST_F(engine_test, ASecondEngineOnTheSameDirectoryIsRefused) {
  auto e = open(options());
  auto second = ledger_engine::open(options());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), errc::locked);
}

// -- sources: positions, fences, resume ------------------------------------------------------

submit_result submit_at(ledger_engine& e, uint64_t pos, ledger_event ev) {
  event_meta m;
  m.source = source_position{"feed", pos};
  return e.submit(std::move(ev), std::move(m)).get();
}

// A partition fails on position 2 of a source; once it is back, position 3 of the same source
// must not be applied before 2 (or 2 would later count as consumed: lost, and the key's order
// broken). The consumer rewinds to 2, which lifts the fence.
TEST_F(engine_test, AfterAFailureLaterPositionsOfTheSourceWaitForTheConsumerToRewind) {
  fault_file_system ffs(posix_file_system());
  auto e = open(lane_per_partition_on(ffs));
  const auto key_of = one_key_per_partition(*e);
  ASSERT_EQ(submit_at(*e, 1, ledger("k1", key_of[1], 1, 1)).kind, outcome::applied);
  ffs.fail_on("L-0001/", fs_op::write, 1, errc::no_space);
  const auto lost = submit_at(*e, 2, ledger("k2", key_of[1], 2, 1));
  ASSERT_EQ(lost.kind, outcome::failed) << lost.reason;
  ASSERT_TRUE(e->get(key_of[1])) << "partition 1 is back";
  const auto later = submit_at(*e, 3, ledger("k3", key_of[1], 3, 1));
  EXPECT_EQ(later.kind, outcome::failed);
  EXPECT_NE(later.reason.find("refuses position 3 of source 'feed': its event at position 2 was not applied"),
            std::string::npos)
      << later.reason;
  // Other partitions are not fenced, and neither is another source.
  EXPECT_EQ(submit_at(*e, 4, ledger("k4", key_of[0], 1, 1)).kind, outcome::applied);
  std::string neighbour;  // another key of partition 1
  for (int i = 0; neighbour.empty(); ++i)
    if (auto k = "n" + std::to_string(i); e->router().partition_of(k) == 1) neighbour = k;
  event_meta other;
  other.source = source_position{"other", 9};
  EXPECT_EQ(e->submit(ledger("o1", neighbour, 1, 1), other).get().kind, outcome::applied);
  // A marker past the fence is not taken either: it would turn position 2 into "consumed".
  ASSERT_TRUE(e->mark_consumed("feed", {5, 0, 0}).is_ok());
  // The consumer rewinds to where the source is durable in every partition.
  auto from = e->resume_point("feed");
  ASSERT_TRUE(from) << from.error().to_string();
  EXPECT_LE(from->next, 2u);
  EXPECT_EQ(submit_at(*e, 2, ledger("k2", key_of[1], 2, 1)).kind, outcome::applied);
  EXPECT_EQ(submit_at(*e, 3, ledger("k3", key_of[1], 3, 1)).kind, outcome::applied);
  EXPECT_EQ(submit_at(*e, 4, ledger("k4", key_of[0], 1, 1)).kind, outcome::duplicate);
  auto s = e->get(key_of[1]);
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->count, 3u);
  EXPECT_EQ((*s)->gaps, 0u) << "applied in order: 1, 2, 3";
  EXPECT_EQ((*s)->repeats, 0u);
  ASSERT_TRUE(e->close().is_ok());
}

TEST_F(engine_test, AnEventAnsweredBusyFencesItsSourceLikeAFailure) {
  detail::source_fences fences;
  std::vector<event_meta> metas(3);
  for (uint64_t i = 0; i < 3; ++i) metas[i].source = source_position{"feed", 10 + i};
  auto c = std::make_shared<detail::batch_completion>();
  c->results.resize(3);
  c->results[0].kind = outcome::applied;
  c->results[1].kind = outcome::busy;
  c->results[2].kind = outcome::busy;
  c->metas = &metas;
  c->fences = &fences;
  c->finish();
  EXPECT_EQ(fences.fence_of("feed"), 11u);
  EXPECT_EQ(fences.admit("feed", 12), 11u) << "refused";
  EXPECT_FALSE(fences.admit("feed", 11)) << "the rewind lifts it";
  EXPECT_FALSE(fences.admit("feed", 12));
  EXPECT_TRUE(fences.empty());
}

TEST_F(engine_test, ResumePointIsTheLowestDurablePositionOverAllPartitions) {
  auto e = open(options());
  const auto key_of = one_key_per_partition(*e);
  ASSERT_EQ(submit_at(*e, 10, ledger("a", key_of[0], 1, 1)).kind, outcome::applied);
  ASSERT_EQ(submit_at(*e, 20, ledger("b", key_of[1], 1, 1)).kind, outcome::applied);
  auto none = e->resume_point("feed");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->next, 0u) << "partition 2 has consumed nothing of it yet";
  ASSERT_TRUE(e->mark_consumed("feed", {25, 25, 0xf00d}).is_ok());
  ASSERT_TRUE(e->checkpoint().is_ok());  // makes the markers durable
  auto all = e->resume_point("feed");
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, (source_progress{25, 25, 0xf00d}));
  ASSERT_TRUE(e->close().is_ok());
  auto again = open(options());
  EXPECT_EQ(*again->resume_point("feed"), (source_progress{25, 25, 0xf00d}));
  EXPECT_EQ(submit_at(*again, 24, ledger("c", key_of[2], 1, 1)).kind, outcome::duplicate);
  EXPECT_EQ(submit_at(*again, 25, ledger("c", key_of[2], 1, 1)).kind, outcome::applied);
}

// A caller that holds its own lock while it submits must not meet its callback on its own
// thread (it would deadlock on that lock): every answer arrives on a CAF worker, busy ones
// and an empty batch's included. A single submit that would be busy says so in its return.
TEST_F(engine_test, CallbacksNeverRunOnTheSubmittingThreadAndSubmitReturnsBusy) {
  auto o = options();
  o.max_in_flight = 4;
  o.when_full = backpressure::reject;
  auto e = open(o);
  const auto me = std::this_thread::get_id();
  std::mutex caller_lock;
  std::atomic<int> on_my_thread{0}, answers{0};
  auto note = [&] {
    if (std::this_thread::get_id() == me) ++on_my_thread;
    std::lock_guard lock(caller_lock);  // deadlocks if run inline while the caller holds it
    ++answers;
  };
  std::atomic<uint64_t> busy_answers{0};
  int busy_returns = 0, submits = 0;
  {
    std::lock_guard held(caller_lock);
    ASSERT_TRUE(e->submit_batch({}, [&](std::vector<submit_result>&) { note(); }).is_ok());
    for (int b = 0; b < 50; ++b) {
      std::vector<ledger_event> batch;
      for (int i = 0; i < 40; ++i) batch.push_back(ledger("b" + std::to_string(b * 40 + i), "k", 0, 1));
      ASSERT_TRUE(e->submit_batch(std::move(batch), [&](std::vector<submit_result>& rs) {
        for (auto& r : rs) busy_answers += r.kind == outcome::busy;
        note();
      }).is_ok());
      status st = e->submit(ledger("s" + std::to_string(b), "k", 0, 1), [&](const submit_result& r) {
        EXPECT_NE(r.kind, outcome::busy) << "busy is the return value's, never the callback's";
        note();
      });
      ++submits;
      if (!st.is_ok()) {
        EXPECT_EQ(st.code(), errc::busy) << st.to_string();
        ++busy_returns;
      }
    }
  }
  ASSERT_TRUE(e->close().is_ok());
  EXPECT_EQ(on_my_thread.load(), 0);
  EXPECT_EQ(answers.load(), 1 + 50 + submits - busy_returns);
  EXPECT_GT(busy_answers.load() + busy_returns, 0u) << "the test never met backpressure";
}

// A reader beside a running engine (data_reader, as another process would read): small
// segments roll and are recycled, checkpoints come and go under it; every read succeeds and
// sees, per key, a prefix of the events in order (no gap, no repeat), never fewer than before.
TEST_F(engine_test, AReaderBesideTheWriterSeesGrowingPrefixesAndNeverFails) {
  auto o = options();
  o.log.segment_bytes = 64 << 10;  // rolls every few hundred events
  o.log.max_record_bytes = 4 << 10;
  o.checkpoint_every_events = 500;  // checkpoints (and segment releases) all the time
  auto e = open(o);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    run_producers(*e, 2, 20, 150, 16);
    done = true;
  });
  std::map<std::string, uint64_t> seen;
  int reads = 0;
  while (!done.load() || reads < 3) {
    auto r = data_reader<ledger_model>::open(posix_file_system(), o.dir);
    ASSERT_TRUE(r) << r.error().to_string();
    auto st = r->for_each_partition([&](uint32_t, auto& part) {
      for (const auto& [k, s] : part) {
        EXPECT_EQ(s.gaps, 0u) << k;
        EXPECT_EQ(s.repeats, 0u) << k;
        EXPECT_EQ(s.count, s.last_seq) << k;
        EXPECT_GE(s.count, seen[k]) << k << " went back";
        seen[k] = s.count;
      }
      return status::ok();
    });
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ++reads;
  }
  writer.join();
  ASSERT_TRUE(e->close().is_ok());
  auto r = data_reader<ledger_model>::open(posix_file_system(), o.dir);
  ASSERT_TRUE(r);
  for (int t = 0; t < 2; ++t)
    for (int k = 0; k < 20; ++k) {
      auto s = r->get("t" + std::to_string(t) + "-k" + std::to_string(k));
      ASSERT_TRUE(s && *s) << "t" << t << "-k" << k;
      EXPECT_EQ((*s)->count, 150u);
    }
  EXPECT_GT(reads, 3);
}

}  // namespace
}  // namespace statefold
