// partition_state: outcomes, durability, recovery equivalence, dedup across restarts,
// checkpoint fallback, a throwing handler, and power loss.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <random>

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
using testing::ledger_state;
using testing::temp_dir;
using partition = partition_state<ledger_model>;

using testing::snapshot;

// The state `feed(0, n)` must produce, computed without statefold: the oracle.
std::map<std::string, ledger_state> fold_of_prefix(int n) {
  std::map<std::string, ledger_state> out;
  for (int i = 0; i < n; ++i)
    ledger_model::apply(out["k" + std::to_string(i % 17)],
                        ledger("e" + std::to_string(i), "k" + std::to_string(i % 17), i / 17 + 1, i));
  return out;
}

class partition_state_test : public ::testing::Test {
 protected:
  partition_options options() {
    partition_options o;
    o.dir = t_ / "p-0000";
    o.partition = 0;
    o.dedup_window = 1000;
    o.log.segment_bytes = 8192;
    o.log.max_record_bytes = 1024;
    return o;
  }
  std::unique_ptr<partition> open(file_system& fs, partition_options o) {
    auto p = partition::open(fs, std::move(o));
    EXPECT_TRUE(p) << p.error().to_string();
    return p ? std::move(p).value() : nullptr;
  }
  std::unique_ptr<partition> open() { return open(posix_file_system(), options()); }

  // Event i of a deterministic workload over 17 keys, per-key sequence numbers from 1.
  void feed(partition& p, int from, int to) {
    for (int i = from; i < to; ++i) {
      auto r = p.apply(ledger("e" + std::to_string(i), "k" + std::to_string(i % 17), i / 17 + 1, i));
      ASSERT_EQ(r.kind, outcome::applied) << r.reason;
    }
  }

  temp_dir t_;
};

TEST_F(partition_state_test, AppliesAndReportsDurabilityOnlyAfterSync) {
  auto p = open();
  auto r = p->apply(ledger("e1", "k", 1, 10));
  ASSERT_EQ(r.kind, outcome::applied);
  EXPECT_EQ(r.lsn, 1u);
  EXPECT_LT(p->durable_lsn(), r.lsn);
  auto d = p->sync();
  ASSERT_TRUE(d);
  EXPECT_GE(*d, r.lsn);
  EXPECT_EQ(p->find("k")->sum, 10);
  EXPECT_EQ(p->find("nope"), nullptr);
}

TEST_F(partition_state_test, DuplicatesAreAnsweredAndNotLoggedBeforeAndAfterRestart) {
  {
    auto p = open();
    ASSERT_EQ(p->apply(ledger("e1", "k", 1, 10)).kind, outcome::applied);
    EXPECT_EQ(p->apply(ledger("e1", "k", 1, 10)).kind, outcome::duplicate);
    ASSERT_TRUE(p->sync());
    EXPECT_EQ(p->next_lsn(), 2u);
  }
  {
    auto p = open();  // dedup window rebuilt by replay
    EXPECT_EQ(p->apply(ledger("e1", "k", 1, 10)).kind, outcome::duplicate);
    ASSERT_TRUE(p->checkpoint().is_ok());
  }
  auto p = open();  // dedup window restored from the checkpoint
  EXPECT_EQ(p->apply(ledger("e1", "k", 1, 10)).kind, outcome::duplicate);
  EXPECT_EQ(p->find("k")->count, 1u);
  EXPECT_EQ(p->stats().duplicates, 1u);
}

