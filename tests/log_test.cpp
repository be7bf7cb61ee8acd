// The log's contract: round trips, torn tails cut at every byte, corruption failing closed with
// file / offset / LSN / CRC named, segment rolls and recycling, and a writer that fails for good.

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "statefold/crc32c.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/segment_preparer.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::fault_file_system;
using testing::fs_op;

using testing::temp_dir;
using log_format::record_type;

std::string payload_for(uint64_t i) { return "record-" + std::to_string(i) + std::string(i % 37, 'x'); }

class log_test : public ::testing::Test {
 protected:
  std::string log_dir() const { return dir_ / "log"; }

  log_options small_segments() const {
    log_options o;
    o.segment_bytes = 4096;
    o.max_record_bytes = 1024;
    return o;
  }

  result<log_scan> scan(recovery_mode mode = recovery_mode::tolerate_torn_tail,
                        std::vector<std::string>* seen = nullptr, uint32_t partition = 7,
                        uint64_t max_epoch = UINT64_MAX) {
    log_scan_options o;
    o.partition = partition;
    o.mode = mode;
    o.max_epoch = max_epoch;
    return scan_log(fs_, log_dir(), o, [&](const log_record& r) {
      if (seen) seen->emplace_back(r.payload);
      return status::ok();
    });
  }

  // Appends n records (syncing every `batch`) into a fresh or recovered log.
  void write(uint64_t n, log_options o, uint64_t batch = 10, uint64_t epoch = 1) {
    auto s = scan();
    ASSERT_TRUE(s) << s.error().to_string();
    ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
    auto w = log_writer::open(fs_, log_dir(), 7, epoch, *s, o);
    ASSERT_TRUE(w) << w.error().to_string();
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t lsn = s->next_lsn + i;
      auto r = (*w)->append(record_type::event, payload_for(lsn));
      ASSERT_TRUE(r);
      ASSERT_EQ(*r, lsn);
      if ((i + 1) % batch == 0) {
        ASSERT_TRUE((*w)->sync());
      }
    }
    ASSERT_TRUE((*w)->sync());
  }

  std::string only_segment() {
    auto names = testing::files_in(log_dir());
    EXPECT_EQ(names.size(), 1u);
    return log_dir() + "/" + names.at(0);
  }

  temp_dir dir_;
  file_system& fs_ = posix_file_system();
};

TEST_F(log_test, EmptyOrMissingLogStartsAtOne) {
  auto s = scan();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->segments.empty());
  EXPECT_EQ(s->next_lsn, 1u);
}

TEST_F(log_test, RoundTripKeepsEveryRecordInOrder) {
  write(100, log_options{});
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(seen.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(seen[i], payload_for(i + 1));
  EXPECT_EQ(s->next_lsn, 101u);
  EXPECT_FALSE(s->needs_repair());
}

TEST_F(log_test, ReopenedWriterContinuesAfterLastRecord) {
  write(25, log_options{});
  write(25, log_options{});
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen[49], payload_for(50));
}

TEST_F(log_test, SegmentsRollAtTheSizeLimitAndReadBackAcrossThem) {
  write(300, small_segments());
  EXPECT_GT(testing::files_in(log_dir()).size(), 3u);
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(seen.size(), 300u);
  for (const auto& seg : s->segments) EXPECT_EQ(seg.file_bytes, 4096u) << seg.path;  // preallocated
}

TEST_F(log_test, CutLastRecordAtEveryByteIsATornTailThatIsTruncated) {
  log_options o;
  o.preallocate = false;  // the file ends where the data ends, so every cut is a real cut
  write(5, o);
  const std::string seg = only_segment();
  const std::string full = testing::read_bytes(seg);
  // Records 1..4 end where record 5 starts; the writer adds an end marker (a zeroed record
  // header) after it.
  const uint64_t end = full.size() - log_format::record_header_size;
  const uint64_t last_start = end - log_format::record_header_size - payload_for(5).size();
  for (uint64_t cut = last_start + 1; cut < end; ++cut) {
    testing::write_bytes(seg, full.substr(0, cut));
    std::vector<std::string> seen;
    auto s = scan(recovery_mode::tolerate_torn_tail, &seen);
    ASSERT_TRUE(s) << "cut at " << cut << ": " << s.error().to_string();
    EXPECT_EQ(seen.size(), 4u) << "cut at " << cut;
    EXPECT_EQ(s->next_lsn, 5u);
    EXPECT_EQ(s->cut_offset, last_start);
    EXPECT_EQ(s->cut_bytes, cut - last_start);
    ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
    EXPECT_EQ(testing::read_bytes(seg).size(), last_start);
    auto again = scan(recovery_mode::absolute);
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(again->next_lsn, 5u);
  }
  // A figure for docs/reliability.md; scripts/test.sh prints it.
  std::printf("damaged files: %llu cuts of a log record, each cut and reported as a torn tail\n",
              static_cast<unsigned long long>(end - last_start - 1));
}

