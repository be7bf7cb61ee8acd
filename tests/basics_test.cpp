// Small pinned pieces: CRC32C vectors, the key hash and partition mapping (format-stable),
// the dedup window, status/result, the envelope codec.

#include <gtest/gtest.h>
#include <set>
#include <random>
#include <deque>

#include "statefold/crc32c.hpp"
#include "statefold/dedup_window.hpp"
#include "statefold/envelope.hpp"
#include "statefold/partitioner.hpp"

namespace statefold {
namespace {

TEST(crc32c_test, MatchesPublishedVectors) {
  EXPECT_EQ(crc32c::value("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c::value(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(crc32c::value(std::string(32, '\xff')), 0x62a8ab43u);
  std::string part = "12345";
  EXPECT_EQ(crc32c::extend(crc32c::value(part), "6789", 4), 0xe3069283u);
}

TEST(crc32c_test, MaskRoundTripsAndDiffers) {
  for (uint32_t v : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_EQ(crc32c::unmask(crc32c::mask(v)), v);
    EXPECT_NE(crc32c::mask(v), v);
  }
}

// These values are part of the on-disk format (hash version 1). If this test fails, the key
// hash or the key-group mapping changed: that needs a new hash_version, never an edit here.
TEST(partitioner_test, KeyToPartitionTableNeverChanges) {
  EXPECT_EQ(hash_version, 1u);
  EXPECT_EQ(key_hash(""), 0x2d06800538d394c2ull);
  EXPECT_EQ(key_hash("booking-1"), 0x371dce7169705f0eull);
  partitioner p(4, 4096);
  struct row { const char* key; uint32_t group; uint32_t partition; };
  const row table[] = {
      {"booking-1", 3854, 3}, {"booking-2", 394, 0},      {"booking-42", 420, 0},
      {"B-000001", 1636, 1},  {"customer/alice", 2150, 2}, {"", 1218, 1},
      {"x", 3345, 3},         {"statefold", 3151, 3},
  };
  for (const auto& r : table) {
    EXPECT_EQ(p.key_group_of(r.key), r.group) << r.key;
    EXPECT_EQ(p.partition_of(r.key), r.partition) << r.key;
  }
}

TEST(partitioner_test, PartitionsAreContiguousKeyGroupRanges) {
  partitioner p(3, 10);
  std::vector<uint32_t> owner;
  for (uint32_t g = 0; g < 10; ++g) owner.push_back(p.partition_of_group(g));
  EXPECT_EQ(owner, (std::vector<uint32_t>{0, 0, 0, 0, 1, 1, 1, 2, 2, 2}));
  EXPECT_FALSE(partitioner::check(0, 10).is_ok());
  EXPECT_FALSE(partitioner::check(11, 10).is_ok());
  EXPECT_TRUE(partitioner::check(10, 10).is_ok());
}

TEST(partitioner_test, SpreadsKeysEvenly) {
  partitioner p(8, 4096);
  std::vector<int> count(8);
  for (int i = 0; i < 80000; ++i) ++count[p.partition_of("booking-" + std::to_string(i))];
  for (int c : count) EXPECT_NEAR(c, 10000, 600);
}

TEST(dedup_window_test, RemembersTheLastNAndEvictsOldestFirst) {
  dedup_window w(3);
  for (const char* id : {"a", "b", "c"}) w.insert(digest_of(id));
  EXPECT_TRUE(w.contains(digest_of("a")));
  w.insert(digest_of("d"));
  EXPECT_FALSE(w.contains(digest_of("a")));
  EXPECT_TRUE(w.contains(digest_of("b")));
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(w.evictions(), 1u);
  std::vector<event_digest> order;
  w.for_each([&](const dedup_entry& e) { order.push_back(e.id); });
  EXPECT_EQ(order, (std::vector<event_digest>{digest_of("b"), digest_of("c"), digest_of("d")}));
}

// The table behind the window, under the window's own load (insert one, erase the oldest)
// with digests forced into a few home slots, so that runs are long and wrap around the end of
// the table: every answer must match a model.
TEST(dedup_window_test, DigestSetMatchesAModelUnderFifoChurnWithCollidingHomes) {
  constexpr std::size_t window = 24;  // a table of 64 slots
  digest_set set(window);
  std::set<std::pair<uint64_t, uint64_t>> model;
  std::deque<event_digest> fifo;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200'000; ++i) {
    // Homes 60..63 and 0..3 only (the low 6 bits), the rest of `lo` and `hi` random; now and
    // then the all-zero digest, which cannot live in a slot.
    event_digest d{rng() % 4, ((rng() >> 6) << 6) | ((60 + rng() % 8) & 63)};
    if (rng() % 1000 == 0) d = {0, 0};
    const bool present = model.count({d.hi, d.lo}) > 0;
    ASSERT_EQ(set.find(d) != nullptr, present) << "step " << i;
    if (present) {
      ASSERT_EQ(set.find(d)->tag, d.lo ^ 0x5a5a) << "step " << i;
      continue;
    }
    if (fifo.size() == window) {
      set.erase(fifo.front());
      model.erase({fifo.front().hi, fifo.front().lo});
      fifo.pop_front();
    }
    set.insert({d, d.lo ^ 0x5a5a});
    model.insert({d.hi, d.lo});
    fifo.push_back(d);
    for (const auto& e : fifo) ASSERT_TRUE(set.find(e)) << "step " << i;
  }
  set.clear();
  for (const auto& e : fifo) EXPECT_FALSE(set.find(e));
}

// The table starts small and doubles as it fills, each doubling spread over later inserts:
// lookups, inserts and erasures in the middle of a doubling must answer as a model does.
TEST(dedup_window_test, DigestSetGrowsIncrementallyAndMatchesAModel) {
  constexpr std::size_t max_entries = 20'000;
  digest_set set(max_entries);
  EXPECT_EQ(set.memory_bytes(), 0u);
  std::vector<event_digest> members;  // the model: what the set holds
  std::mt19937_64 rng(7);
  bool saw_rehash = false;
  std::size_t largest = 0;
  for (int i = 0; i < 300'000; ++i) {
    const bool grow = members.size() < max_entries && (rng() % 10 < 7 || members.empty());
    if (grow) {
      const event_digest d{rng() | 1, rng()};
      set.insert({d, d.hi ^ 1});
      members.push_back(d);
    } else {
      const std::size_t k = rng() % members.size();
      set.erase(members[k]);
      ASSERT_FALSE(set.find(members[k])) << "step " << i;
      members[k] = members.back();
      members.pop_back();
    }
    saw_rehash = saw_rehash || set.rehashing();
    largest = std::max(largest, set.memory_bytes());
    ASSERT_EQ(set.size(), members.size()) << "step " << i;
    if (!members.empty()) {
      const auto& probe = members[rng() % members.size()];
      ASSERT_TRUE(set.find(probe)) << "step " << i;
      ASSERT_EQ(set.find(probe)->tag, probe.hi ^ 1);
    }
    ASSERT_FALSE(set.find({rng() | 1, rng()})) << "step " << i;
    if (i % 4999 == 0) {
      for (const auto& m : members) ASSERT_TRUE(set.find(m)) << "step " << i;
    }
    if (i == 150'000)  // shrink to nothing, then grow again
      while (!members.empty()) {
        set.erase(members.back());
        members.pop_back();
      }
  }
  for (const auto& m : members) ASSERT_TRUE(set.find(m));
  EXPECT_TRUE(saw_rehash);
  // Never beyond the largest table plus the one it doubled from.
  EXPECT_LE(largest, (65'536 + 32'768) * sizeof(dedup_entry));
  set.clear();
  EXPECT_EQ(set.memory_bytes(), 0u);
  for (const auto& m : members) EXPECT_FALSE(set.find(m));
}

// An idle partition's window costs next to nothing; it grows with the identities it holds.
TEST(dedup_window_test, MemoryGrowsWithEntriesNotWithCapacity) {
  dedup_window w(1u << 18);
  EXPECT_EQ(w.memory_bytes(), 0u);
  w.insert(digest_of("first"));
  EXPECT_LE(w.memory_bytes(), 16u << 10);
  for (int i = 0; i < (1 << 18) + 1000; ++i) w.insert(digest_of("id-" + std::to_string(i)));
  EXPECT_EQ(w.size(), 1u << 18);
  EXPECT_EQ(w.evictions(), 1001u);
  EXPECT_GE(w.memory_bytes(), (1u << 18) * sizeof(dedup_entry));
  EXPECT_LE(w.memory_bytes(), 4 * (1u << 18) * sizeof(dedup_entry));
  EXPECT_FALSE(w.contains(digest_of("first")));
  EXPECT_FALSE(w.contains(digest_of("id-999")));
  EXPECT_TRUE(w.contains(digest_of("id-1000")));
  // Bulk replay builds the table at its final size directly.
  dedup_window r(1u << 18);
  r.begin_bulk();
  w.for_each([&](const dedup_entry& e) { r.insert(e); });
  r.end_bulk();
  EXPECT_TRUE(r.contains(digest_of("id-1000")));
  EXPECT_TRUE(r.contains(digest_of(("id-" + std::to_string((1 << 18) + 999)))));
  EXPECT_FALSE(r.contains(digest_of("id-999")));
  w.clear();
  EXPECT_EQ(w.memory_bytes(), 0u);
}

TEST(dedup_window_test, IdentityIsKeyAndEventIdNotTheirConcatenation) {
  EXPECT_NE(identity_of("b1", "e1"), identity_of("b2", "e1"));  // same ID, another key
  EXPECT_NE(identity_of("ab", "c"), identity_of("a", "bc"));    // the key's length is in it
  EXPECT_EQ(identity_of("b1", "e1"), identity_of("b1", "e1"));
  const std::string long_key(1000, 'k');  // beyond the stack buffer
  EXPECT_EQ(identity_of(long_key, "e"), identity_of(long_key, "e"));
  EXPECT_NE(identity_of(long_key, "e"), identity_of(long_key + "k", ""));
}

TEST(dedup_window_test, ZeroCapacityDisablesDedup) {
  dedup_window w(0);
  w.insert(digest_of("a"));
  EXPECT_FALSE(w.contains(digest_of("a")));
  EXPECT_EQ(w.size(), 0u);
}

TEST(envelope_test, RoundTripWithAndWithoutOptionalFields) {
  event_meta meta;
  meta.session = "sess-1";
  meta.causation = "cause";
  meta.source = source_position{"bookings/2", 77};
  std::string out;
  encode_envelope(out, 1'700'000'000'123'456u, "e-1", "booking-9", meta,
                  [](std::string& o) { o.append("BODY"); });
  auto v = decode_envelope(out);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->time_us, 1'700'000'000'123'456u);
  EXPECT_EQ(v->event_id, "e-1");
  EXPECT_EQ(v->key, "booking-9");
  EXPECT_EQ(v->session, "sess-1");
  EXPECT_EQ(v->correlation, "");
  EXPECT_EQ(v->causation, "cause");
  EXPECT_TRUE(v->has_source);
  EXPECT_EQ(v->source_offset, 77u);
  EXPECT_EQ(v->body, "BODY");
  for (std::size_t cut = 0; cut + 4 < out.size(); ++cut)  // cuts inside the header fields
    EXPECT_FALSE(decode_envelope(std::string_view(out).substr(0, cut))) << cut;
}

TEST(envelope_test, PositionRecordRoundTripsAndCutsFail) {
  std::string out;
  encode_position(out, 42, "in.jsonl", {1000, 900, 0xabcdef});
  auto v = decode_position(out);
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ(v->time_us, 42u);
  EXPECT_EQ(v->source, "in.jsonl");
  EXPECT_EQ(v->progress, (source_progress{1000, 900, 0xabcdef}));
  for (std::size_t cut = 0; cut < out.size(); ++cut)
    EXPECT_FALSE(decode_position(std::string_view(out).substr(0, cut))) << cut;
  EXPECT_FALSE(decode_position(out + "x")) << "trailing bytes";
}

TEST(status_test, ResultCarriesValueOrError) {
  result<int> ok = 5;
  EXPECT_TRUE(ok);
  EXPECT_EQ(*ok, 5);
  result<int> bad = status{errc::io_error, "disk on fire"};
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().to_string(), "io_error: disk on fire");
  EXPECT_EQ(bad.error().with_context("p-0001").message(), "p-0001: disk on fire");
}

}  // namespace
}  // namespace statefold
