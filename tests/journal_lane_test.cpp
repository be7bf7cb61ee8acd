// journal_lane: partitions sharing one journal. Recovery of each partition from the shared
// lane (its checkpoint's position, its own sequence, gaps caught), group commit from several
// threads, and segment release that waits for every partition of the lane.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "statefold/journal_lane.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/recovery.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::ledger;
using testing::ledger_model;
using testing::ledger_state;
using testing::temp_dir;
using partition = partition_state<ledger_model>;

class journal_lane_test : public ::testing::Test {
 protected:
  static constexpr uint32_t partitions = 3;

  std::string lane_log() const { return t_ / "lanes/L-0000/log"; }

  journal_lane::options lane_options() const {
    journal_lane::options o;
    o.membership = {0, 1, partitions};
    o.log.segment_bytes = 4096;
    o.log.max_record_bytes = 1024;
    o.max_bytes = max_bytes_;
    return o;
  }

  partition_options options_of(uint32_t p, std::shared_ptr<journal_lane> lane) const {
    partition_options o;
    o.dir = t_ / partition_dir_name(p);
    o.partition = p;
    o.dedup_window = 1000;
    o.lane = std::move(lane);
    o.log.max_record_bytes = 1024;
    return o;
  }

  // Opens the lane (scan + repair), then every partition on it, each recovering alone.
  void open_all() {
    parts_.clear();
    lane_.reset();
    auto lane = journal_lane::open(posix_file_system(), lane_log(), lane_options());
    ASSERT_TRUE(lane) << lane.error().to_string();
    lane_ = *lane;
    for (uint32_t p = 0; p < partitions; ++p) {
      auto ps = partition::open(posix_file_system(), options_of(p, lane_));
      ASSERT_TRUE(ps) << ps.error().to_string();
      parts_.push_back(std::move(ps).value());
    }
  }

  // engine::open's way: every partition prepared (in prepared_), then recovered together by
  // one read of the lane per thread (recover_lane).
  result<lane_recovery_result> recover_together(unsigned threads) {
    parts_.clear();
    lane_.reset();
    prepared_.clear();
    std::vector<partition_recovery> rec;
    for (uint32_t p = 0; p < partitions; ++p) {
      SF_ASSIGN_OR_RETURN(auto ps, partition::prepare(posix_file_system(), options_of(p, nullptr)));
      rec.push_back(ps->recovery_part());
      prepared_.push_back(std::move(ps));
    }
    lane_recovery_options ro;
    ro.lane = lane_options().membership;
    ro.threads = threads;
    return recover_lane(posix_file_system(), lane_log(), ro, rec);
  }

  // recover_together, then the lane opens from that read and the partitions start on it. The
  // report of each is in reports_.
  void open_together(unsigned threads) {
    reports_.clear();
    auto r = recover_together(threads);
    ASSERT_TRUE(r) << r.error().to_string();
    lane_bytes_read_ = r->scan.bytes_read;
    auto lane = journal_lane::open_scanned(posix_file_system(), lane_log(), lane_options(), r->scan);
    ASSERT_TRUE(lane) << lane.error().to_string();
    lane_ = *lane;
    for (uint32_t p = 0; p < partitions; ++p) {
      reports_.push_back(r->reports[p]);
      ASSERT_TRUE(prepared_[p]->finish_open(lane_, r->reports[p]).is_ok());
      parts_.push_back(std::move(prepared_[p]));
    }
  }