TEST_F(log_test, ZerosAfterTheTailAreFreeSpace) {
  log_options o;
  o.preallocate = false;
  write(5, o);
  testing::append_bytes(only_segment(), std::string(5000, '\0'));
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, 6u);
  EXPECT_FALSE(s->needs_repair());
}

TEST_F(log_test, GarbageAfterTheTailIsCutAndReported) {
  log_options o;
  o.preallocate = false;
  write(5, o);
  const std::string seg = only_segment();
  const uint64_t end = testing::read_bytes(seg).size() - log_format::record_header_size;
  testing::truncate_file(seg, end);
  testing::append_bytes(seg, "this is not a record, just noise after the tail");
  auto s = scan();
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, 6u);
  EXPECT_EQ(s->cut_offset, end);
  EXPECT_GT(s->cut_bytes, 0u);
  EXPECT_NE(s->damage.find(seg), std::string::npos) << s->damage;

  auto strict = scan(recovery_mode::absolute);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code(), errc::corruption);
}

TEST_F(log_test, BitFlipWithValidRecordsAfterItFailsClosedNamingFileOffsetLsnAndCrc) {
  write(20, log_options{});
  const std::string seg = only_segment();
  // Record 3 starts after the segment header and two records.
  uint64_t off = log_format::segment_header_size;
  for (uint64_t lsn = 1; lsn <= 2; ++lsn) off += log_format::record_header_size + payload_for(lsn).size();
  testing::flip_bit(seg, off + log_format::record_header_size + 2);  // inside record 3's payload
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  const std::string& m = s.error().message();
  EXPECT_NE(m.find(seg), std::string::npos) << m;
  EXPECT_NE(m.find("offset " + std::to_string(off)), std::string::npos) << m;
  EXPECT_NE(m.find("LSN 3"), std::string::npos) << m;
  EXPECT_NE(m.find("CRC mismatch: stored 0x"), std::string::npos) << m;
  EXPECT_NE(m.find("computed 0x"), std::string::npos) << m;
}

TEST_F(log_test, ForgedLengthFailsClosed) {
  write(20, log_options{});
  const std::string seg = only_segment();
  std::string b = testing::read_bytes(seg);
  const uint64_t off = log_format::segment_header_size + log_format::record_header_size +
                       payload_for(1).size();  // record 2
  store_u32(b.data() + off + 4, 0x7fffffff);
  testing::write_bytes(seg, b);
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("length field"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("LSN 2"), std::string::npos) << s.error().message();
}

TEST_F(log_test, PointInTimeRecoveryCutsAtTheFirstDamageAndReportsIt) {
  write(300, small_segments());
  auto names = testing::files_in(log_dir());
  ASSERT_GT(names.size(), 3u);
  const std::string second = log_dir() + "/" + names[1];
  testing::flip_bit(second, log_format::segment_header_size + 30);
  ASSERT_FALSE(scan());  // the default mode fails closed
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::point_in_time, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->cut_file, second);
  EXPECT_EQ(s->cut_offset, log_format::segment_header_size);
  EXPECT_EQ(s->discard_segments.size(), names.size() - 2);
  EXPECT_EQ(s->next_lsn, s->segments.back().end_lsn);
  EXPECT_EQ(seen.size(), s->next_lsn - 1);
  ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
  EXPECT_EQ(testing::files_in(log_dir()).size(), 2u);
  auto after = scan(recovery_mode::absolute);
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(after->next_lsn, s->next_lsn);
}