// Every identity in the window is kept with its key's key group (format 3), so that a rescale
// can split the window by key group: on the apply path, and rebuilt by replay and from a
// checkpoint.
TEST_F(partition_state_test, DedupEntriesCarryTheKeyGroupOfTheirKeyThroughCheckpointAndReplay) {
  auto o = options();
  o.key_groups = 64;
  const partitioner route(1, 64);
  std::map<std::pair<uint64_t, uint64_t>, std::string> key_of;  // identity -> key
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i % 17);
    const event_digest d = identity_of(key, "e" + std::to_string(i));
    key_of[{d.hi, d.lo}] = key;
  }
  auto check_newest = [&](std::size_t expect_entries) {
    auto store = checkpoint_store::open_read_only(posix_file_system(), o.dir + "/ckpt", 0);
    auto list = store.list();
    ASSERT_TRUE(list && !list->empty());
    auto c = store.load(list->front());
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_EQ(c->dedup.size(), expect_entries);
    std::set<uint32_t> groups;
    for (const auto& e : c->dedup) {
      auto it = key_of.find({e.id.hi, e.id.lo});
      ASSERT_NE(it, key_of.end());
      EXPECT_EQ(key_group_of_tag(e.tag), route.key_group_of(it->second)) << it->second;
      groups.insert(key_group_of_tag(e.tag));
    }
    EXPECT_GT(groups.size(), 5u);  // 17 keys over 64 groups: not all in one
  };
  {
    auto p = open(posix_file_system(), o);
    feed(*p, 0, 100);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 100, 200);
    ASSERT_TRUE(p->sync());
  }
  check_newest(100);  // the apply path
  {
    auto p = open(posix_file_system(), o);  // 100 from the checkpoint, 100 by replay
    ASSERT_TRUE(p->checkpoint().is_ok());
    // The tags still tell a redelivery from a conflict.
    EXPECT_EQ(p->apply(ledger("e150", "k" + std::to_string(150 % 17), 150 / 17 + 1, 150)).kind,
              outcome::duplicate);
    EXPECT_EQ(p->apply(ledger("e150", "k" + std::to_string(150 % 17), 150 / 17 + 1, 151)).kind,
              outcome::conflict);
  }
  check_newest(200);
}

// Every record names its partition (format 3) and recovery checks it: a partition other than 0
// writes records that name it, across segment rolls, and reopens from them.
TEST_F(partition_state_test, APartitionOtherThanZeroRecoversFromRecordsThatNameIt) {
  auto o = options();
  o.partition = 5;
  o.dir = t_ / "p-0005";
  {
    auto p = open(posix_file_system(), o);
    feed(*p, 0, 300);  // several 8 KiB segments
    ASSERT_TRUE(p->sync());
  }
  EXPECT_GT(testing::files_in(o.dir + "/log").size(), 2u);
  log_scan_options scan;
  scan.partition = 5;
  std::set<uint32_t> named;
  auto s = scan_log(posix_file_system(), o.dir + "/log", scan,
                    [&](const log_record& r) { named.insert(r.partition); return status::ok(); });
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(named, std::set<uint32_t>{5});
  auto p = open(posix_file_system(), o);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->next_lsn(), 301u);
  for (const auto& [key, want] : fold_of_prefix(300)) {
    ASSERT_NE(p->find(key), nullptr) << key;
    EXPECT_EQ(*p->find(key), want) << key;
  }
}

TEST_F(partition_state_test, BeyondTheWindowAnOldIdIsAppliedAgainAsDocumented) {
  auto o = options();
  o.dedup_window = 4;
  auto p = open(posix_file_system(), o);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(p->apply(ledger("e" + std::to_string(i), "k", i + 1, 1)).kind, outcome::applied);
  EXPECT_EQ(p->apply(ledger("e5", "k", 6, 1)).kind, outcome::duplicate);
  EXPECT_EQ(p->apply(ledger("e0", "k", 1, 1)).kind, outcome::applied);
  EXPECT_EQ(p->stats().dedup_evictions, 3u);
}

TEST_F(partition_state_test, SourcePositionsBelowWhatWasConsumedAreDuplicates) {
  auto p = open();
  event_meta m;
  m.source = source_position{"bookings/0", 10};
  ASSERT_EQ(p->apply(ledger("a", "k", 1, 1), m).kind, outcome::applied);
  m.source->offset = 10;
  EXPECT_EQ(p->apply(ledger("b", "k", 2, 1), m).kind, outcome::duplicate);
  m.source->offset = 11;
  EXPECT_EQ(p->apply(ledger("c", "k", 2, 1), m).kind, outcome::applied);
  ASSERT_TRUE(p->sync());
  p.reset();
  p = open();
  EXPECT_EQ(p->sources().at("bookings/0").next, 12u);  // every position below 12 is consumed
  m.source->offset = 11;
  EXPECT_EQ(p->apply(ledger("d", "k", 3, 1), m).kind, outcome::duplicate);
}

TEST_F(partition_state_test, TheSameEventIdOnAnotherKeyIsAnotherEvent) {
  auto p = open();
  EXPECT_EQ(p->apply(ledger("e1", "k1", 1, 5)).kind, outcome::applied);
  EXPECT_EQ(p->apply(ledger("e1", "k2", 1, 7)).kind, outcome::applied);
  EXPECT_EQ(p->apply(ledger("e1", "k1", 1, 5)).kind, outcome::duplicate);
  EXPECT_EQ(p->find("k1")->sum, 5);
  EXPECT_EQ(p->find("k2")->sum, 7);
}

