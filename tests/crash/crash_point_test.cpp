// Crash-point enumeration (RELIABILITY.md): count the mutating I/O operations of a scripted
// workload — appends, syncs, segment creation, roll and recycling, checkpoint write / sync /
// rename / directory sync, pruning and segment release — then crash at every one of them, in
// both flavours:
//   process crash  the kernel keeps what was written (restart_after_crash)
//   power loss     unsynced writes, creations, renames and removals are undone, with a torn
//                  prefix of the unsynced writes kept
// and, at each point, also crash the first recovery at one of its own operations, then
// recover again. The oracle after every cycle:
//   - every acknowledged event (LSN <= a durable LSN that sync() returned) is in the state;
//   - the state equals the fold of a prefix of the events (no holes, nothing twice, nothing
//     foreign), computed independently;
//   - recovering a second time gives the same state (recovery is idempotent).

#include <gtest/gtest.h>

#include <map>

#include "statefold/journal_lane.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::fault_file_system;
using testing::fs_op;

using testing::ledger;
using testing::ledger_model;
using testing::ledger_state;
using testing::temp_dir;
using partition = partition_state<ledger_model>;
using state_map = std::map<std::string, ledger_state>;

constexpr int keys = 5;

testing::ledger_event event_at(int i) {  // event i has LSN i + 1 when everything is applied
  return ledger("e" + std::to_string(i), "k" + std::to_string(i % keys), i / keys + 1, i + 1);
}

state_map fold_of_prefix(uint64_t n) {
  state_map out;
  for (uint64_t i = 0; i < n; ++i) {
    auto e = event_at(static_cast<int>(i));
    ledger_model::apply(out[e.key], e);
  }
  return out;
}

using testing::snapshot;

partition_options options(const std::string& dir) {
  partition_options o;
  o.dir = dir;
  o.dedup_window = 16;
  o.log.segment_bytes = 1024;  // rolls every ~25 events
  o.log.max_record_bytes = 256;
  o.log.max_free_segments = 1;  // both recycling and deletion happen
  return o;
}

// What the workload had promised when it stopped: the durable LSN a sync reported, and the
// source offset it had read as committed (as a Kafka consumer would commit it upstream).
struct promises {
  uint64_t acked = 0;
  uint64_t committed_offset = 0;
};

// The scripted workload: 12 rounds of 9 events and a sync, a checkpoint every 3rd round.
// Every event carries source position ("topic/0", its index); the committed offset is read
// mid-round, while events are applied but not yet synced. Stops at the first error.
promises run_workload(file_system& fs, const std::string& dir, bool go_on_after_errors = false) {
  promises out;
  auto p = partition::open(fs, options(dir));
  if (!p) return out;
  uint64_t& acked = out.acked;
  int next = 0;
  for (int round = 0; round < 12; ++round) {
    for (int k = 0; k < 9; ++k) {
      event_meta meta;
      meta.source = source_position{"topic/0", static_cast<uint64_t>(next) + 1};
      auto r = (*p)->apply(event_at(next), meta);
      if (r.kind != outcome::applied) {
        if (!go_on_after_errors) return out;
        continue;  // the event is not applied; the next attempt retries it
      }
      ++next;
      if (k == 4) {
        const auto& c = (*p)->committed_sources();
        if (auto it = c.find("topic/0"); it != c.end()) out.committed_offset = it->second.next - 1;
      }
    }
    auto d = (*p)->sync();
    if (!d) {
      if (!go_on_after_errors) return out;
      continue;
    }
    acked = *d;
    if (round % 3 == 2 && !(*p)->checkpoint().is_ok() && !go_on_after_errors) return out;
  }
  return out;
}

struct cycle_result {
  bool ok = true;
  std::string why;
};