TEST_F(log_test, MissingSegmentFailsClosed) {
  write(300, small_segments());
  auto names = testing::files_in(log_dir());
  ASSERT_GT(names.size(), 3u);
  std::filesystem::remove(log_dir() + "/" + names[1]);
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("are missing"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find(names[2]), std::string::npos) << s.error().message();
}

TEST_F(log_test, SegmentOfAnotherPartitionIsRejected) {
  write(5, log_options{});
  auto s = scan(recovery_mode::tolerate_torn_tail, nullptr, /*partition=*/8);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("belongs to partition 7"), std::string::npos);
}

TEST_F(log_test, SegmentOfANewerEpochFencesThisOwner) {
  write(5, log_options{}, 10, /*epoch=*/9);
  auto s = scan(recovery_mode::tolerate_torn_tail, nullptr, 7, /*max_epoch=*/8);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::fenced);
}

TEST_F(log_test, DamagedSegmentHeaderIsCorruptionNotEmptiness) {
  write(5, log_options{});
  testing::flip_bit(only_segment(), 20);
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("segment header CRC mismatch"), std::string::npos);
}

TEST_F(log_test, StrayTempFilesAreRemovedAndUnknownFilesLeftAlone) {
  write(5, log_options{});
  testing::write_bytes(log_dir() + "/00000000000000000006.seg.tmp", "half-made segment");
  testing::write_bytes(log_dir() + "/README.operator", "notes");
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->stray_files.size(), 1u);
  ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
  auto names = testing::files_in(log_dir());
  EXPECT_EQ(std::count(names.begin(), names.end(), "00000000000000000006.seg.tmp"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "README.operator"), 1);
}

TEST_F(log_test, HalfMadePreparedSegmentIsStrayAndRemoved) {
  write(5, log_options{});
  testing::write_bytes(log_dir() + "/free-4.seg.tmp", std::string(1000, '\0'));
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(s->stray_files.size(), 1u);
  EXPECT_TRUE(s->free_segments.empty());
  ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
  auto names = testing::files_in(log_dir());
  EXPECT_EQ(std::count(names.begin(), names.end(), "free-4.seg.tmp"), 0);
}

// Appends and syncs one record at a time from LSN `from` up to `to`; `after_sync(w)` runs after
// every sync.
template <class AfterSync>
void append_synced(log_writer& w, uint64_t from, uint64_t to, AfterSync after_sync) {
  for (uint64_t i = from; i <= to; ++i) {
    ASSERT_TRUE(w.append(record_type::event, payload_for(i)));
    ASSERT_TRUE(w.sync());
    after_sync(w);
  }
}

// Returns once every job queued on `p` before this call has run (jobs run in order).
void drain(segment_preparer& p) {
  std::promise<void> done;
  p.submit([&] { done.set_value(); });
  done.get_future().wait();
}

TEST_F(log_test, SegmentPreparedAheadIsTakenAtTheRollAndReadsBackClean) {
  log_options o = small_segments();
  o.preparer = std::make_shared<segment_preparer>();
  auto s0 = scan();
  ASSERT_TRUE(s0);
  auto w = log_writer::open(fs_, log_dir(), 7, 1, *s0, o);
  ASSERT_TRUE(w) << w.error().to_string();
  // Draining after every sync lets each preparation finish before the roll that needs it, so
  // the test does not race the preparer.
  append_synced(**w, 1, 400, [&](log_writer&) { drain(*o.preparer); });
  const std::size_t segments = (*w)->segment_count();
  EXPECT_GE(segments, 4u);
  EXPECT_EQ((*w)->prepared_segments(), segments - 1) << "every roll after the first segment";
  w->reset();
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, 401u);
  ASSERT_EQ(seen.size(), 400u);
  for (uint64_t i = 1; i <= 400; ++i) ASSERT_EQ(seen[i - 1], payload_for(i));
  EXPECT_TRUE(s->stray_files.empty());
}