  // Event i of a workload over 7 keys; key k goes to partition k % 3 (whatever the hash says:
  // these partitions are opened directly, not routed).
  static std::pair<uint32_t, testing::ledger_event> event(int i) {
    const int k = i % 7;
    return {static_cast<uint32_t>(k % partitions),
            ledger("e" + std::to_string(i), "k" + std::to_string(k), i / 7 + 1, i)};
  }
  void feed(int from, int to, std::map<std::string, ledger_state>* oracle = nullptr) {
    for (int i = from; i < to; ++i) {
      auto [p, e] = event(i);
      auto r = parts_[p]->apply(e);
      ASSERT_EQ(r.kind, outcome::applied) << r.reason;
      if (oracle) ledger_model::apply((*oracle)[e.key], e);
    }
  }
  // The same with partition `skip` left out: it gets none of the workload's events.
  void feed_all_but(uint32_t skip, int from, int to, std::map<std::string, ledger_state>* oracle = nullptr) {
    for (int i = from; i < to; ++i) {
      auto [p, e] = event(i);
      if (p == skip) continue;
      auto r = parts_[p]->apply(e);
      ASSERT_EQ(r.kind, outcome::applied) << r.reason;
      if (oracle) ledger_model::apply((*oracle)[e.key], e);
    }
  }
  void sync_all() {
    for (auto& p : parts_) ASSERT_TRUE(p->sync());
  }
  std::map<std::string, ledger_state> states() const {
    std::map<std::string, ledger_state> out;
    for (const auto& p : parts_) p->for_each([&](std::string_view k, const ledger_state& s) { out[std::string(k)] = s; });
    return out;
  }

  temp_dir t_;
  std::vector<std::unique_ptr<partition>> prepared_;  // recover_together's
  std::vector<recovery_report> reports_;  // open_together's
  uint64_t lane_bytes_read_ = 0;          // likewise
  uint64_t max_bytes_ = 0;  // journal_lane::options::max_bytes
  std::shared_ptr<journal_lane> lane_;
  std::vector<std::unique_ptr<partition>> parts_;
};

TEST_F(journal_lane_test, PartitionsInterleavedInOneLaneRecoverTheirOwnStateWithAndWithoutCheckpoints) {
  std::map<std::string, ledger_state> oracle;
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 200, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  // Partition sequences are their own: 1, 2, 3 ... each; the lane numbers all of them.
  uint64_t total = 0;
  for (const auto& p : parts_) total += p->next_lsn() - 1;
  EXPECT_EQ(total, 200u);
  EXPECT_EQ(lane_->durable_lsn(), 200u);
  ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  ASSERT_NO_FATAL_FAILURE(feed(200, 300, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  const auto before = states();
  EXPECT_EQ(before, oracle);
  std::vector<uint64_t> next;
  for (const auto& p : parts_) next.push_back(p->next_lsn());

  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), oracle);
  for (uint32_t p = 0; p < partitions; ++p) EXPECT_EQ(parts_[p]->next_lsn(), next[p]) << p;
  EXPECT_TRUE(parts_[1]->recovery().used_checkpoint);
  EXPECT_FALSE(parts_[0]->recovery().used_checkpoint);
  // Partition 1 replayed only what followed its checkpoint, whatever the others wrote.
  EXPECT_LT(parts_[1]->recovery().events_replayed, 60u);
  // Duplicates across the restart, in every partition.
  for (int i = 0; i < 300; i += 37) {
    auto [p, e] = event(i);
    EXPECT_EQ(parts_[p]->apply(e).kind, outcome::duplicate) << i;
  }
}