TEST_F(partition_state_test, AnIdentityWithAnotherBodyIsAConflictBeforeAndAfterRestart) {
  {
    auto p = open();
    ASSERT_EQ(p->apply(ledger("e1", "k", 1, 5)).kind, outcome::applied);
    auto r = p->apply(ledger("e1", "k", 1, 6));  // same key and ID, another amount
    EXPECT_EQ(r.kind, outcome::conflict);
    EXPECT_NE(r.reason.find("different body"), std::string::npos) << r.reason;
    EXPECT_EQ(p->find("k")->sum, 5);
    EXPECT_EQ(p->stats().conflicts, 1u);
    ASSERT_TRUE(p->sync());
  }
  auto replayed = open();  // the window rebuilt by replay keeps the body digests
  EXPECT_EQ(replayed->apply(ledger("e1", "k", 1, 6)).kind, outcome::conflict);
  EXPECT_EQ(replayed->apply(ledger("e1", "k", 1, 5)).kind, outcome::duplicate);
  ASSERT_TRUE(replayed->checkpoint().is_ok());
  replayed.reset();
  auto from_checkpoint = open();  // and so does a checkpoint
  EXPECT_TRUE(from_checkpoint->recovery().used_checkpoint);
  EXPECT_EQ(from_checkpoint->apply(ledger("e1", "k", 1, 6)).kind, outcome::conflict);
  EXPECT_EQ(from_checkpoint->apply(ledger("e1", "k", 1, 5)).kind, outcome::duplicate);
}

TEST_F(partition_state_test, AConsumersMarkerIsLoggedOnlyWhenNewsAndSurvivesRestarts) {
  {
    auto p = open();
    event_meta m;
    m.source = source_position{"in.jsonl", 100};
    ASSERT_EQ(p->apply(ledger("a", "k", 1, 1), m).kind, outcome::applied);
    auto none = p->mark_consumed("in.jsonl", {50, 0, 0});  // behind the event: no news
    ASSERT_TRUE(none);
    EXPECT_EQ(*none, 0u);
    auto lsn = p->mark_consumed("in.jsonl", {500, 500, 0x1234});
    ASSERT_TRUE(lsn);
    EXPECT_EQ(*lsn, 2u);
    EXPECT_EQ(p->committed_sources().count("in.jsonl"), 0u) << "not durable yet";
    ASSERT_TRUE(p->sync());
    EXPECT_EQ(p->committed_sources().at("in.jsonl"), (source_progress{500, 500, 0x1234}));
    // A source this partition never saw an event of is still marked.
    ASSERT_TRUE(p->mark_consumed("other", {7, 7, 9}));
    ASSERT_TRUE(p->sync());
  }
  auto p = open();  // replayed from the log
  EXPECT_EQ(p->sources().at("in.jsonl"), (source_progress{500, 500, 0x1234}));
  EXPECT_EQ(p->sources().at("other"), (source_progress{7, 7, 9}));
  event_meta m;
  m.source = source_position{"in.jsonl", 499};
  EXPECT_EQ(p->apply(ledger("b", "k", 2, 1), m).kind, outcome::duplicate);
  ASSERT_TRUE(p->checkpoint().is_ok());
  p.reset();
  p = open();  // from the checkpoint
  EXPECT_EQ(p->sources().at("in.jsonl"), (source_progress{500, 500, 0x1234}));
  EXPECT_EQ(p->committed_sources().at("other"), (source_progress{7, 7, 9}));
}

TEST_F(partition_state_test, MalformedAndOversizedEventsAreRejectedAndNeverLogged) {
  auto p = open();
  EXPECT_EQ(p->apply(ledger("e1", "", 1, 1)).kind, outcome::rejected);
  EXPECT_EQ(p->apply(ledger("", "k", 1, 1)).kind, outcome::rejected);
  auto big = p->apply(ledger("e2", std::string(2000, 'k'), 1, 1));
  EXPECT_EQ(big.kind, outcome::rejected);
  EXPECT_NE(big.reason.find("exceeds max_record_bytes"), std::string::npos);
  EXPECT_EQ(p->next_lsn(), 1u);
  EXPECT_EQ(p->stats().rejected, 3u);
}

