// statefold::testing tests itself: the simulated disk may lose everything POSIX allows to be
// lost and never loses what was synced; the crash explorer passes a correct model and catches
// a model whose decode drops a field; the deterministic engine gives the same trace for the
// same seed, and survives power losses between any two steps with every acknowledged event.

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "statefold/testing/crash_explorer.hpp"
#include "statefold/testing/deterministic_engine.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/memory_fs.hpp"

namespace statefold {
namespace {

using testing::crash_driver;
using testing::fault_file_system;
using testing::ledger;
using testing::ledger_model;

// -- the simulated disk --------------------------------------------------------------------------

// Random files, writes, syncs and directory syncs on memory_fs under fault_fs, then a power
// loss with torn writes. Per byte, what may survive is what POSIX allows: its value as of the
// file's last sync, or a value written to it since (a torn prefix of the unsynced writes) —
// never anything else, and a synced byte that was not overwritten never changes.
TEST(simulated_disk_test, PowerLossNeverLosesSyncedDataAndInventsNothing) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    testing::memory_file_system mem;
    fault_file_system ffs(mem);
    ASSERT_TRUE(ffs.create_dirs("/d").is_ok());
    ASSERT_TRUE(ffs.sync_dir("/").is_ok());
    std::mt19937_64 rng(seed);
    struct model_file {
      std::vector<std::set<char>> allowed;  // per byte: what a power loss may leave there
      std::size_t synced_size = 0;
      bool name_durable = false;            // its directory was synced since it was created
    };
    std::map<std::string, model_file> files;
    std::map<std::string, std::unique_ptr<file>> open;
    for (int step = 0; step < 80; ++step) {
      const std::string name = "/d/f" + std::to_string(rng() % 4);
      switch (rng() % 5) {
        case 0:
        case 1: {  // create or open, and write
          if (!open.count(name)) {
            auto f = ffs.open(name, open_mode::create);
            ASSERT_TRUE(f) << f.error().to_string();
            open[name] = std::move(f).value();
            files.try_emplace(name);
          }
          auto& m = files[name];
          const uint64_t at = m.allowed.empty() ? 0 : rng() % m.allowed.size();
          const std::string bytes(1 + rng() % 50, static_cast<char>('a' + rng() % 26));
          ASSERT_TRUE(open[name]->write_at(at, bytes).is_ok());
          if (m.allowed.size() < at + bytes.size()) m.allowed.resize(at + bytes.size(), {'\0'});
          for (std::size_t i = 0; i < bytes.size(); ++i) m.allowed[at + i].insert(bytes[i]);
          break;
        }
        case 2:  // sync: every byte is now exactly what was last written
          if (open.count(name)) {
            ASSERT_TRUE(open[name]->sync().is_ok());
            auto& m = files[name];
            const std::string now = *mem.read_file(name);
            for (std::size_t i = 0; i < now.size(); ++i) m.allowed[i] = {now[i]};
            m.synced_size = now.size();
          }
          break;
        case 3:  // sync the directory: every name in it becomes durable
          ASSERT_TRUE(ffs.sync_dir("/d").is_ok());
          for (auto& [n, m] : files) m.name_durable = true;
          break;
        default:
          break;
      }
    }
    ASSERT_TRUE(ffs.power_loss({true, seed}).is_ok());
    for (const auto& [n, m] : files) {
      auto present = ffs.exists(n);
      ASSERT_TRUE(present);
      if (!m.name_durable) continue;  // its creation may be undone: POSIX allows it
      ASSERT_TRUE(*present) << n << " was created and its directory synced, seed " << seed;
      const std::string now = *ffs.read_file(n);
      ASSERT_GE(now.size(), m.synced_size) << n << ": synced bytes lost, seed " << seed;
      ASSERT_LE(now.size(), m.allowed.size()) << n << ": bytes that were never written, seed " << seed;
      for (std::size_t i = 0; i < now.size(); ++i)
        ASSERT_TRUE(m.allowed[i].count(now[i])) << n << " offset " << i << " holds '" << now[i]
                                                << "', never written there since its last sync; seed " << seed;
    }
  }
}