// engine::open's way: the partitions recovered together, by one thread (one read of the lane)
// and by two (each reading it for its share). The result is the one each partition's own
// recovery gives.
TEST_F(journal_lane_test, ALaneReadOnceForAllItsPartitionsRecoversWhatEachWouldAlone) {
  std::map<std::string, ledger_state> oracle;
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 3000, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  ASSERT_NO_FATAL_FAILURE(feed(3000, 4000, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  std::vector<uint64_t> next;
  for (const auto& p : parts_) next.push_back(p->next_lsn());
  const uint64_t lane_end = lane_->durable_lsn();

  for (unsigned threads : {1u, 2u}) {
    SCOPED_TRACE(threads);
    ASSERT_NO_FATAL_FAILURE(open_together(threads));
    EXPECT_EQ(states(), oracle);
    for (uint32_t p = 0; p < partitions; ++p) EXPECT_EQ(parts_[p]->next_lsn(), next[p]) << p;
    EXPECT_EQ(lane_->durable_lsn(), lane_end);
    EXPECT_TRUE(reports_[1].used_checkpoint);
    EXPECT_FALSE(reports_[0].used_checkpoint);
    EXPECT_EQ(reports_[0].events_replayed + reports_[2].events_replayed + reports_[1].events_replayed +
                  reports_[1].checkpoint_lsn,
              4000u);
    // One read: every report names the same bytes, those of the lane's segments once.
    uint64_t on_disk = 0;
    for (const auto& f : testing::files_in(lane_log())) on_disk += std::filesystem::file_size(lane_log() + "/" + f);
    EXPECT_LE(lane_bytes_read_, on_disk);
    for (const auto& r : reports_) EXPECT_EQ(r.bytes_read, lane_bytes_read_);
    // Duplicates across the restart, in every partition (within its window of 1000).
    for (int i = 3200; i < 4000; i += 37) {
      auto [p, e] = event(i);
      EXPECT_EQ(parts_[p]->apply(e).kind, outcome::duplicate) << i;
    }
  }
  ASSERT_NO_FATAL_FAILURE(feed(4000, 4100, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), oracle);
}

// A replay error in one partition (here: its handler refuses a record) stops the lane's whole
// recovery, on whichever thread it happens, and the error is the one reported.
TEST_F(journal_lane_test, AReplayErrorInOnePartitionStopsTheLanesRecoveryWithThatError) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 3000));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  parts_.clear();
  lane_.reset();
  for (unsigned threads : {1u, 2u}) {
    std::vector<checkpoint_store> stores;
    for (uint32_t p = 0; p < partitions; ++p)
      stores.push_back(checkpoint_store::open_read_only(posix_file_system(), t_ / (partition_dir_name(p) + "/ckpt"), p));
    std::vector<partition_recovery> rec(partitions);
    std::vector<uint64_t> seen(partitions, 0);
    for (uint32_t p = 0; p < partitions; ++p) {
      rec[p].partition = p;
      rec[p].checkpoints = &stores[p];
      rec[p].hooks.reset = [] {};
      rec[p].hooks.load_checkpoint = [](const loaded_checkpoint&) { return status::ok(); };
      rec[p].hooks.replay = [&seen, p](const log_record& r) -> status {
        EXPECT_EQ(r.partition, p);
        EXPECT_EQ(r.pseq, ++seen[p]);  // in order, each once
        if (p == 2 && r.pseq == 500) return {errc::corruption, "partition 2 refuses record 500"};
        return status::ok();
      };
    }
    lane_recovery_options ro;
    ro.lane = lane_options().membership;
    ro.repair = false;
    ro.threads = threads;
    auto r = recover_lane(posix_file_system(), lane_log(), ro, rec);
    ASSERT_FALSE(r) << threads;
    EXPECT_EQ(r.error().message(), "partition 2 refuses record 500") << threads;
    EXPECT_EQ(seen[2], 500u) << threads;
  }
}

// A partition whose records in the lane do not start where its state ends is caught by the one
// read, naming the partition and the records missing (here: its checkpoints are gone, and the
// lane has released the segments that held its first records).
TEST_F(journal_lane_test, APartitionWhoseFirstRecordsTheLaneReleasedFailsTheOneRead) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  for (int round = 0; round < 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed(round * 1000, round * 1000 + 1000));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    for (auto& p : parts_) ASSERT_TRUE(p->checkpoint().is_ok());
  }
  // The lane released the segments every partition was past: partition 0's first records.
  ASSERT_GT(*first_segment_lsn(posix_file_system(), lane_log()), 1u);
  parts_.clear();
  lane_.reset();
  std::filesystem::remove_all(t_ / "p-0000/ckpt");
  auto r = recover_together(2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::corruption);
  EXPECT_NE(r.error().message().find("partition 0's record "), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(" where its record 1 was due"), std::string::npos) << r.error().message();
}

TEST_F(journal_lane_test, CommitsFromSeveralThreadsGroupAndEveryRecordLandsOnce) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  constexpr int per_thread = 300;
  std::vector<std::thread> threads;
  for (uint32_t p = 0; p < partitions; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_thread; ++i) {
        const std::string key = "t" + std::to_string(p) + "-" + std::to_string(i % 5);
        auto r = parts_[p]->apply(ledger("e" + std::to_string(i), key, i / 5 + 1, 1));
        ASSERT_EQ(r.kind, outcome::applied);
        if (i % 3 == 2) {
          ASSERT_TRUE(parts_[p]->sync());
        }
      }
      ASSERT_TRUE(parts_[p]->sync());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(lane_->durable_lsn(), uint64_t{partitions} * per_thread);
  // 100 commits per thread at least; a round serves every thread waiting, so there are at most
  // as many rounds as commits (and, on a loaded machine, fewer).
  EXPECT_LE(lane_->rounds(), uint64_t{partitions} * (per_thread / 3 + 1) + 1);
  const auto before = states();
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), before);
  for (uint32_t p = 0; p < partitions; ++p) EXPECT_EQ(parts_[p]->next_lsn(), per_thread + 1u);
}

