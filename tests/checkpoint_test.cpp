// Checkpoint files: round trip, and every kind of damage detected before anything is used.

#include <gtest/gtest.h>

#include <cstdio>

#include "statefold/checkpoint.hpp"
#include "statefold/crc32c.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::temp_dir;

class checkpoint_test : public ::testing::Test {
 protected:
  std::string image(uint64_t lsn, uint64_t entities = 50) {
    checkpoint_builder b(3, lsn, 2, 7, /*lane=*/1, /*position=*/lsn + 1);
    b.add_sources({{"bookings/3", {1234, 1000, 0xfeed}}, {"bookings/7", {99, 0, 0}}});
    dedup_window w(8);
    for (int i = 0; i < 12; ++i) w.insert(digest_of("event-" + std::to_string(i)), 100 + i);
    b.add_dedup(w);
    b.begin_entities(entities);
    for (uint64_t i = 0; i < entities; ++i)
      b.add_entity("key-" + std::to_string(i),
                   [&](std::string& out) { out.append("state-" + std::to_string(i * i)); });
    return std::move(b).finish();
  }

  checkpoint_store open() {
    auto s = checkpoint_store::open(posix_file_system(), dir_ / "ckpt", 3);
    EXPECT_TRUE(s) << s.error().to_string();
    return std::move(s).value();
  }

  // Rewrites the trailing CRC so that a deliberately impossible body passes the checksum.
  static void reseal(std::string& b) {
    store_u32(b.data() + b.size() - 4, crc32c::mask(crc32c::value(b.data(), b.size() - 4)));
  }

  temp_dir dir_;
};

TEST_F(checkpoint_test, RoundTripKeepsSourcesDedupAndEntities) {
  auto store = open();
  ASSERT_TRUE(store.write(42, image(42)).is_ok());
  auto c = store.load(42);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->lsn, 42u);
  EXPECT_EQ(c->epoch, 2u);
  ASSERT_EQ(c->sources.size(), 2u);
  EXPECT_EQ(c->sources[0].first, "bookings/3");
  EXPECT_EQ(c->sources[0].second, (source_progress{1234, 1000, 0xfeed}));
  EXPECT_EQ(c->codec_version, 7u);
  EXPECT_EQ(c->dedup.size(), 8u);
  EXPECT_EQ(c->dedup_evictions, 4u);
  EXPECT_EQ(c->dedup.front(), (dedup_entry{digest_of("event-4"), 104}));  // oldest surviving first
  ASSERT_EQ(c->entities.size(), 50u);
  EXPECT_EQ(c->entities[7].first, "key-7");
  EXPECT_EQ(c->entities[7].second, "state-49");
}

TEST_F(checkpoint_test, CutAtEveryByteIsDetected) {
  const std::string full = image(9, 5);
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    auto c = decode_checkpoint(full.substr(0, cut), "cut.ckpt", 3);
    ASSERT_FALSE(c) << "cut at " << cut;
    EXPECT_EQ(c.error().code(), errc::corruption) << "cut at " << cut;
  }
  // A figure for docs/reliability.md; scripts/test.sh prints it.
  std::printf("damaged files: %zu cuts of a checkpoint, each detected as corruption\n", full.size());
}

TEST_F(checkpoint_test, EveryBitFlipIsDetected) {
  const std::string full = image(9, 3);
  for (std::size_t i = 0; i < full.size(); ++i) {
    for (int bit : {0, 5}) {
      std::string b = full;
      b[i] = static_cast<char>(b[i] ^ (1 << bit));
      auto c = decode_checkpoint(b, "flip.ckpt", 3);
      ASSERT_FALSE(c) << "byte " << i << " bit " << bit;
    }
  }
  std::printf("damaged files: %zu bit flips in a checkpoint, each detected\n", 2 * full.size());
}

TEST_F(checkpoint_test, BadMagicUnknownVersionAndWrongPartitionAreNamed) {
  std::string b = image(9);
  b[0] = 'X';
  auto c = decode_checkpoint(b, "a.ckpt", 3);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("bad checkpoint magic"), std::string::npos);

  b = image(9);
  store_u32(b.data() + 8, 77);
  reseal(b);
  c = decode_checkpoint(b, "b.ckpt", 3);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::unsupported);
  EXPECT_NE(c.error().message().find("version 77"), std::string::npos);

  c = decode_checkpoint(image(9), "c.ckpt", 4);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("checkpoint of partition 3"), std::string::npos);
}