TEST_F(partition_state_test, CheckpointPlusTailEqualsFullReplay) {
  std::map<std::string, ledger_state> live;
  {
    auto p = open();
    feed(*p, 0, 300);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 300, 500);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 500, 777);  // tail after the last checkpoint
    ASSERT_TRUE(p->sync());
    live = snapshot(*p);
  }
  auto p = open();
  EXPECT_TRUE(p->recovery().used_checkpoint);
  EXPECT_EQ(p->recovery().checkpoint_lsn, 500u);
  EXPECT_EQ(p->recovery().events_replayed, 277u);
  EXPECT_EQ(snapshot(*p), live);
  for (const auto& [k, s] : live) {
    EXPECT_EQ(s.gaps, 0u);
    EXPECT_EQ(s.repeats, 0u);
  }
  // Full replay of the same log gives the same state (only possible while the log starts at 1:
  // the small segments above roll, so keep every segment by copying the log before releases).
}

TEST_F(partition_state_test, FullReplayWithoutCheckpointsEqualsLiveState) {
  std::map<std::string, ledger_state> live;
  {
    auto o = options();
    o.log.segment_bytes = 1 << 20;
    auto p = open(posix_file_system(), o);
    feed(*p, 0, 500);
    ASSERT_TRUE(p->checkpoint().is_ok());  // one checkpoint: no segment is released yet
    feed(*p, 500, 600);
    ASSERT_TRUE(p->sync());
    live = snapshot(*p);
  }
  auto o = options();
  o.log.segment_bytes = 1 << 20;
  std::filesystem::remove_all(o.dir + "/ckpt");
  auto p = open(posix_file_system(), o);
  EXPECT_FALSE(p->recovery().used_checkpoint);
  EXPECT_EQ(p->recovery().events_replayed, 600u);
  EXPECT_EQ(snapshot(*p), live);
}

TEST_F(partition_state_test, DamagedNewestCheckpointFallsBackToTheOlderOne) {
  std::map<std::string, ledger_state> live;
  {
    auto p = open();
    feed(*p, 0, 200);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 200, 400);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 400, 450);
    ASSERT_TRUE(p->sync());
    live = snapshot(*p);
  }
  testing::flip_bit(options().dir + "/ckpt/00000000000000000400.ckpt", 60);
  auto p = open();
  EXPECT_EQ(p->recovery().checkpoint_lsn, 200u);
  ASSERT_FALSE(p->recovery().notes.empty());
  EXPECT_NE(p->recovery().summary().find("checkpoint 400 skipped"), std::string::npos)
      << p->recovery().summary();
  EXPECT_EQ(snapshot(*p), live);
}

TEST_F(partition_state_test, NoUsableCheckpointAndATruncatedLogRefusesToStart) {
  {
    auto p = open();
    for (int round = 0; round < 4; ++round) {
      feed(*p, round * 200, round * 200 + 200);
      ASSERT_TRUE(p->checkpoint().is_ok());
    }
  }
  // The log no longer starts at 1 (segments were released); destroy both checkpoints.
  for (const auto& n : testing::files_in(options().dir + "/ckpt"))
    testing::flip_bit(options().dir + "/ckpt/" + n, 50);
  auto p = partition::open(posix_file_system(), options());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), errc::corruption);
  EXPECT_NE(p.error().message().find("cannot be rebuilt"), std::string::npos) << p.error().message();
}

TEST_F(partition_state_test, ThrowingHandlerIsRejectedAndTheStateIsRebuilt) {
  auto p = open();
  ASSERT_EQ(p->apply(ledger("e1", "k", 1, 5)).kind, outcome::applied);
  auto r = p->apply(ledger("bad", "k", 2, -999));  // the handler changes sum, then throws
  EXPECT_EQ(r.kind, outcome::rejected);
  EXPECT_NE(r.reason.find("refused by the handler"), std::string::npos);
  EXPECT_EQ(p->find("k")->sum, 5);  // the half-applied change is gone
  EXPECT_EQ(p->stats().rebuilds, 1u);
  ASSERT_EQ(p->apply(ledger("e2", "k", 2, 7)).kind, outcome::applied);
  ASSERT_TRUE(p->sync());
  p.reset();
  p = open();
  EXPECT_EQ(p->find("k")->sum, 12);
  EXPECT_EQ(p->find("k")->count, 2u);
}