TEST_F(journal_lane_test, ASegmentIsReleasedOnlyWhenEveryPartitionOfTheLaneIsPastIt) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  auto segments = [&] { return testing::files_in(lane_log()).size(); };
  for (int i = 0; i < 400; i += 10) {  // every partition's records all along the lane
    ASSERT_NO_FATAL_FAILURE(feed(i, i + 10));
    ASSERT_NO_FATAL_FAILURE(sync_all());
  }
  const auto many = segments();
  ASSERT_GE(many, 4u);
  // Partitions 0 and 1 checkpoint twice (segments are released up to the older kept one);
  // partition 2 has none: everything stays.
  for (int round = 0; round < 2; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed(400 + round * 7, 407 + round * 7));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
    ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  }
  EXPECT_GE(segments(), many);
  // Once partition 2 is past them too, they go.
  for (int round = 0; round < 2; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed(420 + round * 7, 427 + round * 7));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    for (auto& p : parts_) ASSERT_TRUE(p->checkpoint().is_ok());
  }
  EXPECT_LT(segments(), many);
  const auto before = states();
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), before);
}

TEST_F(journal_lane_test, APartitionWithoutRecordsNeedsNothingUntilItsFirstCommitPinsTheLane) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  // Only partitions 0 and 1 get events (keys 0, 1 mod 3 of 7 ... filtered here).
  auto feed_01 = [&](int from, int to) { feed_all_but(2, from, to); };
  ASSERT_NO_FATAL_FAILURE(feed_01(0, 300));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  const auto many = testing::files_in(lane_log()).size();
  for (int round = 0; round < 2; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed_01(300 + round * 10, 310 + round * 10));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
    ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  }
  EXPECT_LT(testing::files_in(lane_log()).size(), many) << "partition 2, empty, held nothing back";
  // Partition 2's first records are pinned at once: the others' checkpoints cannot pass them.
  ASSERT_EQ(parts_[2]->apply(ledger("late", "k2", 1, 5)).kind, outcome::applied);
  ASSERT_TRUE(parts_[2]->sync());
  for (int round = 0; round < 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed_01(400 + round * 100, 500 + round * 100));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
    ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  }
  const auto before = states();
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), before);
  ASSERT_NE(parts_[2]->find("k2"), nullptr);
  EXPECT_EQ(parts_[2]->find("k2")->sum, 5);
}

// A checkpoint's position is the lane's durable end when its image was taken, not when it was
// finished: the partition's records applied and made durable while the image was being built
// (after its LSN) must be replayed, not skipped.
TEST_F(journal_lane_test, RecordsMadeDurableWhileACheckpointIsBuiltAreReplayedAfterIt) {
  std::map<std::string, ledger_state> oracle;
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 100, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_TRUE(parts_[0]->begin_checkpoint());
  // Meanwhile: more events, in every partition, made durable.
  ASSERT_NO_FATAL_FAILURE(feed(100, 160, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  auto job = parts_[0]->continue_checkpoint(SIZE_MAX);
  ASSERT_TRUE(job && *job);
  const uint64_t lsn = (*job)->lsn;
  ASSERT_TRUE(parts_[0]->write_checkpoint(std::move(**job)).is_ok());
  parts_[0]->checkpoint_done(lsn);
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_TRUE(parts_[0]->recovery().used_checkpoint);
  EXPECT_EQ(states(), oracle);
}

TEST_F(journal_lane_test, ACheckpointNamingAnotherLaneIsSkippedNotTrusted) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 60));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  const auto before = states();
  parts_.clear();
  lane_.reset();
  // Rewrite partition 1's checkpoint to name lane 5 (CRC resealed: it verifies).
  const std::string ckpt_dir = t_ / "p-0001/ckpt";
  const std::string path = ckpt_dir + "/" + testing::files_in(ckpt_dir).back();
  std::string b = testing::read_bytes(path);
  store_u32(b.data() + checkpoint_format::header_size + 4, 5);
  store_u32(b.data() + b.size() - 4, crc32c::mask(crc32c::value(b.data(), b.size() - 4)));
  testing::write_bytes(path, b);
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_FALSE(parts_[1]->recovery().used_checkpoint);
  bool noted = false;
  for (const auto& n : parts_[1]->recovery().notes)
    noted = noted || n.find("it records a position in journal lane 5, but the partition's lane is 0") != std::string::npos;
  EXPECT_TRUE(noted) << parts_[1]->recovery().summary();
  EXPECT_EQ(states(), before);
}