TEST(simulated_disk_test, AFailedSyncLosesItsWritesForGood) {
  testing::memory_file_system mem;
  fault_file_system ffs(mem);
  auto f = ffs.open("/x", open_mode::create);
  ASSERT_TRUE(f);
  ASSERT_TRUE(ffs.sync_dir("/").is_ok());
  ASSERT_TRUE((*f)->write_at(0, "kept").is_ok());
  ASSERT_TRUE((*f)->sync().is_ok());
  ASSERT_TRUE((*f)->write_at(4, "gone").is_ok());
  ffs.fail(testing::fs_op::sync, 1, errc::io_error);
  EXPECT_FALSE((*f)->sync().is_ok());
  EXPECT_TRUE((*f)->sync().is_ok()) << "a later sync succeeds ...";
  ASSERT_TRUE(ffs.power_loss().is_ok());
  EXPECT_EQ(*ffs.read_file("/x"), "kept") << "... and still does not make those writes durable";
}

// -- the crash explorer --------------------------------------------------------------------------

// The workload: 60 ledger events over 4 keys, with syncs and checkpoints, so that segments
// roll, are recycled and released.
void ledger_workload(crash_driver<ledger_model>& d) {
  for (int i = 0; i < 60; ++i) {
    d.apply(ledger("e" + std::to_string(i), "k" + std::to_string(i % 4), i / 4 + 1, i));
    if (i % 6 == 5) d.sync();
    if (i % 20 == 19) d.checkpoint();
  }
}

TEST(crash_explorer_test, ACorrectModelPassesEveryCrashPoint) {
  testing::crash_explorer_options o;
  o.name = "crash_explorer_test.ACorrectModelPassesEveryCrashPoint";
  auto report = testing::explore_crashes<ledger_model>(ledger_workload, {}, o);
  EXPECT_TRUE(report.ok()) << report;
  EXPECT_GT(report.operations, 60u) << "the workload should roll, checkpoint and release";
  EXPECT_EQ(report.cycles, 2 * report.operations);
  std::printf("%s\n", report.summary().c_str());
}

// A user's model whose decode drops a field: what was acknowledged comes back different.
struct lossy_model : ledger_model {
  static bool decode_event(std::string_view in, const event_context& ctx, event& e) {
    if (!ledger_model::decode_event(in, ctx, e)) return false;
    e.amount = 0;  // the bug
    return true;
  }
};

TEST(crash_explorer_test, ItCatchesAModelWhoseDecodeDropsAField) {
  testing::crash_explorer_options o;
  o.name = "crash_explorer_test.ItCatchesAModelWhoseDecodeDropsAField";
  auto report = testing::explore_crashes<lossy_model>(
      [](crash_driver<lossy_model>& d) {
        for (int i = 0; i < 20; ++i) {
          d.apply(ledger("e" + std::to_string(i), "k", i + 1, 10));
          if (i % 5 == 4) d.sync();
        }
      },
      {}, o);
  ASSERT_FALSE(report.ok());
  const std::string text = report.summary();
  EXPECT_NE(text.find("is not the fold of the first"), std::string::npos) << text;
  EXPECT_NE(text.find("replay: STATEFOLD_CRASH_CASE="), std::string::npos) << text;
}

// A field that neither codec writes is invisible to a comparison of encodings; a state with an
// operator== is compared with it, so the explorer sees the field come back empty.
struct forgetful_state {
  int64_t sum = 0;
  std::string last_id;  // neither encode_state nor decode_state knows it
  friend bool operator==(const forgetful_state&, const forgetful_state&) = default;
};
struct forgetful_model {
  using state = forgetful_state;
  using event = testing::ledger_event;
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) {
    s.sum += e.amount;
    s.last_id = e.id;
  }
  static void encode_event(const event& e, std::string& out) { ledger_model::encode_event(e, out); }
  static bool decode_event(std::string_view in, const event_context& c, event& e) {
    return ledger_model::decode_event(in, c, e);
  }
  static void encode_state(const state& s, std::string& out) { put_u64(out, static_cast<uint64_t>(s.sum)); }
  static bool decode_state(std::string_view in, state& s) {
    uint64_t v;
    byte_reader r(in);
    if (!r.u64(v)) return false;
    s.sum = static_cast<int64_t>(v);
    return true;
  }
};

TEST(crash_explorer_test, AStateWithOperatorEqualsIsComparedWithItAndTheReportNamesTheKey) {
  testing::crash_explorer_options o;
  o.power_loss = false;
  auto report = testing::explore_crashes<forgetful_model>(
      [](crash_driver<forgetful_model>& d) {
        for (int i = 0; i < 30; ++i) {
          d.apply(ledger("e" + std::to_string(i), "k", i + 1, 1));
          if (i % 10 == 9) {
            d.sync();
            d.checkpoint();  // the field is lost in the checkpoint
          }
        }
      },
      o);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.summary().find("key 'k' has another state"), std::string::npos) << report;
}

