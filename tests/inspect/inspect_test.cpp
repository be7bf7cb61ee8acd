// statefold-inspect end to end: data directories written by the runtime itself (data_dir +
// partition_state<ledger_model>), damaged with byte surgery, then the real binary is run on
// them and its stdout and exit status are checked.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "statefold/data_dir.hpp"
#include "statefold/journal_lane.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using json = nlohmann::json;
using testing::ledger;
using testing::ledger_model;
using testing::temp_dir;
namespace fs = std::filesystem;

constexpr uint32_t partitions = 2;

// ---- running the binary ---------------------------------------------------------------------

struct run_result {
  int exit_code = -1;
  std::string out;
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }
};

/// Runs statefold-inspect with `args` (already shell-quoted); stdout only, or stdout and
/// stderr together when `with_stderr`.
run_result inspect(const std::string& args, bool with_stderr = false) {
  const std::string cmd = std::string("'") + STATEFOLD_INSPECT + "' " + args +
                          (with_stderr ? " 2>&1" : "");
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

/// Every file under `dir` with its bytes: what "changes nothing" is checked against.
std::map<std::string, std::string> snapshot_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[e.path().string()] = e.is_regular_file() ? testing::read_bytes(e.path().string()) : "<dir>";
  return out;
}

// ---- building a data directory with the runtime ---------------------------------------------

struct expected_record {
  uint64_t lsn;
  std::string id;
  std::string key;
  bool has_session;
  bool has_source;
  uint64_t source_offset;
};

struct expected_partition {
  std::vector<expected_record> records;  // in LSN order, as logged
  std::vector<uint64_t> checkpoints;     // LSNs of every checkpoint() call, oldest first
  std::set<std::string> keys_at_last_checkpoint;
};

class inspect_test : public ::testing::Test {
 protected:
  /// Events 0..n-1 over 17 keys, routed by the directory's partitioner; every partition is
  /// checkpointed after each event index in `checkpoint_after`. Every 3rd event carries a
  /// session, every 5th a source position. Small segments, so logs have several. A journal
  /// lane per partition (lanes/L-000p holds partition p's records, numbered by its own LSNs)
  /// unless a test sets lanes_ = 1 first.
  void write(int n, std::set<int> checkpoint_after = {}) {
    auto dd = open_dir();
    ASSERT_TRUE(dd) << dd.error().to_string();
    const partitioner router = (*dd)->make_partitioner();
    auto lanes = open_lanes(**dd);
    std::vector<std::unique_ptr<partition_state<ledger_model>>> ps;
    for (uint32_t p = 0; p < partitions; ++p) ps.push_back(open_partition(**dd, p, lanes));
    std::set<std::string> keys[partitions];
    for (int i = 0; i < n; ++i) {
      const std::string id = "e" + std::to_string(i);
      const std::string key = "k" + std::to_string(i % 17);
      event_meta meta;
      if (i % 3 == 0) meta.session = "s" + std::to_string(i);
      if (i % 5 == 0) meta.source = source_position{"orders/0", static_cast<uint64_t>(i)};
      const uint32_t p = router.partition_of(key);
      auto r = ps[p]->apply(ledger(id, key, static_cast<uint64_t>(i / 17 + 1), i), meta);
      ASSERT_EQ(r.kind, outcome::applied) << r.reason;
      if (lanes_ < partitions) {  // one shared lane: the partitions' records interleaved
        ASSERT_TRUE(ps[p]->sync());
      }
      expected_[p].records.push_back({r.lsn, id, key, i % 3 == 0, i % 5 == 0,
                                      static_cast<uint64_t>(i)});
      keys[p].insert(key);
      if (checkpoint_after.contains(i)) {
        for (uint32_t q = 0; q < partitions; ++q) {
          ASSERT_TRUE(ps[q]->checkpoint().is_ok());
          expected_[q].checkpoints.push_back(ps[q]->next_lsn() - 1);
          expected_[q].keys_at_last_checkpoint = keys[q];
        }
      }
    }
    for (auto& s : ps) ASSERT_TRUE(s->sync());
    // Destroying the partitions and the data_dir releases the LOCK: the directory is offline.
  }

  /// Appends one event to partition `p` in a later run (a new owner epoch).
  void append(uint32_t p, const std::string& id, const std::string& key) {
    auto dd = open_dir();
    ASSERT_TRUE(dd) << dd.error().to_string();
    auto s = open_partition(**dd, p, open_lanes(**dd));
    ASSERT_EQ(s->apply(ledger(id, key, 1, 1)).kind, outcome::applied);
    ASSERT_TRUE(s->sync());
  }