TEST_F(journal_lane_test, ALaneThatEndsBeforeACheckpointsPositionFailsClosed) {
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 200));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
  parts_.clear();
  lane_.reset();
  // Lose the lane's tail: the last segment goes (as if a directory sync had been lost).
  auto segs = testing::files_in(lane_log());
  ASSERT_GE(segs.size(), 2u);
  std::filesystem::remove(lane_log() + "/" + segs.back());
  auto lane = journal_lane::open(posix_file_system(), lane_log(), lane_options());
  ASSERT_TRUE(lane) << lane.error().to_string();
  partition_options o;
  o.dir = t_ / partition_dir_name(0);
  o.partition = 0;
  o.lane = *lane;
  auto p = partition::open(posix_file_system(), std::move(o));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), errc::corruption);
  EXPECT_NE(p.error().message().find("records the checkpoint proves durable are missing"), std::string::npos)
      << p.error().message();
}

// The lane's size limit: a partition that stopped taking events would otherwise keep every
// segment written after its checkpoint. Over the limit, the lane names the partitions that
// hold its oldest segment; each checkpoints (with a no-op record first, having nothing new),
// twice at most, and the segments go. Nothing changes in any state, before or after a reopen.
TEST_F(journal_lane_test, AnIdlePartitionOverTheLanesLimitCheckpointsWithANoopAndReleasesTheLane) {
  max_bytes_ = 6 * 4096;
  std::map<std::string, ledger_state> oracle;
  ASSERT_NO_FATAL_FAILURE(open_all());
  const auto k2 = ledger("only", "k2", 1, 9);  // partition 2's one event, then nothing
  ASSERT_EQ(parts_[2]->apply(k2).kind, outcome::applied);
  ledger_model::apply(oracle["k2"], k2);
  ASSERT_TRUE(parts_[2]->checkpoint().is_ok());
  EXPECT_FALSE(parts_[2]->begin_checkpoint()) << "nothing new: no checkpoint unless the lane asks";
  auto feed_01 = [&](int from, int to) { feed_all_but(2, from, to, &oracle); };
  for (int round = 0; round < 6; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed_01(round * 200, round * 200 + 200));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
    ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  }
  const auto many = testing::files_in(lane_log()).size();
  ASSERT_GT(lane_->bytes_held(), max_bytes_);
  EXPECT_TRUE(lane_->holds_back(2));
  EXPECT_TRUE(parts_[2]->lane_wants_checkpoint());
  EXPECT_FALSE(lane_->holds_back(0)) << "partitions 0 and 1 checkpointed past the oldest segment";
  EXPECT_FALSE(parts_[1]->lane_wants_checkpoint());

  int rounds = 0;
  while (parts_[2]->lane_wants_checkpoint()) {
    ASSERT_LT(++rounds, 3) << "two checkpoints are enough to pass the oldest segment";
    ASSERT_TRUE(parts_[2]->begin_checkpoint(/*for_lane=*/true));
    auto job = parts_[2]->continue_checkpoint(SIZE_MAX);
    ASSERT_TRUE(job && *job);
    ASSERT_TRUE(parts_[2]->sync());  // the no-op is durable before the checkpoint that covers it
    const uint64_t lsn = (*job)->lsn;
    ASSERT_TRUE(parts_[2]->write_checkpoint(std::move(**job)).is_ok());
    parts_[2]->checkpoint_done(lsn);
  }
  EXPECT_EQ(rounds, 2);
  EXPECT_EQ(parts_[2]->stats().lane_checkpoints, 2u);
  EXPECT_EQ(parts_[2]->next_lsn(), 4u) << "its event and two no-op records";
  EXPECT_LT(testing::files_in(lane_log()).size(), many);
  EXPECT_LE(lane_->bytes_held(), max_bytes_);

  EXPECT_EQ(states(), oracle);
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), oracle);
  EXPECT_EQ(parts_[2]->next_lsn(), 4u);
  EXPECT_TRUE(parts_[2]->recovery().used_checkpoint);
  EXPECT_EQ(parts_[2]->apply(k2).kind, outcome::duplicate) << "no-op records leave the dedup window alone";
}