TEST_F(partition_state_test, PowerLossLosesNothingThatWasReportedDurable) {
  fault_file_system ffs(posix_file_system());
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::filesystem::remove_all(options().dir);
    std::map<std::string, ledger_state> at_sync;
    uint64_t durable = 0;
    {
      auto p = open(ffs, options());
      ASSERT_TRUE(ffs.sync_dir(t_.path()).is_ok());
      feed(*p, 0, 150);
      ASSERT_TRUE(p->checkpoint().is_ok());
      feed(*p, 150, 260);
      auto d = p->sync();
      ASSERT_TRUE(d);
      durable = *d;
      at_sync = snapshot(*p);
      feed(*p, 260, 300);  // applied and written, but the fdatasync never completes
      ffs.fail(fs_op::sync, 1, errc::crashed, /*persistent=*/true);
      EXPECT_FALSE(p->sync());
    }
    ASSERT_TRUE(ffs.power_loss({/*torn=*/seed % 2 == 1, seed}).is_ok());
    auto p = open(ffs, options());
    ASSERT_NE(p, nullptr) << "seed " << seed;
    // Everything acknowledged is there; an unacknowledged prefix may have survived too.
    const uint64_t recovered = p->next_lsn() - 1;
    EXPECT_GE(recovered, durable) << "seed " << seed;
    EXPECT_LE(recovered, 300u) << "seed " << seed;
    EXPECT_EQ(snapshot(*p), fold_of_prefix(static_cast<int>(recovered))) << "seed " << seed;
    if (seed % 2 == 0) {
      EXPECT_EQ(snapshot(*p), at_sync) << "seed " << seed;  // nothing torn was kept
    }
  }
}

TEST_F(partition_state_test, EioOnFdatasyncFailsThePartitionUntilReopened) {
  fault_file_system ffs(posix_file_system());
  auto p = open(ffs, options());
  feed(*p, 0, 10);
  ASSERT_TRUE(p->sync());
  feed(*p, 10, 20);
  ffs.fail(fs_op::sync, 1, errc::io_error);
  EXPECT_FALSE(p->sync());
  EXPECT_EQ(p->failure().code(), errc::io_error);
  auto r = p->apply(ledger("later", "k1", 99, 1));
  EXPECT_EQ(r.kind, outcome::failed);
  EXPECT_EQ(p->durable_lsn(), 10u);
  p.reset();
  ASSERT_TRUE(ffs.power_loss().is_ok());
  p = open(ffs, options());
  EXPECT_EQ(p->next_lsn(), 11u);  // nothing acknowledged lost, nothing unacknowledged kept
}

TEST_F(partition_state_test, EnospcWritingACheckpointKeepsTheOldOneAndTheLog) {
  fault_file_system ffs(posix_file_system());
  auto p = open(ffs, options());
  feed(*p, 0, 200);
  ASSERT_TRUE(p->checkpoint().is_ok());
  feed(*p, 200, 400);
  const auto segments_before = testing::files_in(options().dir + "/log");
  ASSERT_TRUE(p->sync());
  ffs.fail(fs_op::write, 1, errc::no_space);
  status st = p->checkpoint();
  EXPECT_EQ(st.code(), errc::no_space);
  EXPECT_TRUE(p->failure().is_ok());  // processing goes on
  feed(*p, 400, 410);
  ASSERT_TRUE(p->sync());
  auto live = snapshot(*p);
  p.reset();
  p = open(ffs, options());
  EXPECT_EQ(p->recovery().checkpoint_lsn, 200u);
  EXPECT_EQ(snapshot(*p), live);
}

TEST_F(partition_state_test, MissingLogWithACheckpointRefusesUnlessPointInTime) {
  std::map<std::string, ledger_state> at_checkpoint;
  {
    auto p = open();
    feed(*p, 0, 100);
    ASSERT_TRUE(p->checkpoint().is_ok());
    at_checkpoint = snapshot(*p);
  }
  std::filesystem::remove_all(options().dir + "/log");
  auto refused = partition::open(posix_file_system(), options());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::corruption);
  EXPECT_NE(refused.error().message().find("no segments but checkpoint 100"), std::string::npos)
      << refused.error().message();
  auto o = options();
  o.mode = recovery_mode::point_in_time;
  auto p = open(posix_file_system(), o);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->next_lsn(), 101u);
  EXPECT_EQ(snapshot(*p), at_checkpoint);
}