TEST(crash_explorer_test, TheUsersPredicateRunsOnEveryRecoveredState) {
  testing::crash_explorer_options o;
  o.process_crash = false;
  uint64_t calls = 0;
  auto report = testing::explore_crashes<ledger_model>(
      ledger_workload,
      [&](const std::map<std::string, testing::ledger_state>& s, const auto& acked) -> std::string {
        ++calls;
        for (const auto& [k, st] : s)
          if (st.gaps || st.repeats) return k + " has a gap or a repeat";
        return acked.size() > 100 ? "impossible" : "";
      },
      o);
  EXPECT_TRUE(report.ok()) << report;
  EXPECT_EQ(calls, report.cycles + 1) << "every cycle, and the fault-free run";
}

// -- the deterministic engine ------------------------------------------------------------------

std::vector<std::string> traced_run(uint64_t seed) {
  testing::deterministic_engine<ledger_model>::options o;
  o.seed = seed;
  o.partitions = 3;
  auto e = testing::deterministic_engine<ledger_model>::open(o);
  EXPECT_TRUE(e) << e.error().to_string();
  for (int b = 0; b < 8; ++b) {
    std::vector<testing::ledger_event> batch;
    for (int k = 0; k < 6; ++k) batch.push_back(ledger("e" + std::to_string(b) + "-" + std::to_string(k), "k" + std::to_string(k), b + 1, 1));
    (*e)->submit(std::move(batch));
    for (int s = 0; s < 3; ++s) (*e)->step();
  }
  (*e)->run_until_idle();
  auto t = (*e)->trace();
  for (int k = 0; k < 6; ++k) EXPECT_EQ((*e)->get("k" + std::to_string(k))->count, 8u);
  return t;
}

TEST(deterministic_engine_test, TheSameSeedGivesTheSameTrace) {
  const auto a = traced_run(7), b = traced_run(7), c = traced_run(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c) << "another seed should interleave differently";
  EXPECT_GT(a.size(), 20u);
  EXPECT_NE(std::find(a.begin(), a.end(), "f1"), a.end()) << "flushers run as scheduled actors";
}

// Power loss after any number of steps: every event answered applied is recovered, and the
// state is the fold of a prefix of each key's events.
TEST(deterministic_engine_test, APowerLossAtAnyStepKeepsEveryAcknowledgedEvent) {
  for (int cut = 0; cut < 40; ++cut) {
    testing::deterministic_engine<ledger_model>::options o;
    o.seed = 100 + static_cast<uint64_t>(cut);
    auto e = testing::deterministic_engine<ledger_model>::open(o);
    ASSERT_TRUE(e) << e.error().to_string();
    std::vector<std::size_t> tickets;
    for (int b = 0; b < 6; ++b) {
      std::vector<testing::ledger_event> batch;
      for (int k = 0; k < 4; ++k) batch.push_back(ledger("e" + std::to_string(b) + "-" + std::to_string(k), "k" + std::to_string(k), b + 1, 1));
      tickets.push_back((*e)->submit(std::move(batch)));
    }
    for (int s = 0; s < cut && (*e)->step(); ++s) {
    }
    std::map<std::string, uint64_t> acked;  // highest seq acknowledged per key
    for (std::size_t t = 0; t < tickets.size(); ++t)
      if ((*e)->answered(tickets[t]))
        for (int k = 0; k < 4; ++k)
          if ((*e)->answers(tickets[t])[k].kind == outcome::applied) acked["k" + std::to_string(k)] = t + 1;
    ASSERT_TRUE((*e)->crash(/*power_loss=*/true).is_ok());
    for (int k = 0; k < 4; ++k) {
      const std::string key = "k" + std::to_string(k);
      auto s = (*e)->get(key);
      const uint64_t count = s ? s->count : 0;
      EXPECT_GE(count, acked[key]) << key << " lost acknowledged events, cut " << cut;
      if (s) {
        EXPECT_EQ(s->gaps, 0u);
        EXPECT_EQ(s->repeats, 0u);
      }
    }
  }
}

}  // namespace
}  // namespace statefold