TEST_F(log_test, RollBeforeThePreparerGetsToItMakesTheSegmentItself) {
  log_options o = small_segments();
  o.preparer = std::make_shared<segment_preparer>();
  // Hold the preparer's thread, so that every preparation is still queued at its roll.
  std::promise<void> release;
  o.preparer->submit([f = release.get_future().share()] { f.wait(); });
  auto s0 = scan();
  ASSERT_TRUE(s0);
  auto w = log_writer::open(fs_, log_dir(), 7, 1, *s0, o);
  ASSERT_TRUE(w) << w.error().to_string();
  append_synced(**w, 1, 300, [](log_writer&) {});
  EXPECT_EQ((*w)->prepared_segments(), 0u);
  w->reset();          // cancels the preparation still queued
  release.set_value();
  o.preparer.reset();  // runs the cancelled jobs: they must leave nothing behind
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(seen.size(), 300u);
  EXPECT_TRUE(s->stray_files.empty());
  EXPECT_TRUE(s->free_segments.empty());
}

TEST_F(log_test, ReleasedSegmentsAreRecycledAndStaleRecordsAreNotReplayed) {
  log_options o = small_segments();
  auto s0 = scan();
  ASSERT_TRUE(s0);
  auto w = log_writer::open(fs_, log_dir(), 7, 1, *s0, o);
  ASSERT_TRUE(w);
  for (uint64_t i = 1; i <= 300; ++i) ASSERT_TRUE((*w)->append(record_type::event, payload_for(i)));
  ASSERT_TRUE((*w)->sync());
  const std::size_t before = (*w)->segment_count();
  ASSERT_TRUE((*w)->release_before(250).is_ok());
  EXPECT_LT((*w)->segment_count(), before);
  auto names = testing::files_in(log_dir());
  EXPECT_EQ(std::count_if(names.begin(), names.end(),
                          [](const std::string& n) { return n.rfind("free-", 0) == 0; }),
            2);
  // Write on: the next rolls reuse the free segments, whose old records must not come back.
  for (uint64_t i = 301; i <= 400; ++i) ASSERT_TRUE((*w)->append(record_type::event, payload_for(i)));
  ASSERT_TRUE((*w)->sync());
  w->reset();
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, 401u);
  EXPECT_EQ(seen.back(), payload_for(400));
  EXPECT_EQ(seen.size(), 400 - s->first_lsn + 1);
}

TEST_F(log_test, OversizedRecordIsRefusedWithoutFailingTheWriter) {
  auto s = scan();
  ASSERT_TRUE(s);
  auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, small_segments());
  ASSERT_TRUE(w);
  auto r = (*w)->append(record_type::event, std::string(2000, 'x'));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_TRUE((*w)->append(record_type::event, "fine"));
  EXPECT_TRUE((*w)->failure().is_ok());
}

TEST_F(log_test, BatchEndingJustShortOfARecycledSegmentEndReadsBackClean) {
  // Generation 1 fills segments to their last byte (8 records of 504 bytes, header included,
  // after the 64-byte segment header), so a recycled segment holds record bytes right up to
  // its end. Generation 2 ends each segment 10 bytes short (2 records of 2011 bytes): too
  // little room for a whole end marker, and the stale bytes there must still read as free
  // space.
  log_options o = small_segments();
  o.max_record_bytes = 2048;
  o.max_free_segments = 8;
  uint64_t lsn = 0;
  {
    auto s = scan();
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, o);
    ASSERT_TRUE(w);
    for (int i = 0; i < 8 * 4; ++i, ++lsn)
      ASSERT_TRUE((*w)->append(record_type::event, std::string(504 - log_format::record_header_size, 'a')));
    ASSERT_TRUE((*w)->append(record_type::event, "roll"));
    ++lsn;
    ASSERT_TRUE((*w)->sync());
    ASSERT_TRUE((*w)->release_before(lsn).is_ok());
  }
  {
    auto s = scan(recovery_mode::absolute);
    ASSERT_TRUE(s) << s.error().to_string();
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, o);
    ASSERT_TRUE(w);
    for (int i = 0; i < 8; ++i, ++lsn) {
      ASSERT_TRUE((*w)->append(record_type::event, std::string(2011 - log_format::record_header_size, 'b')));
      ASSERT_TRUE((*w)->sync());
    }
  }
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, lsn + 1);
  bool short_end = false;
  for (const auto& seg : s->segments) short_end |= seg.valid_bytes == 4096 - 10;
  EXPECT_TRUE(short_end) << "the workload did not produce the case it is about";
}