TEST_F(partition_state_test, PointInTimeCutBelowACheckpointDropsThatCheckpoint) {
  {
    auto p = open();
    feed(*p, 0, 100);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 100, 400);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 400, 420);
    ASSERT_TRUE(p->sync());
  }
  // Damage the log between the two checkpoints: a cut there must not keep checkpoint 400.
  std::string target;  // a segment whose first record lies between the two checkpoints
  for (const auto& n : testing::files_in(options().dir + "/log")) {
    uint64_t base;
    if (log_format::parse_segment_name(n, base) && base > 100 && base < 400) target = n;
  }
  ASSERT_FALSE(target.empty());
  testing::flip_bit(options().dir + "/log/" + target, log_format::segment_header_size + 25);
  auto o = options();
  o.mode = recovery_mode::point_in_time;
  auto p = open(posix_file_system(), o);
  ASSERT_NE(p, nullptr);
  const uint64_t recovered = p->next_lsn() - 1;
  EXPECT_LT(recovered, 400u);
  EXPECT_EQ(p->recovery().checkpoint_lsn, 100u);
  EXPECT_EQ(snapshot(*p), fold_of_prefix(static_cast<int>(recovered)));
  auto kept = testing::files_in(options().dir + "/ckpt");
  EXPECT_EQ(kept, std::vector<std::string>{"00000000000000000100.ckpt"});
}

TEST_F(partition_state_test, FailedRebuildFailsThePartitionInsteadOfRunningOnAResetState) {
  fault_file_system ffs(posix_file_system());
  {
    auto p = open(ffs, options());
    feed(*p, 0, 20);
    ASSERT_TRUE(p->sync());
    ffs.fail(fs_op::read, 1, errc::io_error);  // the rebuild's first read fails
    auto r = p->apply(ledger("bad", "k0", 2, -999));
    EXPECT_EQ(r.kind, outcome::failed) << r.reason;
    EXPECT_EQ(p->failure().code(), errc::io_error);
    EXPECT_EQ(p->apply(ledger("next", "k0", 2, 1)).kind, outcome::failed);
    EXPECT_FALSE(p->checkpoint().is_ok());  // never checkpoint an untrusted state
    EXPECT_FALSE(p->sync());
  }
  auto p = open(ffs, options());
  EXPECT_EQ(snapshot(*p), fold_of_prefix(20));
}

TEST_F(partition_state_test, DamagedRecordThatAVerifiedCheckpointCoversFailsClosed) {
  {
    auto p = open();
    feed(*p, 0, 10);
    ASSERT_TRUE(p->checkpoint().is_ok());
    feed(*p, 10, 30);
    ASSERT_TRUE(p->checkpoint().is_ok());  // proves LSN 30 durable
  }
  // Damage the last record (LSN 30): on its own it would look like a torn tail.
  const std::string seg = options().dir + "/log/" + testing::files_in(options().dir + "/log").back();
  auto s = scan_log(posix_file_system(), options().dir + "/log", {}, nullptr);
  ASSERT_TRUE(s);
  testing::flip_bit(seg, s->segments.back().valid_bytes - 3);
  auto refused = partition::open(posix_file_system(), options());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::corruption);
  EXPECT_NE(refused.error().message().find("covers up to LSN 30"), std::string::npos)
      << refused.error().message();
  // The operator's explicit choice: fall back to checkpoint 10, drop checkpoint 30, and never
  // meet it again once the log has grown past LSN 30.
  auto o = options();
  o.mode = recovery_mode::point_in_time;
  {
    auto p = open(posix_file_system(), o);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->recovery().checkpoint_lsn, 10u);
    EXPECT_EQ(p->next_lsn(), 30u);
    EXPECT_EQ(snapshot(*p), fold_of_prefix(29));
    for (int i = 29; i < 40; ++i)
      ASSERT_EQ(p->apply(ledger("e" + std::to_string(i), "k" + std::to_string(i % 17), i / 17 + 1, i)).kind,
                outcome::applied);
    ASSERT_TRUE(p->sync());
  }
  auto p = open();
  EXPECT_EQ(snapshot(*p), fold_of_prefix(40));
}