  result<std::unique_ptr<data_dir>> open_dir() {
    data_dir_config c{partitions, 64};
    c.lanes = lanes_;
    return data_dir::open(posix_file_system(), t_.path(), c);
  }

  // As an engine does: every lane opened (scanned, repaired) before its partitions.
  static std::vector<std::shared_ptr<journal_lane>> open_lanes(const data_dir& dd) {
    std::vector<std::shared_ptr<journal_lane>> out;
    for (uint32_t l = 0; l < dd.info().lanes; ++l) {
      journal_lane::options o;
      o.membership = dd.info().membership(l);
      o.epoch = dd.epoch();
      o.log.segment_bytes = 4096;  // small segments: logs have several
      o.log.max_record_bytes = 1024;
      auto lane = journal_lane::open(posix_file_system(), path_join(lane_dir(dd.path(), l), "log"), o);
      EXPECT_TRUE(lane) << lane.error().to_string();
      out.push_back(lane ? *lane : nullptr);
    }
    return out;
  }

  static std::unique_ptr<partition_state<ledger_model>> open_partition(
      const data_dir& dd, uint32_t p, const std::vector<std::shared_ptr<journal_lane>>& lanes) {
    partition_options o{.dir = dd.partition_dir(p), .partition = p, .epoch = dd.epoch()};
    o.lane = lanes[dd.info().lane_of(p)];
    o.log.max_record_bytes = 1024;
    auto s = partition_state<ledger_model>::open(posix_file_system(), std::move(o));
    EXPECT_TRUE(s) << s.error().to_string();
    return s ? std::move(s).value() : nullptr;
  }

  std::string dir() const { return t_.path(); }
  uint32_t lane_of(uint32_t p) const { return p % lanes_; }
  std::string log_dir(uint32_t p) const { return t_ / ("lanes/" + lane_dir_name(lane_of(p)) + "/log"); }
  std::string rel_log_dir(uint32_t p) const { return "lanes/" + lane_dir_name(lane_of(p)) + "/log"; }

  /// The runtime's own view of a partition's log: segments and where every record is.
  struct record_pos {
    uint64_t lsn;
    std::string file;
    uint64_t offset;
  };
  log_scan scan(uint32_t p, std::vector<record_pos>* where = nullptr) {
    log_scan_options o;
    lane_membership{lane_of(p), lanes_, partitions}.apply_to(o);
    auto s = scan_log(posix_file_system(), log_dir(p), o, [&](const log_record& r) {
      if (where && r.partition == p) where->push_back({r.lsn, std::string(r.file), r.offset});
      return status::ok();
    });
    EXPECT_TRUE(s) << s.error().to_string();
    return s ? std::move(s).value() : log_scan{};
  }