// Recovers (the first attempt crashing at its `recovery_crash`-th operation, then a power
// loss), recovers again, and checks the oracle.
cycle_result recover_and_check(fault_file_system& ffs, const std::string& dir, promises made,
                               uint64_t recovery_crash) {
  const uint64_t acked = made.acked;
  cycle_result res;
  auto fail = [&](std::string why) {
    res.ok = false;
    res.why = std::move(why);
    return res;
  };
  if (recovery_crash > 0) {
    ffs.crash_at(recovery_crash);
    { auto p = partition::open(ffs, options(dir)); }
    if (!ffs.power_loss({true, recovery_crash}).is_ok()) return fail("power loss during recovery failed");
  }
  state_map first;
  uint64_t recovered = 0;
  {
    auto p = partition::open(ffs, options(dir));
    if (!p) return fail("recovery failed: " + p.error().to_string());
    recovered = (*p)->next_lsn() - 1;
    first = snapshot(**p);
    const auto& sources = (*p)->sources();
    const uint64_t have = sources.count("topic/0") ? sources.at("topic/0").next - 1 : 0;
    if (have < made.committed_offset)
      return fail("source offset " + std::to_string(made.committed_offset) +
                  " was reported committed, but recovery only has events up to offset " +
                  std::to_string(have));
  }
  if (recovered < acked)
    return fail("acknowledged events lost: durable LSN " + std::to_string(acked) +
                " was reported, recovery ends at LSN " + std::to_string(recovered));
  if (first != fold_of_prefix(recovered))
    return fail("state is not the fold of the first " + std::to_string(recovered) + " events");
  auto again = partition::open(ffs, options(dir));
  if (!again) return fail("second recovery failed: " + again.error().to_string());
  if (snapshot(**again) != first) return fail("second recovery differs from the first");
  return res;
}

class crash_point_test : public ::testing::Test {
 protected:
  temp_dir t_;
};