TEST_F(partition_state_test, ReadErrorOnACheckpointIsAnErrorNotAFallback) {
  fault_file_system ffs(posix_file_system());
  {
    auto p = open(ffs, options());
    feed(*p, 0, 50);
    ASSERT_TRUE(p->checkpoint().is_ok());
  }
  ffs.fail(fs_op::read, 1, errc::io_error);
  auto p = partition::open(ffs, options());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), errc::io_error);
}

TEST_F(partition_state_test, DedupEvictionCountSurvivesACheckpointedRestart) {
  auto o = options();
  o.dedup_window = 8;
  {
    auto p = open(posix_file_system(), o);
    feed(*p, 0, 20);
    ASSERT_TRUE(p->checkpoint().is_ok());
    EXPECT_EQ(p->stats().dedup_evictions, 12u);
  }
  auto p = open(posix_file_system(), o);
  EXPECT_EQ(p->stats().dedup_evictions, 12u);
}

// -- incremental checkpoints -------------------------------------------------------------------

class incremental_checkpoint_test : public partition_state_test {
 protected:
  // The next event for `key`: a fresh ID, the key's next sequence number.
  ledger_event event_for(const std::string& key) {
    ++next_;
    return ledger("e" + std::to_string(next_), key, ++seq_[key], next_);
  }
  void apply(partition& p, const std::string& key) {
    auto r = p.apply(event_for(key));
    ASSERT_EQ(r.kind, outcome::applied) << r.reason;
  }
  // Builds the checkpoint `budget` entities at a time, applying `per_step` events in between
  // (old keys and new ones, chosen by `pick`).
  template <class Pick>
  checkpoint_job build_while_applying(partition& p, std::size_t budget, int per_step, Pick pick) {
    for (int step = 0; step < 100000; ++step) {
      for (int i = 0; i < per_step; ++i) apply(p, pick());
      auto r = p.continue_checkpoint(budget);
      EXPECT_TRUE(r) << r.error().to_string();
      if (!r) break;
      if (*r) return std::move(**r);
    }
    ADD_FAILURE() << "the checkpoint never completed";
    return {};
  }
  static std::map<std::string, ledger_state> entities_of(const checkpoint_job& job) {
    std::map<std::string, ledger_state> out;
    auto c = decode_checkpoint(job.image, "test image", 0);
    EXPECT_TRUE(c) << c.error().to_string();
    if (!c) return out;
    EXPECT_EQ(c->lsn, job.lsn);
    for (const auto& [k, v] : c->entities) EXPECT_TRUE(ledger_model::decode_state(v, out[std::string(k)]));
    return out;
  }

  std::map<std::string, uint64_t> seq_;
  int next_ = 0;
  std::mt19937 rng_{5};
};

TEST_F(incremental_checkpoint_test, ImageIsTheStateAtItsLsnWhileEventsChangeAndCreateEntities) {
  partition_options o = options();
  o.log.segment_bytes = 1 << 20;
  o.expected_entities = 4096;  // no growth of the map during the checkpoint
  auto p = open(posix_file_system(), o);
  for (int k = 0; k < 500; ++k) apply(*p, "k" + std::to_string(k));
  const auto at_begin = snapshot(*p);
  const uint64_t lsn = p->next_lsn() - 1;
  ASSERT_TRUE(p->begin_checkpoint());
  EXPECT_TRUE(p->checkpoint_in_progress());
  EXPECT_FALSE(p->begin_checkpoint()) << "one at a time";
  checkpoint_job job = build_while_applying(*p, 7, 5, [&] {
    return rng_() % 3 ? "k" + std::to_string(rng_() % 500) : "new" + std::to_string(rng_() % 300);
  });
  EXPECT_FALSE(p->checkpoint_in_progress());
  EXPECT_EQ(job.lsn, lsn);
  EXPECT_EQ(entities_of(job), at_begin);

  // Written, it recovers with the log's tail to the state the partition has now.
  ASSERT_TRUE(p->sync());
  ASSERT_TRUE(p->write_checkpoint(job).is_ok());
  p->checkpoint_done(job.lsn);
  const auto now = snapshot(*p);
  p.reset();
  auto q = open(posix_file_system(), o);
  EXPECT_TRUE(q->recovery().used_checkpoint);
  EXPECT_EQ(q->recovery().checkpoint_lsn, lsn);
  EXPECT_EQ(snapshot(*q), now);
}