TEST_F(checkpoint_test, CountsLargerThanTheFileFailEvenWithAValidCrc) {
  // Entity count forged to 2^40: must be refused before any allocation of that size.
  std::string b = image(9, 2);
  const std::size_t entity_count_at = b.size() - 4 - 2 * (1 + 5 + 4 + 7) - 8;
  ASSERT_EQ(load_u64(b.data() + entity_count_at), 2u);
  store_u64(b.data() + entity_count_at, uint64_t{1} << 40);
  reseal(b);
  auto c = decode_checkpoint(b, "forged.ckpt", 3);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("bad entity count"), std::string::npos) << c.error().message();
}

TEST_F(checkpoint_test, LeftoverTempFilesAreRemovedAtOpen) {
  {
    auto store = open();
    ASSERT_TRUE(store.write(5, image(5)).is_ok());
  }
  testing::write_bytes(dir_ / "ckpt/00000000000000000010.ckpt.tmp", "interrupted");
  auto store = open();
  EXPECT_EQ(store.removed_at_open().size(), 1u);
  EXPECT_EQ(testing::files_in(dir_ / "ckpt"), std::vector<std::string>{"00000000000000000005.ckpt"});
}

TEST_F(checkpoint_test, PruneKeepsTheNewest) {
  auto store = open();
  for (uint64_t lsn : {5, 10, 15, 20}) ASSERT_TRUE(store.write(lsn, image(lsn)).is_ok());
  ASSERT_TRUE(store.prune(2).is_ok());
  auto lsns = store.list();
  ASSERT_TRUE(lsns);
  EXPECT_EQ(*lsns, (std::vector<uint64_t>{20, 15}));
  ASSERT_TRUE(store.remove_from(16).is_ok());
  EXPECT_EQ(*store.list(), (std::vector<uint64_t>{15}));
}

// The seal of a released partition: written durably, read back, refused when damaged (a bit
// flip anywhere, a short file), removed; a leftover of an interrupted seal goes at open.
TEST_F(checkpoint_test, SealNamesAnExistingCheckpointAndDamageIsCorruptionNotAbsence) {
  auto store = open();
  EXPECT_FALSE(*store.sealed());
  EXPECT_EQ(store.seal(9).code(), errc::invalid_argument) << "no checkpoint 9 to seal";
  ASSERT_TRUE(store.write(9, image(9)).is_ok());
  ASSERT_TRUE(store.seal(9).is_ok());
  ASSERT_TRUE(store.sealed());
  EXPECT_EQ(*store.sealed(), std::optional<uint64_t>(9));
  EXPECT_EQ(*checkpoint_store::open_read_only(posix_file_system(), dir_ / "ckpt", 3).sealed(),
            std::optional<uint64_t>(9));
  const std::string path = dir_ / "ckpt/sealed";
  const std::string good = testing::read_bytes(path);
  ASSERT_EQ(good.size(), checkpoint_format::sealed_size);
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string b = good;
    b[bit / 8] = static_cast<char>(b[bit / 8] ^ (1 << (bit % 8)));
    testing::write_bytes(path, b);
    auto r = store.sealed();
    ASSERT_FALSE(r) << "bit " << bit;
    EXPECT_EQ(r.error().code(), errc::corruption);
    EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
  }
  testing::write_bytes(path, good.substr(0, 12));
  EXPECT_FALSE(store.sealed());
  testing::write_bytes(path, good);
  ASSERT_TRUE(store.unseal().is_ok());
  EXPECT_FALSE(*store.sealed());
  ASSERT_TRUE(store.unseal().is_ok()) << "nothing to remove is fine";
  testing::write_bytes(dir_ / "ckpt/sealed.tmp", "interrupted");
  auto again = open();
  EXPECT_EQ(again.removed_at_open().size(), 1u);
  EXPECT_EQ(testing::files_in(dir_ / "ckpt"), std::vector<std::string>{"00000000000000000009.ckpt"});
}

}  // namespace
}  // namespace statefold