// The enumeration itself: for every mutating operation n of the workload and both flavours, a
// fresh machine crashes at n while `run(ffs)` works in `dir` (a process crash keeps what was
// written; a power loss undoes what was not synced, with a torn prefix), then
// `check(ffs, what run promised, n)` recovers and judges. Prints `label: ...` with the counts
// (scripts/test.sh collects the line) and fails the test for each failure, 10 at most.
template <class Run, class Check>
void every_crash_point(const char* label, const std::string& dir, uint64_t points, Run run, Check check) {
  uint64_t covered = 0;
  std::vector<std::string> failures;
  for (uint64_t n = 1; n <= points; ++n) {
    for (int flavour = 0; flavour < 2; ++flavour) {
      std::filesystem::remove_all(dir);
      fault_file_system ffs(posix_file_system());  // a fresh machine for every cycle
      ffs.crash_at(n);
      const auto made = run(ffs);
      if (!ffs.crashed()) continue;  // the run ended before operation n
      ++covered;
      if (flavour == 0) ffs.restart_after_crash();
      else if (status pl = ffs.power_loss({/*torn=*/true, n}); !pl.is_ok())
        FAIL() << "op " << n << ": " << pl.to_string();
      const cycle_result r = check(ffs, made, n);
      if (!r.ok)
        failures.push_back("crash at op " + std::to_string(n) + (flavour ? " (power loss)" : " (process crash)") +
                           ": " + r.why);
    }
  }
  std::printf("%s: %llu of %llu operations x 2 flavours covered (%llu cycles), %zu failures\n", label,
              static_cast<unsigned long long>(covered / 2), static_cast<unsigned long long>(points),
              static_cast<unsigned long long>(covered), failures.size());
  EXPECT_EQ(covered, 2 * points) << "every operation is a crash point in both flavours";
  for (std::size_t i = 0; i < std::min<std::size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
}

TEST_F(crash_point_test, EveryCrashPointInBothFlavoursRecoversEveryAcknowledgedEvent) {
  const std::string dir = t_ / "p";
  // Count the operations of a crash-free run (and check it completes).
  fault_file_system counter(posix_file_system());
  const uint64_t full = run_workload(counter, dir).acked;
  const uint64_t points = counter.mutating_ops();
  ASSERT_EQ(full, 12u * 9);
  // The workload must reach the interesting operations: segment rolls and checkpoints
  // (renames), pruning and segment release (removals, renames to free-<n>.seg).
  ASSERT_GE(counter.ops(fs_op::rename), 8u);
  ASSERT_GE(counter.ops(fs_op::remove), 2u);

  every_crash_point(
      "crash points", dir, points, [&](fault_file_system& ffs) { return run_workload(ffs, dir); },
      [&](fault_file_system& ffs, const promises& made, uint64_t n) {
        // Crash the first recovery too, at one of its early operations (varies with n).
        return recover_and_check(ffs, dir, made, (n % 4 == 0) ? 1 + n % 5 : 0);
      });
}

// The I/O-error sweep: at every mutating operation, inject ENOSPC and EIO (once, and from then
// on), and a short write at every write; the workload goes on after errors as a service
// would. Then a torn power loss, recovery and the same oracle. Catches acknowledging after a
// failed fdatasync (retry-and-trust): the fault file system forgets the writes of a failed
// sync for good, as Linux may.
TEST_F(crash_point_test, EveryIoErrorPointLosesNothingAcknowledged) {
  const std::string dir = t_ / "p";
  fault_file_system counter(posix_file_system());
  ASSERT_EQ(run_workload(counter, dir).acked, 12u * 9);
  const uint64_t points = counter.mutating_ops();
  const uint64_t writes = counter.ops(fs_op::write);
  struct kind {
    const char* name;
    errc code;
    bool persistent;
    bool short_write;
  };
  const kind kinds[] = {{"ENOSPC once", errc::no_space, false, false},
                        {"ENOSPC persistent", errc::no_space, true, false},
                        {"EIO once", errc::io_error, false, false},
                        {"EIO persistent", errc::io_error, true, false},
                        {"short write", errc::no_space, false, true}};
  uint64_t cycles = 0;
  std::vector<std::string> failures;
  for (const kind& k : kinds) {
    const uint64_t n_points = k.short_write ? writes : points;
    for (uint64_t n = 1; n <= n_points; ++n) {
      std::filesystem::remove_all(dir);
      fault_file_system ffs(posix_file_system());
      if (k.short_write) ffs.short_write(n);
      else ffs.fail_mutation(n, k.code, k.persistent);
      const promises made = run_workload(ffs, dir, /*go_on_after_errors=*/true);
      ffs.clear_faults();
      status pl = ffs.power_loss({/*torn=*/true, n});
      ASSERT_TRUE(pl.is_ok()) << pl.to_string();
      ++cycles;
      auto r = recover_and_check(ffs, dir, made, 0);
      if (!r.ok) failures.push_back(std::string(k.name) + " at op " + std::to_string(n) + ": " + r.why);
    }
  }
  std::printf("I/O-error points: %llu cycles (%llu operations x 4 error kinds + %llu writes short), %zu failures\n",
              static_cast<unsigned long long>(cycles), static_cast<unsigned long long>(points),
              static_cast<unsigned long long>(writes), failures.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
}

// -- the same over a shared lane ----------------------------------------------------------------
// Three partitions on one journal lane: their records interleave, segments roll and are
// released at the partitions' different checkpoint positions, the lane's size limit makes a
// silent partition checkpoint (after a no-op record), partition 2 is released (sealed) and the
// others' checkpoints release what its sealed checkpoint replays from, then it is opened again
// (a checkpoint, the unseal) and takes events. The oracle is per partition: its state is the
// fold of a prefix of its own events, at least as long as what its syncs acknowledged.

constexpr uint32_t lane_partitions = 3;

testing::ledger_event lane_event(uint32_t p, uint64_t i) {
  const std::string pre = "p" + std::to_string(p);
  return ledger(pre + "e" + std::to_string(i), pre + "k" + std::to_string(i % 3), i / 3 + 1,
                static_cast<int64_t>(i + 1));
}

state_map lane_fold(uint32_t p, uint64_t n) {
  state_map out;
  for (uint64_t i = 0; i < n; ++i) {
    auto e = lane_event(p, i);
    ledger_model::apply(out[e.key], e);
  }
  return out;
}

std::string lane_log_of(const std::string& dir) { return dir + "/lanes/L-0000/log"; }

journal_lane::options lane_options() {
  journal_lane::options o;
  o.membership = {0, 1, lane_partitions};
  o.log.segment_bytes = 1024;
  o.log.max_record_bytes = 256;
  o.log.max_free_segments = 1;
  o.max_bytes = 3 * 1024;
  return o;
}

partition_options lane_partition_options(const std::string& dir, uint32_t p, std::shared_ptr<journal_lane> lane) {
  partition_options o;
  o.dir = dir + "/" + partition_dir_name(p);
  o.partition = p;
  o.dedup_window = 16;
  o.lane = std::move(lane);
  o.log.max_record_bytes = 256;
  return o;
}

struct lane_promises {
  uint64_t acked[lane_partitions] = {};  // events of each partition its syncs acknowledged
  bool sealed_waiver = false;            // the lane released what the sealed checkpoint replays from
};

// 10 rounds: partitions 0 and 1 take 6 events a round, partition 2 in rounds 0-1 and 7-9;
// then every partition syncs; 0 and 1 checkpoint every 2nd round; any partition the lane's
// size limit names checkpoints; partition 2 is sealed after round 2 and opened again after
// round 6. Stops at the first error.
lane_promises run_lane_workload(file_system& fs, const std::string& dir) {
  lane_promises out;
  auto lane = journal_lane::open(fs, lane_log_of(dir), lane_options());
  if (!lane) return out;
  std::vector<std::unique_ptr<partition>> parts(lane_partitions);
  for (uint32_t p = 0; p < lane_partitions; ++p) {
    auto ps = partition::open(fs, lane_partition_options(dir, p, *lane));
    if (!ps) return out;
    parts[p] = std::move(ps).value();
  }
  uint64_t next[lane_partitions] = {};
  for (int round = 0; round < 10; ++round) {
    for (uint32_t p = 0; p < lane_partitions; ++p) {
      if (!parts[p] || (p == 2 && round >= 2 && round < 7)) continue;
      for (int k = 0; k < 6; ++k, ++next[p])
        if (parts[p]->apply(lane_event(p, next[p])).kind != outcome::applied) return out;
    }
    for (uint32_t p = 0; p < lane_partitions; ++p) {
      if (!parts[p]) continue;
      if (!parts[p]->sync()) return out;
      out.acked[p] = next[p];
    }
    for (uint32_t p = 0; p < 2; ++p)
      if (round % 2 == 1 && !parts[p]->checkpoint().is_ok()) return out;
    for (auto& ps : parts)
      if (ps && ps->lane_wants_checkpoint() && !ps->checkpoint(/*even_if_unchanged=*/true).is_ok()) return out;
    if (round == 2) {
      if (!parts[2]->seal().is_ok()) return out;
      parts[2].reset();
    }
    if (round == 6) {
      auto store = checkpoint_store::open_read_only(fs, dir + "/p-0002/ckpt", 2);
      auto sealed = store.sealed();
      if (!sealed || !*sealed) return out;
      auto position = store.read_position(**sealed);
      auto names = fs.list(lane_log_of(dir));
      if (!position || !names) return out;
      uint64_t first = UINT64_MAX;
      for (const auto& n : *names)
        if (uint64_t base; log_format::parse_segment_name(n, base)) first = std::min(first, base);
      out.sealed_waiver = first > *position;
      auto ps = partition::open(fs, lane_partition_options(dir, 2, *lane));
      if (!ps) return out;
      parts[2] = std::move(ps).value();
    }
  }
  return out;
}

// Opens the lane and every partition (a sealed one is opened again: its checkpoint, its unseal)
// and checks each partition against its promise; then again, which must find the same.
cycle_result recover_lane_and_check(fault_file_system& ffs, const std::string& dir, const lane_promises& made,
                                    uint64_t recovery_crash) {
  cycle_result res;
  auto fail = [&](std::string why) {
    res.ok = false;
    res.why = std::move(why);
    return res;
  };
  auto open_all = [&](std::vector<state_map>& states) -> status {
    SF_ASSIGN_OR_RETURN(auto lane, journal_lane::open(ffs, lane_log_of(dir), lane_options()));
    states.clear();
    for (uint32_t p = 0; p < lane_partitions; ++p) {
      auto ps = partition::open(ffs, lane_partition_options(dir, p, lane));
      if (!ps) return ps.error().with_context("partition " + std::to_string(p));
      states.push_back(snapshot(**ps));
    }
    return status::ok();
  };
  // engine::open's way: one read of the lane recovers every partition (recover_lane), the lane
  // opens from it. The first recovery (and the crash inside it) takes this way, the second the
  // other, and both must find the same.
  auto open_together = [&](std::vector<state_map>& states) -> status {
    std::vector<std::unique_ptr<partition>> parts;
    std::vector<partition_recovery> rec;
    for (uint32_t p = 0; p < lane_partitions; ++p) {
      SF_ASSIGN_OR_RETURN(auto ps, partition::prepare(ffs, lane_partition_options(dir, p, nullptr)));
      rec.push_back(ps->recovery_part());
      parts.push_back(std::move(ps));
    }
    lane_recovery_options ro;
    ro.lane = lane_options().membership;
    ro.threads = 2;
    SF_ASSIGN_OR_RETURN(auto r, recover_lane(ffs, lane_log_of(dir), ro, rec));
    SF_ASSIGN_OR_RETURN(auto lane, journal_lane::open_scanned(ffs, lane_log_of(dir), lane_options(), r.scan));
    states.clear();
    for (uint32_t p = 0; p < lane_partitions; ++p) {
      SF_RETURN_IF_ERROR(parts[p]->finish_open(lane, r.reports[p]).with_context("partition " + std::to_string(p)));
      states.push_back(snapshot(*parts[p]));
    }
    return status::ok();
  };
  std::vector<state_map> first, second;
  if (recovery_crash > 0) {
    ffs.crash_at(recovery_crash);
    (void)open_together(first);
    if (!ffs.power_loss({true, recovery_crash}).is_ok()) return fail("power loss during recovery failed");
  }
  if (status st = open_together(first); !st.is_ok()) return fail("recovery failed: " + st.to_string());
  for (uint32_t p = 0; p < lane_partitions; ++p) {
    uint64_t n = 0;
    for (const auto& [k, s] : first[p]) n += s.count;
    if (n < made.acked[p])
      return fail("partition " + std::to_string(p) + ": " + std::to_string(made.acked[p]) +
                  " events acknowledged, " + std::to_string(n) + " recovered");
    if (first[p] != lane_fold(p, n))
      return fail("partition " + std::to_string(p) + ": state is not the fold of its first " + std::to_string(n) +
                  " events");
  }
  if (status st = open_all(second); !st.is_ok()) return fail("second recovery failed: " + st.to_string());
  if (second != first) return fail("second recovery differs from the first");
  return res;
}

TEST_F(crash_point_test, EveryCrashPointOfASharedLaneWithReleaseAndReactivationLosesNothing) {
  const std::string dir = t_ / "d";
  fault_file_system counter(posix_file_system());
  const lane_promises full = run_lane_workload(counter, dir);
  EXPECT_EQ(full.acked[0], 60u);
  EXPECT_EQ(full.acked[1], 60u);
  EXPECT_EQ(full.acked[2], 30u);
  EXPECT_TRUE(full.sealed_waiver) << "the workload must release what partition 2's sealed checkpoint replays from";
  const uint64_t points = counter.mutating_ops();
  ASSERT_GE(counter.ops(fs_op::remove) + counter.ops(fs_op::rename), 20u);

  every_crash_point(
      "shared-lane crash points", dir, points, [&](fault_file_system& ffs) { return run_lane_workload(ffs, dir); },
      [&](fault_file_system& ffs, const lane_promises& made, uint64_t n) {
        return recover_lane_and_check(ffs, dir, made, (n % 4 == 0) ? 1 + n % 7 : 0);
      });
}

}  // namespace
}  // namespace statefold