  std::vector<json> dump(const std::string& extra = "") {
    auto r = inspect("dump " + quoted(dir()) + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::vector<json> out;
    for (const auto& l : r.lines()) out.push_back(json::parse(l));
    return out;
  }

  temp_dir t_;
  uint32_t lanes_ = partitions;
  expected_partition expected_[partitions];
};

// ---- verify -----------------------------------------------------------------------------------

TEST_F(inspect_test, VerifyPassesOnAHealthyDirectoryWithOneLinePerPartition) {
  write(300, {199});
  auto r = inspect("verify " + quoted(dir()), true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto lines = r.lines();
  ASSERT_EQ(lines.size(), 2 * partitions) << r.out;  // each lane, then its partition
  for (uint32_t p = 0; p < partitions; ++p) {
    const auto& e = expected_[p];
    const log_scan s = scan(p);
    ASSERT_FALSE(e.records.empty());
    ASSERT_EQ(e.checkpoints.size(), 1u);
    const uint64_t c = e.checkpoints.back();
    const std::string n = std::to_string(e.records.size());
    const std::string segs = std::to_string(s.segments.size()) +
                             (s.segments.size() == 1 ? " segment" : " segments");
    EXPECT_EQ(lines[2 * p], lane_dir_name(p) + " ok: " + segs + ", LSN 1.." + n);
    // Every ID logged up to the checkpoint is in its dedup window (capacity 2^18).
    // Then the plan recovery would follow: that checkpoint, and the records after it.
    EXPECT_EQ(lines[2 * p + 1], partition_dir_name(p) + " ok: " + n + " records (seq 1.." + n + ") in lane " +
                                    std::to_string(p) + ", 1 checkpoint (newest LSN " + std::to_string(c) +
                                    ", " + std::to_string(e.keys_at_last_checkpoint.size()) +
                                    " entities), dedup window " + std::to_string(c) + "; recovery: checkpoint " +
                                    std::to_string(c) + ", then its records after " + std::to_string(c) +
                                    " from LSN " + std::to_string(c + 1));
  }
}

// One lane for both partitions: the lane is checked once, each partition against it.
TEST_F(inspect_test, OneSharedLaneIsVerifiedDumpedAndCountedPerPartition) {
  lanes_ = 1;
  write(300, {199});
  auto r = inspect("verify " + quoted(dir()), true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto lines = r.lines();
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0].rfind("L-0000 ok: ", 0), 0u) << r.out;
  EXPECT_NE(lines[0].find(", LSN 1..300"), std::string::npos) << r.out;
  for (uint32_t p = 0; p < partitions; ++p) {
    const std::string n = std::to_string(expected_[p].records.size());
    EXPECT_EQ(lines[1 + p].rfind(partition_dir_name(p) + " ok: " + n + " records (seq 1.." + n + ") in lane 0", 0), 0u)
        << r.out;
    // dump --partition: its records only, in order, numbered by its own sequence.
    auto mine = dump("--partition " + std::to_string(p));
    ASSERT_EQ(mine.size(), expected_[p].records.size());
    for (std::size_t i = 0; i < mine.size(); ++i) {
      EXPECT_EQ(mine[i]["partition"], p);
      EXPECT_EQ(mine[i]["lane"], 0);
      EXPECT_EQ(mine[i]["seq"], i + 1);
      EXPECT_EQ(mine[i]["event_id"], expected_[p].records[i].id);
    }
  }
  EXPECT_EQ(dump().size(), 300u);  // the whole lane, in LSN order
  auto st = inspect("stats " + quoted(dir()));
  ASSERT_EQ(st.exit_code, 0) << st.out;
  for (uint32_t p = 0; p < partitions; ++p) {
    const json j = json::parse(st.lines()[p]);
    EXPECT_EQ(j["lane"], 0);
    EXPECT_EQ(j["records"], expected_[p].records.size());
    EXPECT_EQ(j["newest_checkpoint"]["lsn"], expected_[p].checkpoints.back());
  }
  // A bit flip in a record of partition 1 is the lane's damage, and both partitions'.
  std::vector<record_pos> where;
  scan(1, &where);
  ASSERT_GE(where.size(), 10u);
  const record_pos victim = where[where.size() / 3];
  testing::flip_bit(victim.file, victim.offset + 40, 2);
  auto bad = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.out.find("L-0000 error: " + victim.file + " at offset " + std::to_string(victim.offset)),
            std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("p-0000 FAILED"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("p-0001 FAILED"), std::string::npos) << bad.out;
}

// A released partition (sealed) whose records its lane has dropped is fine, and said so; the
// same lane without the seal is not. A no-op record (a checkpoint for the lane with nothing
// new) is verified and dumped as such.
TEST_F(inspect_test, VerifyAcceptsASealedPartitionWhoseLaneMovedOnAndDumpsNoops) {
  lanes_ = 1;
  {
    auto dd = open_dir();
    ASSERT_TRUE(dd) << dd.error().to_string();
    const partitioner router = (*dd)->make_partitioner();
    auto lanes = open_lanes(**dd);
    auto p0 = open_partition(**dd, 0, lanes);
    auto p1 = open_partition(**dd, 1, lanes);
    std::string k0 = "a", k1 = "b";
    while (router.partition_of(k0) != 0) k0 += "a";
    while (router.partition_of(k1) != 1) k1 += "b";
    for (int i = 0; i < 5; ++i) ASSERT_EQ(p1->apply(ledger("b" + std::to_string(i), k1, i + 1, 1)).kind, outcome::applied);
    ASSERT_TRUE(p1->seal().is_ok());
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 100; ++i)
        ASSERT_EQ(p0->apply(ledger("a" + std::to_string(round * 100 + i), k0, round * 100 + i + 1, 1)).kind,
                  outcome::applied);
      ASSERT_TRUE(p0->checkpoint().is_ok());
    }
    ASSERT_TRUE(p0->checkpoint(/*even_if_unchanged=*/true).is_ok());  // a no-op record, then a checkpoint
  }
  auto r = inspect("verify " + quoted(dir()), true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("released, sealed at checkpoint 5"), std::string::npos) << r.out;
  std::size_t noops = 0;
  for (const auto& j : dump("--partition 0")) noops += j["type"] == "noop";
  EXPECT_EQ(noops, 1u);
  fs::remove(dir() + "/p-0001/ckpt/sealed");
  auto bad = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.out.find("the state cannot be rebuilt"), std::string::npos) << bad.out;
}

