// MANIFEST and LOCK: one owner at a time, epochs bumped, configuration mismatches refused.

#include <gtest/gtest.h>

#include <cstdio>

#include "statefold/crc32c.hpp"
#include "statefold/data_dir.hpp"
#include "testkit/temp_dir.hpp"

namespace statefold {
namespace {

using testkit::temp_dir;

TEST(data_dir_test, CreatesManifestAndBumpsTheEpochAtEveryOpen) {
  temp_dir t;
  data_dir_config cfg{4, 64};
  uint64_t first;
  {
    auto d = data_dir::open(posix_file_system(), t.path(), cfg);
    ASSERT_TRUE(d) << d.error().to_string();
    first = (*d)->epoch();
    EXPECT_EQ((*d)->info().partitions, 4u);
  }
  auto d = data_dir::open(posix_file_system(), t.path(), cfg);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->epoch(), first + 1);
  auto m = read_manifest(posix_file_system(), t.path());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->epoch, first + 1);
  EXPECT_EQ(m->key_groups, 64u);
}

TEST(data_dir_test, SecondOpenerIsRejectedClearly) {
  temp_dir t;
  auto a = data_dir::open(posix_file_system(), t.path(), {});
  ASSERT_TRUE(a);
  auto b = data_dir::open(posix_file_system(), t.path(), {});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), errc::locked);
  EXPECT_NE(b.error().message().find("LOCK"), std::string::npos);
  a->reset();
  EXPECT_TRUE(data_dir::open(posix_file_system(), t.path(), {}));
}

TEST(data_dir_test, PartitionCountMismatchIsRefusedNotResharded) {
  temp_dir t;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), {4, 4096}));
  auto d = data_dir::open(posix_file_system(), t.path(), {8, 4096});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::config_mismatch);
  EXPECT_NE(d.error().message().find("4 partitions"), std::string::npos) << d.error().message();
  auto m = read_manifest(posix_file_system(), t.path());
  EXPECT_EQ(m->partitions, 4u);
}

TEST(data_dir_test, DamagedManifestIsCorruption) {
  temp_dir t;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), {}));
  std::string text = testkit::read_bytes(t / "MANIFEST");
  text.replace(text.find("partitions=4"), 12, "partitions=5");
  testkit::write_bytes(t / "MANIFEST", text);
  auto d = data_dir::open(posix_file_system(), t.path(), {});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::corruption);
  EXPECT_NE(d.error().message().find("checksum"), std::string::npos);
}

TEST(data_dir_test, AStaleOwnerIsFencedWhenTheEpochMoves) {
  temp_dir t;
  auto d = data_dir::open(posix_file_system(), t.path(), {});
  ASSERT_TRUE(d);
  EXPECT_TRUE((*d)->check_epoch().is_ok());
  // Another owner (here: a forged MANIFEST, as if the lock had been broken) takes over.
  manifest m = (*d)->info();
  m.epoch += 1;
  ASSERT_TRUE(posix_file_system().write_file_atomic(t / "MANIFEST", encode_manifest(m)).is_ok());
  status st = (*d)->check_epoch();
  EXPECT_EQ(st.code(), errc::fenced);
}

TEST(data_dir_test, MissingDirectoryWithoutCreateIsNotFound) {
  temp_dir t;
  data_dir_config cfg;
  cfg.create_if_missing = false;
  auto d = data_dir::open(posix_file_system(), t / "nope", cfg);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::not_found);
}

TEST(data_dir_test, ManifestValuesAreParsedStrictly) {
  manifest m;
  m.partitions = 4;
  m.epoch = 3;
  std::string good = encode_manifest(m);
  EXPECT_TRUE(decode_manifest(good, "M"));
  for (const char* from : {"partitions=4", "epoch=3"}) {
    for (const char* to : {"partitions=-1", "partitions=4x", "partitions=4294967300"}) {
      std::string text = good.substr(0, good.rfind("crc32c="));
      if (text.find(from) == std::string::npos) continue;
      text.replace(text.find(from), std::string(from).size(), to);
      char crc[32];
      std::snprintf(crc, sizeof crc, "crc32c=%08x\n", crc32c::value(text));
      auto d = decode_manifest(text + crc, "M");
      EXPECT_FALSE(d) << to;
    }
  }
  EXPECT_FALSE(decode_manifest(good + "junk", "M"));
}

}  // namespace
}  // namespace statefold
