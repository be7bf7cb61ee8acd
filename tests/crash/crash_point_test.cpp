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

#include "statefold/testing/fault_fs.hpp"
#include "statefold/partition_state.hpp"
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

  uint64_t covered = 0;
  std::vector<std::string> failures;
  for (uint64_t n = 1; n <= points; ++n) {
    for (int flavour = 0; flavour < 2; ++flavour) {
      std::filesystem::remove_all(dir);
      fault_file_system ffs(posix_file_system());  // a fresh machine for every cycle
      ffs.crash_at(n);
      const promises made = run_workload(ffs, dir);
      if (!ffs.crashed()) continue;  // the run ended before operation n
      ++covered;
      if (flavour == 0) ffs.restart_after_crash();
      else {
        status pl = ffs.power_loss({/*torn=*/true, n});
        ASSERT_TRUE(pl.is_ok()) << "op " << n << ": " << pl.to_string();
      }
      // Crash the first recovery too, at one of its early operations (varies with n).
      auto r = recover_and_check(ffs, dir, made, (n % 4 == 0) ? 1 + n % 5 : 0);
      if (!r.ok)
        failures.push_back("crash at op " + std::to_string(n) + (flavour ? " (power loss)" : " (process crash)") +
                           ": " + r.why);
    }
  }
  std::printf("crash points: %llu of %llu operations x 2 flavours covered (%llu cycles), %zu failures\n",
              static_cast<unsigned long long>(covered / 2), static_cast<unsigned long long>(points),
              static_cast<unsigned long long>(covered), failures.size());
  EXPECT_EQ(covered, 2 * points) << "every operation is a crash point in both flavours";
  for (std::size_t i = 0; i < std::min<std::size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
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

}  // namespace
}  // namespace statefold