TEST_F(log_test, GapInsideASegmentIsCorruptionNotATornTail) {
  write(10, log_options{});
  const std::string seg = only_segment();
  std::string b = testing::read_bytes(seg);
  // Remove record 4 entirely: record 5 (valid CRC, LSN 5) now sits where LSN 4 is expected.
  uint64_t off = log_format::segment_header_size;
  for (uint64_t lsn = 1; lsn <= 3; ++lsn) off += log_format::record_header_size + payload_for(lsn).size();
  b.erase(off, log_format::record_header_size + payload_for(4).size());
  testing::write_bytes(seg, b);
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("valid record with LSN 5"), std::string::npos) << s.error().message();
}

TEST_F(log_test, ValidRecordOfAnUnknownTypeIsUnsupportedNotCut) {
  write(5, log_options{});
  const std::string seg = only_segment();
  std::string b = testing::read_bytes(seg);
  uint64_t off = log_format::segment_header_size;
  for (uint64_t lsn = 1; lsn <= 4; ++lsn) off += log_format::record_header_size + payload_for(lsn).size();
  b[off + 16] = 9;  // record 5: type 9, CRC recomputed so only the type is "wrong"
  const uint32_t len = load_u32(b.data() + off + 4);
  store_u32(b.data() + off,
            crc32c::mask(crc32c::value(b.data() + off + 4, log_format::record_header_size - 4 + len)));
  testing::write_bytes(seg, b);
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::unsupported);
  EXPECT_NE(s.error().message().find("record type 9"), std::string::npos) << s.error().message();
}

// A journal lane: records of several partitions, each with its own sequence numbers, encoded
// by their partitions and given LSNs by the writer; they read back in LSN order with their
// partition and sequence number, across segment rolls and a reopen.
TEST_F(log_test, RecordsOfSeveralPartitionsInOneLaneReadBackWithPartitionAndSequence) {
  struct want {
    uint64_t lsn;
    uint32_t partition;
    uint64_t pseq;
    std::string payload;
  };
  std::vector<want> written;
  std::map<uint32_t, uint64_t> next_pseq;
  uint64_t lsn = 1;
  auto round = [&](log_writer& w, int records) {
    std::string buf;
    for (int i = 0; i < records; ++i) {
      // Lane 7 of 8 holds partitions 7, 15, 23, 31, 39 (of 40): interleaved here.
      const uint32_t p = 7 + 8 * static_cast<uint32_t>((lsn * 7) % 5);
      const uint64_t q = ++next_pseq[p];
      const std::string payload = payload_for(lsn) + "-p" + std::to_string(p);
      log_format::encode_record(buf, p, q, record_type::event, [&](std::string& out) { out += payload; });
      written.push_back({lsn++, p, q, payload});
    }
    auto last = w.append_encoded(buf);
    ASSERT_TRUE(last) << last.error().to_string();
    EXPECT_EQ(*last, lsn - 1);
    EXPECT_EQ(w.next_lsn(), lsn);
  };
  auto lane_scan = [&](std::vector<want>* seen) {
    log_scan_options o;
    o.partition = 7;
    o.single_partition = false;
    o.lanes = 8;
    o.partitions = 40;
    o.mode = recovery_mode::absolute;
    return scan_log(fs_, log_dir(), o, [&](const log_record& r) {
      seen->push_back({r.lsn, r.partition, r.pseq, std::string(r.payload)});
      return status::ok();
    });
  };
  {
    std::vector<want> none;
    auto s = lane_scan(&none);
    ASSERT_TRUE(s);
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, small_segments());
    ASSERT_TRUE(w);
    for (int r = 0; r < 20; ++r) {
      round(**w, 1 + r % 9);
      ASSERT_TRUE((*w)->sync());
    }
    EXPECT_GE((*w)->segment_count(), 2u);  // rolled
  }
  {
    std::vector<want> seen;
    auto s = lane_scan(&seen);
    ASSERT_TRUE(s) << s.error().to_string();
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, small_segments());
    ASSERT_TRUE(w);
    round(**w, 6);
    ASSERT_TRUE((*w)->sync());
  }
  std::vector<want> seen;
  auto s = lane_scan(&seen);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(seen.size(), written.size());
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].lsn, written[i].lsn);
    EXPECT_EQ(seen[i].partition, written[i].partition) << "LSN " << seen[i].lsn;
    EXPECT_EQ(seen[i].pseq, written[i].pseq) << "LSN " << seen[i].lsn;
    EXPECT_EQ(seen[i].payload, written[i].payload);
  }
  // Read as the journal of one partition, the same lane is refused: its first record
  // belongs to another partition.
  auto single = scan();
  ASSERT_FALSE(single);
  EXPECT_EQ(single.error().code(), errc::corruption);
}