TEST_F(inspect_test, VerifyNamesFileAndOffsetOfABitFlipWithValidRecordsAfterIt) {
  write(300);
  std::vector<record_pos> where;
  scan(0, &where);
  // A record in the middle of the first segment, with valid records after it in that segment.
  std::vector<record_pos> first_segment;
  for (const auto& w : where)
    if (w.file == where.front().file) first_segment.push_back(w);
  ASSERT_GE(first_segment.size(), 5u);
  const record_pos victim = first_segment[first_segment.size() / 2];
  testing::flip_bit(victim.file, victim.offset + 22, 3);  // inside the payload

  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  const std::string at = victim.file + " at offset " + std::to_string(victim.offset) + " (LSN " +
                         std::to_string(victim.lsn) + ")";
  EXPECT_NE(r.out.find("L-0000 error: " + at), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CRC mismatch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L-0000 FAILED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p-0000 FAILED"), std::string::npos) << r.out;
  // It keeps going: the healthy partition is still reported.
  EXPECT_NE(r.out.find("p-0001 ok: "), std::string::npos) << r.out;
}

TEST_F(inspect_test, VerifyReportsATornTailWithItsOffset) {
  write(300);
  std::vector<record_pos> where;
  scan(1, &where);
  ASSERT_FALSE(where.empty());
  const record_pos last = where.back();
  testing::truncate_file(last.file, last.offset + 25);  // header complete, payload cut short

  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("L-0001 error: " + last.file + " at offset " + std::to_string(last.offset) +
                       " (LSN " + std::to_string(last.lsn) + ")"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("torn tail"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p-0000 ok: "), std::string::npos) << r.out;
}

TEST_F(inspect_test, VerifyChangesNothingAndWarnsAboutLeftoverTempFiles) {
  write(300, {150});
  // A torn tail (which recovery would cut) and leftovers (which recovery would delete).
  std::vector<record_pos> where;
  scan(0, &where);
  testing::truncate_file(where.back().file, where.back().offset + 7);
  const std::string ckpt_tmp = t_ / "p-0001/ckpt/00000000000000000999.ckpt.tmp";
  testing::write_bytes(ckpt_tmp, "half a checkpoint");
  const std::string seg_tmp = log_dir(1) + "/00000000000000000999.seg.tmp";
  testing::write_bytes(seg_tmp, "half a segment");
  const auto before = snapshot_files(dir());

  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("p-0001 warning: " + ckpt_tmp), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L-0001 warning: " + seg_tmp), std::string::npos) << r.out;
  EXPECT_EQ(snapshot_files(dir()), before);
  EXPECT_EQ(inspect("stats " + quoted(dir())).exit_code, 0);
  EXPECT_EQ(inspect("dump " + quoted(dir())).exit_code, 0);
  EXPECT_EQ(snapshot_files(dir()), before);
}

TEST_F(inspect_test, VerifyFlagsAMissingPartitionDirectory) {
  write(50);
  std::filesystem::remove_all(t_ / "p-0000");
  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("p-0000 error: " + (t_ / "p-0000") + ": partition directory is missing"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("p-0001 ok: "), std::string::npos) << r.out;
}

TEST_F(inspect_test, VerifyWithOnlyLeftoversExitsZero) {
  write(50);
  testing::write_bytes(t_ / "p-0000/ckpt/00000000000000000007.ckpt.tmp", "x");
  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("p-0000 warning: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p-0000 ok: "), std::string::npos) << r.out;
}

TEST_F(inspect_test, VerifyFlagsACheckpointBeyondTheLogAndALogThatCannotBeRebuilt) {
  // Three checkpoints: the oldest is pruned and the segments the kept ones cover released,
  // so the logs no longer start at LSN 1.
  write(1200, {400, 800, 1199});
  ASSERT_GT(scan(0).first_lsn, 1u);
  std::filesystem::remove_all(t_ / "p-0000/ckpt");  // now nothing covers LSN 1..first-1
  std::filesystem::remove_all(log_dir(1));   // the checkpoints outlive the log

  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  // Recovery's plan, printed by inspect: partition 0 has no checkpoint and its lane moved on ...
  EXPECT_NE(r.out.find("p-0000 error: " + log_dir(0) + ": no usable checkpoint of partition 0, and the log starts at LSN " +
                       std::to_string(scan(0).first_lsn) +
                       ": the partition's records before it are gone, so the state cannot be rebuilt"),
            std::string::npos)
      << r.out;
  // ... and partition 1's lane is gone, its checkpoints remain.
  EXPECT_NE(r.out.find("p-0001 error: " + log_dir(1) + ": the log has no segments but checkpoint "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("exists, so acknowledged events may be missing; refusing to start"), std::string::npos) << r.out;
}

TEST_F(inspect_test, AnEmptyPartitionIsFine) {
  write(0);
  std::filesystem::remove_all(log_dir(1));
  auto r = inspect("verify " + quoted(dir()), true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("p-0001 ok: empty"), std::string::npos) << r.out;
}

// ---- dump -------------------------------------------------------------------------------------

TEST_F(inspect_test, DumpPrintsEveryRecordInPartitionAndLsnOrder) {
  write(300, {199});
  const auto lines = dump();
  const auto& e0 = expected_[0].records;
  const auto& e1 = expected_[1].records;
  ASSERT_EQ(lines.size(), e0.size() + e1.size());
  std::size_t i = 0;
  for (uint32_t p = 0; p < partitions; ++p) {
    for (const auto& e : expected_[p].records) {
      const json& j = lines[i++];
      EXPECT_EQ(j["partition"], p);
      EXPECT_EQ(j["lsn"], e.lsn);
      EXPECT_EQ(j["event_id"], e.id);
      EXPECT_EQ(j["key"], e.key);
      EXPECT_EQ(j["type"], "event");
      EXPECT_EQ(j.contains("session"), e.has_session) << j;
      EXPECT_EQ(j.contains("source"), e.has_source) << j;
      if (e.has_source) {
        EXPECT_EQ(j["source"], "orders/0");
        EXPECT_EQ(j["source_offset"], e.source_offset);
      }
      EXPECT_FALSE(j.contains("correlation"));
      EXPECT_GT(j["size"].get<uint64_t>(), 0u);
    }
  }
  EXPECT_EQ(lines.front()["file"], "lanes/L-0000/log/00000000000000000001.seg");
  EXPECT_EQ(lines.front()["offset"], 64);
  // The first key of the JSON text is the partition (documented field order).
  auto raw = inspect("dump " + quoted(dir()) + " --limit 1");
  EXPECT_EQ(raw.out.rfind("{\"partition\":0,\"lane\":0,\"lsn\":1,\"seq\":1,\"event_id\":", 0), 0u) << raw.out;
}

TEST_F(inspect_test, DumpHonoursPartitionFromAndLimit) {
  write(300);
  const auto& e0 = expected_[0].records;
  const auto& e1 = expected_[1].records;
  ASSERT_GT(e0.size(), 60u);

  auto only1 = dump("--partition 1");
  ASSERT_EQ(only1.size(), e1.size());
  for (std::size_t i = 0; i < e1.size(); ++i) {
    EXPECT_EQ(only1[i]["partition"], 1);
    EXPECT_EQ(only1[i]["event_id"], e1[i].id);
  }

  auto from = dump("--partition 0 --from 50");
  ASSERT_EQ(from.size(), e0.size() - 49);
  EXPECT_EQ(from.front()["lsn"], 50);
  EXPECT_EQ(from.front()["event_id"], e0[49].id);

  auto limited = dump("--limit 7");
  ASSERT_EQ(limited.size(), 7u);
  EXPECT_EQ(limited.back()["lsn"], 7);

  // --limit counts records in total, across partitions.
  auto across = dump("--limit " + std::to_string(e0.size() + 3));
  ASSERT_EQ(across.size(), e0.size() + 3);
  EXPECT_EQ(across.back()["partition"], 1);
  EXPECT_EQ(across.back()["event_id"], e1[2].id);

  EXPECT_TRUE(dump("--limit 0").empty());
  EXPECT_EQ(inspect("dump " + quoted(dir()) + " --partition 2").exit_code, 2);
}

TEST_F(inspect_test, DumpEscapesArbitraryBytesAsValidJson) {
  write(0);
  const std::string id = std::string("id \"quoted\"\n\x01\xff", 14);
  const std::string key = std::string("key\0\xfe\\", 6);
  append(1, id, key);
  auto r = inspect("dump " + quoted(dir() + "/"));  // a trailing slash changes nothing
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(r.lines().size(), 1u) << r.out;  // the newline in the ID is escaped
  const json j = json::parse(r.out);         // valid JSON (and UTF-8) despite the bytes
  EXPECT_EQ(j["event_id"], "id \"quoted\"\n\x01\xEF\xBF\xBD");  // 0xff -> U+FFFD
  EXPECT_EQ(j["key"], std::string("key\0\xEF\xBF\xBD\\", 8));
  EXPECT_EQ(j["file"], "lanes/L-0001/log/00000000000000000001.seg");
}

TEST_F(inspect_test, DumpFailsOnCorruptionAfterPrintingTheRecordsBeforeIt) {
  write(300);
  std::vector<record_pos> where;
  scan(0, &where);
  const record_pos victim = where[where.size() / 2];
  testing::flip_bit(victim.file, victim.offset + 22);
  auto r = inspect("dump " + quoted(dir()) + " --partition 0");
  EXPECT_EQ(r.exit_code, 1);
  // Records before the damage are printed (the visitor ran); the error went to stderr.
  EXPECT_EQ(r.lines().size(), victim.lsn - 1);
  auto both = inspect("dump " + quoted(dir()) + " --partition 0", true);
  EXPECT_NE(both.out.find("at offset " + std::to_string(victim.offset)), std::string::npos);
}

// ---- stats ------------------------------------------------------------------------------------

TEST_F(inspect_test, StatsReportsCheckpointsEntitiesAndTheLog) {
  write(300, {99, 199});
  auto r = inspect("stats " + quoted(dir()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto lines = r.lines();
  ASSERT_EQ(lines.size(), partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    const json j = json::parse(lines[p]);
    const auto& e = expected_[p];
    const log_scan s = scan(p);
    EXPECT_EQ(j["partition"], p);
    EXPECT_EQ(j["segments"], s.segments.size());
    EXPECT_EQ(j["first_lsn"], s.first_lsn);
    EXPECT_EQ(j["next_lsn"], e.records.size() + 1);
    EXPECT_EQ(j["records"], e.records.size() + 1 - s.first_lsn);
    EXPECT_EQ(j["checkpoints"], json(e.checkpoints));
    const json& n = j["newest_checkpoint"];
    EXPECT_EQ(n["lsn"], e.checkpoints.back());
    EXPECT_EQ(n["entities"], e.keys_at_last_checkpoint.size());
    EXPECT_EQ(n["dedup_window"], e.checkpoints.back());
    EXPECT_EQ((n["sources"]["orders/0"]["next"].get<uint64_t>() - 1) % 5, 0u);  // after an offset
    EXPECT_TRUE(j.contains("free_segments"));
    uint64_t bytes = 0;
    for (const auto& seg : s.segments) bytes += seg.file_bytes;
    EXPECT_EQ(j["bytes"], bytes);
  }
}

// ---- errors -----------------------------------------------------------------------------------

TEST_F(inspect_test, ADirectoryWithoutManifestGetsAClearMessage) {
  temp_dir other;
  for (const char* cmd : {"verify", "dump", "stats"}) {
    auto r = inspect(std::string(cmd) + " " + quoted(other.path()), true);
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_EQ(r.out, other.path() + ": not a statefold data directory (no MANIFEST)\n") << cmd;
  }
}

TEST_F(inspect_test, UsageErrorsExitTwo) {
  EXPECT_EQ(inspect("", true).exit_code, 2);
  EXPECT_EQ(inspect("verify", true).exit_code, 2);
  EXPECT_EQ(inspect("frobnicate " + quoted(dir()), true).exit_code, 2);
  EXPECT_EQ(inspect("dump " + quoted(dir()) + " --limit lots", true).exit_code, 2);
  EXPECT_EQ(inspect("dump " + quoted(dir()) + " --from -1", true).exit_code, 2);
  EXPECT_EQ(inspect("dump " + quoted(dir()) + " --limit=-3", true).exit_code, 2);
  EXPECT_EQ(inspect("--help").exit_code, 0);
}

}  // namespace
}  // namespace statefold