TEST_F(incremental_checkpoint_test, MapGrowingDuringTheCheckpointCapturesTheRestFirst) {
  partition_options o = options();
  o.log.segment_bytes = 1 << 20;
  o.expected_entities = 0;  // the map grows by doubling, and will while the checkpoint runs
  auto p = open(posix_file_system(), o);
  for (int k = 0; k < 40; ++k) apply(*p, "k" + std::to_string(k));
  const auto at_begin = snapshot(*p);
  ASSERT_TRUE(p->begin_checkpoint());
  int fresh = 0;
  checkpoint_job job = build_while_applying(*p, 1, 20, [&] {
    return rng_() % 4 ? "new" + std::to_string(fresh++) : "k" + std::to_string(rng_() % 40);
  });
  // 40 entries sit in a table of 63 slots that grows past 55: the checkpoint, one entity per
  // step, was still open when the map grew (which is when it captures the rest at once).
  EXPECT_GE(fresh, 16) << "the map must have grown while the checkpoint was open";
  EXPECT_EQ(entities_of(job), at_begin);
}

TEST_F(incremental_checkpoint_test, RebuildAfterAThrowingHandlerAbandonsTheCheckpoint) {
  auto p = open();
  feed(*p, 0, 100);
  ASSERT_TRUE(p->begin_checkpoint());
  // A throwing handler reloads the state from disk (inline), which drops the open checkpoint.
  auto r = p->apply(ledger("boom", "k1", 999, -999));  // the handler throws on -999
  EXPECT_EQ(r.kind, outcome::rejected);
  EXPECT_FALSE(p->checkpoint_in_progress());
  auto c = p->continue_checkpoint(SIZE_MAX);
  ASSERT_TRUE(c);
  EXPECT_FALSE(*c);
  EXPECT_TRUE(p->begin_checkpoint());  // and a new one can start
}

// -- the envelope reaches decode and apply -------------------------------------------------------

// A model whose apply reads the key, the event ID and the source position from the event
// context, and whose encoding carries none of them: replay must rebuild the same state.
struct envelope_reading_model {
  struct state {
    std::string seen;  // "key/id@source:offset;" per event
    friend bool operator==(const state&, const state&) = default;
  };
  struct event {
    std::string id, key;
  };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static effect apply(state& s, const event& e, const event_context& c) {
    s.seen += std::string(c.key) + "/" + std::string(c.event_id) + "@" + std::string(c.source) +
              ":" + std::to_string(c.source_offset) + ";";
    if (e.key != c.key || e.id != c.event_id) throw std::runtime_error("decode lost the envelope");
    return {};
  }
  static void encode_event(const event&, std::string&) {}
  static bool decode_event(std::string_view in, const event_context& c, event& e) {
    e.id = c.event_id;
    e.key = c.key;
    return in.empty();
  }
  static void encode_state(const state& s, std::string& out) { put_bytes(out, s.seen); }
  static bool decode_state(std::string_view in, state& s) {
    byte_reader r(in);
    std::string_view v;
    if (!r.bytes(v) || !r.empty()) return false;
    s.seen = v;
    return true;
  }
};

TEST_F(partition_state_test, ReplayGivesDecodeAndApplyTheLoggedEnvelope) {
  using p2 = partition_state<envelope_reading_model>;
  std::map<std::string, envelope_reading_model::state> live;
  {
    auto p = p2::open(posix_file_system(), options());
    ASSERT_TRUE(p) << p.error().to_string();
    for (int i = 0; i < 50; ++i) {
      event_meta m;
      m.source = source_position{"in.jsonl", static_cast<uint64_t>(100 + i)};
      auto r = (*p)->apply({"e" + std::to_string(i), "k" + std::to_string(i % 3)}, m);
      ASSERT_EQ(r.kind, outcome::applied) << r.reason;
    }
    ASSERT_TRUE((*p)->sync());
    (*p)->for_each([&](std::string_view k, const auto& s) { live[std::string(k)] = s; });
  }
  auto p = p2::open(posix_file_system(), options());
  ASSERT_TRUE(p) << p.error().to_string();
  std::map<std::string, envelope_reading_model::state> replayed;
  (*p)->for_each([&](std::string_view k, const auto& s) { replayed[std::string(k)] = s; });
  EXPECT_EQ(replayed, live);
  ASSERT_EQ(live.size(), 3u);
  EXPECT_NE(live["k1"].seen.find("k1/e1@in.jsonl:101;"), std::string::npos);
}

}  // namespace
}  // namespace statefold