// A shared lane's records are checked as they are read: each names a partition of the lane,
// and each partition's records number on without a gap. A valid record that breaks either is
// corruption (a record in the wrong lane, or a lost one), never replayed.
TEST_F(log_test, ASharedLaneRefusesARecordOfAnotherLaneAndAGapInAPartitionsSequence) {
  auto write = [&](const std::vector<std::pair<uint32_t, uint64_t>>& records) {
    std::filesystem::remove_all(log_dir());
    auto s = scan();
    auto w = log_writer::open(fs_, log_dir(), 1, 1, *s, small_segments());
    ASSERT_TRUE(w);
    std::string buf;
    for (auto [p, q] : records)
      log_format::encode_record(buf, p, q, record_type::event, [](std::string& out) { out += "x"; });
    ASSERT_TRUE((*w)->append_encoded(buf));
    ASSERT_TRUE((*w)->sync());
  };
  auto lane_scan = [&] {
    log_scan_options o;
    o.partition = 1;  // lane 1 of 2: partitions 1, 3, 5 of 6
    o.single_partition = false;
    o.lanes = 2;
    o.partitions = 6;
    return scan_log(fs_, log_dir(), o, nullptr);
  };
  ASSERT_NO_FATAL_FAILURE(write({{1, 1}, {3, 1}, {1, 2}, {5, 1}, {3, 2}}));
  ASSERT_TRUE(lane_scan());
  ASSERT_NO_FATAL_FAILURE(write({{1, 1}, {3, 1}, {2, 1}}));  // partition 2 is lane 0's
  auto other = lane_scan();
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), errc::corruption);
  EXPECT_NE(other.error().message().find("(LSN 3): a valid record of partition 2 in journal lane 1"),
            std::string::npos)
      << other.error().message();
  ASSERT_NO_FATAL_FAILURE(write({{1, 1}, {7, 1}}));  // partition 7 is beyond the 6
  EXPECT_EQ(lane_scan().error().code(), errc::corruption);
  ASSERT_NO_FATAL_FAILURE(write({{1, 4}, {3, 1}, {1, 5}, {1, 7}}));  // 6 is missing
  auto gap = lane_scan();
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().code(), errc::corruption);
  EXPECT_NE(gap.error().message().find("(LSN 4): partition 1's record 7 follows its record 5 (records 6..6 are missing)"),
            std::string::npos)
      << gap.error().message();
}

TEST_F(log_test, AppendEncodedRefusesAMalformedBufferWholeAndStaysHealthy) {
  auto s = scan();
  auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, small_segments());
  ASSERT_TRUE(w);
  std::string good;
  log_format::encode_record(good, 7, 1, record_type::event, [](std::string& out) { out += "one"; });
  std::string cut = good + good.substr(0, 10);           // a partial header after a record
  std::string past = good;
  store_u32(past.data() + 4, 1000);                       // length runs past the buffer
  std::string big;
  log_format::encode_record(big, 7, 1, record_type::event,
                            [](std::string& out) { out += std::string(2000, 'x'); });  // > 1024
  std::string odd = good;
  odd[16] = 9;                                            // unknown type
  std::string reserved = good + good;
  reserved[good.size() + 18] = 1;                         // the second record's reserved byte
  for (const std::string* bad : {&cut, &past, &big, &odd, &reserved}) {
    auto r = (*w)->append_encoded(*bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), errc::invalid_argument) << r.error().to_string();
    EXPECT_EQ((*w)->next_lsn(), 1u);
    EXPECT_FALSE((*w)->failed());
  }
  ASSERT_TRUE((*w)->append_encoded(good));
  ASSERT_TRUE((*w)->sync());
  std::vector<std::string> seen;
  auto back = scan(recovery_mode::absolute, &seen);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(seen, std::vector<std::string>{"one"});
}