// A released partition (seal): its lane keeps nothing for it, so the others' checkpoints
// release the segments its sealed checkpoint would replay from; it recovers from that
// checkpoint all the same, takes a new one and is unsealed. Without the seal, the same lane
// is refused: the waiver is the seal's alone.
TEST_F(journal_lane_test, ASealedPartitionLetsTheLaneGoAndRecoversFromItsSealedCheckpoint) {
  std::map<std::string, ledger_state> oracle;
  ASSERT_NO_FATAL_FAILURE(open_all());
  ASSERT_NO_FATAL_FAILURE(feed(0, 100, &oracle));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_TRUE(parts_[2]->seal().is_ok());
  const uint64_t sealed_next = parts_[2]->next_lsn();
  auto feed_01 = [&](int from, int to) { feed_all_but(2, from, to, &oracle); };
  for (int round = 0; round < 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(feed_01(100 + round * 200, 300 + round * 200));
    ASSERT_NO_FATAL_FAILURE(sync_all());
    ASSERT_TRUE(parts_[0]->checkpoint().is_ok());
    ASSERT_TRUE(parts_[1]->checkpoint().is_ok());
  }
  // Partition 2's records (all in the first segments) are gone from the lane.
  const std::string p2_ckpt = t_ / "p-0002/ckpt";
  auto store = checkpoint_store::open_read_only(posix_file_system(), p2_ckpt, 2);
  const auto lsns = *store.list();
  ASSERT_FALSE(lsns.empty());
  const uint64_t position = *store.read_position(lsns.front());
  uint64_t first = UINT64_MAX;
  for (const auto& n : testing::files_in(lane_log())) {
    uint64_t base;
    if (log_format::parse_segment_name(n, base)) first = std::min(first, base);
  }
  ASSERT_GT(first, position) << "the lane released what the sealed checkpoint replays from";
  const std::string seal = testing::read_bytes(p2_ckpt + "/sealed");

  // Without its seal, partition 2 cannot prove nothing of it was lost: refused.
  parts_.clear();
  lane_.reset();
  std::filesystem::remove(p2_ckpt + "/sealed");
  {
    auto lane = journal_lane::open(posix_file_system(), lane_log(), lane_options());
    ASSERT_TRUE(lane);
    auto p = partition::open(posix_file_system(), options_of(2, *lane));
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), errc::corruption) << p.error().to_string();
  }
  // With it: the sealed state, a new checkpoint, no seal.
  testing::write_bytes(p2_ckpt + "/sealed", seal);
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), oracle);
  EXPECT_FALSE(*store.sealed());
  EXPECT_EQ(parts_[2]->next_lsn(), sealed_next + 1) << "one no-op record for its new checkpoint";
  EXPECT_GT(store.list()->front(), lsns.front());
  // And it goes on: more events, a reopen, everything there.
  ASSERT_EQ(parts_[2]->apply(ledger("after", "k2", 99, 4)).kind, outcome::applied);
  ledger_model::apply(oracle["k2"], ledger("after", "k2", 99, 4));
  ASSERT_NO_FATAL_FAILURE(sync_all());
  ASSERT_NO_FATAL_FAILURE(open_all());
  EXPECT_EQ(states(), oracle);
  for (int i = 0; i < 100; i += 13) {
    auto [p, e] = event(i);
    EXPECT_EQ(parts_[p]->apply(e).kind, outcome::duplicate) << i;
  }
}

}  // namespace
}  // namespace statefold