// A partition's journal holds only its own records, numbered by LSN. A CRC-valid record that
// says otherwise is never replayed: corruption, naming file, offset, LSN and both partitions.
TEST_F(log_test, RecordOfAnotherPartitionInAPartitionsJournalIsCorruption) {
  {
    auto s = scan();
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, log_options{});
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->append(record_type::event, payload_for(1)));
    std::string foreign;
    log_format::encode_record(foreign, 3, 2, record_type::event, [](std::string& out) { out += "x"; });
    ASSERT_TRUE((*w)->append_encoded(foreign));
    ASSERT_TRUE((*w)->sync());
  }
  for (auto mode : {recovery_mode::tolerate_torn_tail, recovery_mode::point_in_time}) {
    auto s = scan(mode);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), errc::corruption);
    const std::string& m = s.error().message();
    EXPECT_NE(m.find(".seg at offset " +
                     std::to_string(log_format::segment_header_size + log_format::record_header_size +
                                    payload_for(1).size()) +
                     " (LSN 2): a valid record of partition 3 with sequence number 2 in the journal "
                     "of partition 7"),
              std::string::npos)
        << m;
  }
}

TEST_F(log_test, RecordWhoseSequenceIsNotItsLsnInAPartitionsJournalIsCorruption) {
  {
    auto s = scan();
    auto w = log_writer::open(fs_, log_dir(), 7, 1, *s, log_options{});
    ASSERT_TRUE(w);
    std::string skewed;
    log_format::encode_record(skewed, 7, 5, record_type::event, [](std::string& out) { out += "x"; });
    ASSERT_TRUE((*w)->append_encoded(skewed));
    ASSERT_TRUE((*w)->sync());
  }
  auto s = scan();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), errc::corruption);
  EXPECT_NE(s.error().message().find("record of partition 7 with sequence number 5 in the journal "
                                     "of partition 7, which numbers its records by LSN"),
            std::string::npos)
      << s.error().message();
}

TEST_F(log_test, ForeignTmpAndFreeLookingFilesAreLeftAlone) {
  write(5, log_options{});
  testing::write_bytes(log_dir() + "/notes.tmp", "operator's file");
  testing::write_bytes(log_dir() + "/free-for-all.seg", "not ours either");
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->stray_files.empty());
  EXPECT_TRUE(s->free_segments.empty());
  ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
  EXPECT_EQ(testing::read_bytes(log_dir() + "/notes.tmp"), "operator's file");
}

TEST_F(log_test, PointInTimeCutsBeforeADamagedSegmentHeader) {
  write(300, small_segments());
  auto names = testing::files_in(log_dir());
  ASSERT_GT(names.size(), 3u);
  testing::flip_bit(log_dir() + "/" + names[2], 3);  // the magic of the third segment
  ASSERT_FALSE(scan());
  auto s = scan(recovery_mode::point_in_time);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->segments.size(), 2u);
  EXPECT_EQ(s->discard_segments.size(), names.size() - 2);
  ASSERT_TRUE(repair_log(fs_, log_dir(), *s).is_ok());
  EXPECT_TRUE(scan(recovery_mode::absolute));
}

// -- I/O errors, through the fault-injecting file system ---------------------------------------

class log_fault_test : public log_test {
 protected:
  fault_file_system ffs_{posix_file_system()};

  std::unique_ptr<log_writer> open_writer(log_options o = {}) {
    log_scan_options so;
    so.partition = 7;
    auto s = scan_log(ffs_, log_dir(), so, nullptr);
    EXPECT_TRUE(s);
    EXPECT_TRUE(repair_log(ffs_, log_dir(), *s).is_ok());
    auto w = log_writer::open(ffs_, log_dir(), 7, 1, *s, std::move(o));
    EXPECT_TRUE(w);
    return std::move(w).value();
  }
};

TEST_F(log_fault_test, EioOnFdatasyncFailsTheWriterForGood) {
  auto w = open_writer();
  ASSERT_TRUE(w->append(record_type::event, "a"));
  ASSERT_TRUE(w->sync());
  EXPECT_EQ(w->durable_lsn(), 1u);
  ASSERT_TRUE(w->append(record_type::event, "b"));
  ffs_.fail(fs_op::sync, 1, errc::io_error);
  auto r = w->sync();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::io_error);
  // The error names the segment as it exists on disk, not the temp name it was created under.
  EXPECT_NE(r.error().message().find("00000000000000000001.seg:"), std::string::npos) << r.error().message();
  // No retry-and-trust: the next sync would succeed at the OS level, but the writer refuses.
  auto again = w->sync();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), errc::io_error);
  EXPECT_FALSE(w->append(record_type::event, "c"));
  EXPECT_EQ(w->durable_lsn(), 1u);
}

TEST_F(log_fault_test, EnospcOnAppendIsNotDurableAndRestartLosesNothingAcknowledged) {
  auto w = open_writer();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w->append(record_type::event, payload_for(i + 1)));
  ASSERT_TRUE(w->sync());
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(w->append(record_type::event, payload_for(i + 1)));
  ffs_.short_write(1);
  auto r = w->sync();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::no_space);
  EXPECT_EQ(w->durable_lsn(), 10u);
  w.reset();
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  std::vector<std::string> seen;
  auto s = scan(recovery_mode::tolerate_torn_tail, &seen);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(seen.size(), 10u);
}

TEST_F(log_fault_test, PowerLossKeepsEverySyncedRecordAndTornTailsAreCut) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    std::filesystem::remove_all(log_dir());
    auto w = open_writer(small_segments());
    uint64_t lsn = 0;
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 17; ++i) ASSERT_TRUE(w->append(record_type::event, payload_for(++lsn)));
      ASSERT_TRUE(w->sync());
    }
    const uint64_t durable = w->durable_lsn();
    for (int i = 0; i < 23; ++i) ASSERT_TRUE(w->append(record_type::event, payload_for(++lsn)));
    // The batch reaches the file but not the disk: writes happen, the sync crashes.
    ffs_.fail(fs_op::sync, 1, errc::crashed);
    ASSERT_FALSE(w->sync());
    w.reset();
    ASSERT_TRUE(ffs_.power_loss({/*torn=*/true, seed}).is_ok());
    std::vector<std::string> seen;
    auto s = scan(recovery_mode::tolerate_torn_tail, &seen);
    ASSERT_TRUE(s) << "seed " << seed << ": " << s.error().to_string();
    ASSERT_GE(seen.size(), durable) << "seed " << seed;
    for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], payload_for(i + 1));
  }
}

TEST_F(log_fault_test, TornTailCutIsDurableBeforeANewSegmentFollowsIt) {
  // A segment filled to within one record of its end (30 records of 132 bytes, header
  // included, after the 64-byte segment header leave 72 bytes), and a torn record after them
  // that survived a crash.
  static_assert(log_format::record_header_size == 32, "the arithmetic below");
  log_options o = small_segments();
  o.preallocate = false;
  {
    auto w = open_writer(o);
    for (int i = 1; i <= 30; ++i) ASSERT_TRUE(w->append(record_type::event, std::string(100, 'a')));
    ASSERT_TRUE(w->sync());
  }
  const std::string seg = only_segment();
  {
    std::string b = testing::read_bytes(seg);
    b.resize(64 + 30 * 132);
    b += "a torn record: header and half a payload, durable already";
    testing::write_bytes(seg, b);  // behind the fault file system's back: this is the disk
  }
  // Recovery cuts it; the next append does not fit and starts a new segment, which is synced.
  {
    auto w = open_writer(o);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(w->append(record_type::event, std::string(100, 'b')));
    ASSERT_TRUE(w->sync());
    EXPECT_EQ(w->segment_count(), 2u);
  }
  // Power fails. The cut must have been synced: else the torn bytes come back, in a segment
  // that is no longer the last one, and the log is corrupt.
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  auto s = scan(recovery_mode::absolute);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->next_lsn, 36u);
}

}  // namespace
}  // namespace statefold
