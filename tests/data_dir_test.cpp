// MANIFEST and LOCK: one owner at a time, epochs bumped, configuration mismatches refused.

#include <gtest/gtest.h>

#include <cstdio>

#include "statefold/crc32c.hpp"
#include "statefold/data_dir.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

// A MANIFEST body with its checksum line, as encode_manifest ends it.
std::string sealed(const std::string& body) {
  char crc[32];
  std::snprintf(crc, sizeof crc, "crc32c=%08x\n", crc32c::value(body));
  return body + crc;
}

using testing::temp_dir;

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
  std::string text = testing::read_bytes(t / "MANIFEST");
  text.replace(text.find("partitions=4"), 12, "partitions=5");
  testing::write_bytes(t / "MANIFEST", text);
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
  m.lanes = 4;
  m.epoch = 3;
  std::string good = encode_manifest(m);
  EXPECT_TRUE(decode_manifest(good, "M"));
  for (const char* from : {"partitions=4", "epoch=3"}) {
    for (const char* to : {"partitions=-1", "partitions=4x", "partitions=4294967300"}) {
      std::string text = good.substr(0, good.rfind("crc32c="));
      if (text.find(from) == std::string::npos) continue;
      text.replace(text.find(from), std::string(from).size(), to);
      auto d = decode_manifest(sealed(text), "M");
      EXPECT_FALSE(d) << to;
    }
  }
  EXPECT_FALSE(decode_manifest(good + "junk", "M"));
}

// The dedup window is a property of the data: stored in MANIFEST, it can grow and never shrink.
TEST(data_dir_test, TheDedupWindowIsStoredGrowsOnRequestAndIsNeverCutSilently) {
  temp_dir t;
  data_dir_config cfg;
  cfg.dedup_window = 1000;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), cfg));
  data_dir_config plain;  // no window asked for: the directory's
  {
    auto d = data_dir::open(posix_file_system(), t.path(), plain);
    ASSERT_TRUE(d) << d.error().to_string();
    EXPECT_EQ((*d)->info().dedup_window, 1000u);
    EXPECT_TRUE((*d)->notes().empty());
  }
  data_dir_config smaller = plain;
  smaller.dedup_window = 5;
  auto refused = data_dir::open(posix_file_system(), t.path(), smaller);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::config_mismatch);
  EXPECT_NE(refused.error().message().find("dedup window of 1000"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(read_manifest(posix_file_system(), t.path())->dedup_window, 1000u) << "unchanged";
  data_dir_config larger = plain;
  larger.dedup_window = 4096;
  {
    auto d = data_dir::open(posix_file_system(), t.path(), larger);
    ASSERT_TRUE(d) << d.error().to_string();
    ASSERT_EQ((*d)->notes().size(), 1u);
    EXPECT_NE((*d)->notes()[0].find("grown from 1000 to 4096"), std::string::npos);
  }
  EXPECT_EQ(read_manifest(posix_file_system(), t.path())->dedup_window, 4096u);
}

TEST(data_dir_test, AWindowOfZeroNeedsItsOwnFlag) {
  temp_dir t;
  data_dir_config cfg;
  cfg.dedup_window = 0;
  auto refused = data_dir::open(posix_file_system(), t.path(), cfg);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::invalid_argument);
  EXPECT_NE(refused.error().message().find("deduplication by event ID off"), std::string::npos);
  EXPECT_FALSE(posix_file_system().exists(t / "MANIFEST").value()) << "nothing created";
  cfg.allow_no_dedup = true;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), cfg));
  EXPECT_EQ(read_manifest(posix_file_system(), t.path())->dedup_window, 0u);
  // Once a directory has a window, 0 shrinks it like any smaller value.
  temp_dir u;
  ASSERT_TRUE(data_dir::open(posix_file_system(), u.path(), {}));
  auto shrink = data_dir::open(posix_file_system(), u.path(), cfg);
  ASSERT_FALSE(shrink);
  EXPECT_EQ(shrink.error().code(), errc::config_mismatch);
}

TEST(data_dir_test, PartitionDataWithoutAManifestIsRefusedNeverReinitialised) {
  temp_dir t;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), {4, 4096}));
  ASSERT_TRUE(posix_file_system().create_dirs(t / "p-0000/log").is_ok());
  ASSERT_TRUE(posix_file_system().create_dirs(t / "p-0001/ckpt").is_ok());
  ASSERT_TRUE(posix_file_system().remove(t / "MANIFEST").is_ok());
  auto d = data_dir::open(posix_file_system(), t.path(), {2, 4096});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::corruption);
  EXPECT_NE(d.error().message().find("MANIFEST is missing"), std::string::npos) << d.error().message();
  EXPECT_NE(d.error().message().find("p-0000 and 1 more"), std::string::npos) << d.error().message();
  EXPECT_FALSE(posix_file_system().exists(t / "MANIFEST").value());
  // A leftover MANIFEST.tmp of an interrupted first open is not data: that directory opens.
  temp_dir fresh;
  testing::write_bytes(fresh / "MANIFEST.tmp", "half");
  EXPECT_TRUE(data_dir::open(posix_file_system(), fresh.path(), {}));
}

TEST(data_dir_test, AnotherModelOrCodecVersionIsRefused) {
  temp_dir t;
  data_dir_config cfg;
  cfg.model = "booking";
  cfg.codec_version = 2;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), cfg));
  data_dir_config other = cfg;
  other.model = "ledger";
  auto a = data_dir::open(posix_file_system(), t.path(), other);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message().find("written by model 'booking'"), std::string::npos) << a.error().message();
  other = cfg;
  other.codec_version = 3;
  auto b = data_dir::open(posix_file_system(), t.path(), other);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("codec version 2"), std::string::npos) << b.error().message();
  other.model = "bad name!";
  EXPECT_EQ(data_dir::open(posix_file_system(), t.path(), other).error().code(), errc::invalid_argument);
}

TEST(data_dir_test, AnOlderFormatIsRefusedByName) {
  const std::string v1 =
      "statefold-manifest\nformat_version=1\npartitions=4\nkey_groups=4096\nhash_version=1\nepoch=3\n";
  auto d = decode_manifest(sealed(v1), "M");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::unsupported);
  EXPECT_NE(d.error().message().find("data format version 1, this build reads version 4"), std::string::npos)
      << d.error().message();
  // Version 2 (records without partition and sequence number) likewise, with all its fields.
  const std::string v2 =
      "statefold-manifest\nformat_version=2\npartitions=4\nkey_groups=4096\nhash_version=1\n"
      "dedup_window=262144\nmodel=booking\ncodec_version=2\nepoch=3\n";
  d = decode_manifest(sealed(v2), "M");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::unsupported);
  EXPECT_NE(d.error().message().find("data format version 2, this build reads version 4"), std::string::npos)
      << d.error().message();
}

// Version 3 format (records naming partition and pseq) in version 3's layout (a journal per
// partition in p-NNNN/log) is refused by name, like every older one.
TEST(data_dir_test, VersionThreeWithAJournalPerPartitionIsRefusedByName) {
  const std::string v3 =
      "statefold-manifest\nformat_version=3\npartitions=4\nlanes=4\npartitioner=key_hash\n"
      "key_groups=4096\nhash_version=1\ndedup_window=262144\nmodel=booking\ncodec_version=2\nepoch=3\n";
  auto d = decode_manifest(sealed(v3), "M");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), errc::unsupported);
  EXPECT_NE(d.error().message().find("data format version 3, this build reads version 4"), std::string::npos)
      << d.error().message();
}

// Version 4 records the journal lanes (1 for a new directory unless asked, fixed after) and the
// partitioner. What this build cannot read yet (partitioning by source) is refused by name.
TEST(data_dir_test, LanesAndPartitionerAreRecordedAndWhatThisBuildCannotReadIsRefused) {
  temp_dir t;
  data_dir_config cfg;
  cfg.partitions = 3;
  {
    auto d = data_dir::open(posix_file_system(), t.path(), cfg);
    ASSERT_TRUE(d) << d.error().to_string();
    EXPECT_EQ((*d)->info().lanes, 1u);
    EXPECT_EQ((*d)->info().partitioner, partitioner_kind::key_hash);
  }
  const std::string text = testing::read_bytes(t / "MANIFEST");
  EXPECT_NE(text.find("\nlanes=1\npartitioner=key_hash\n"), std::string::npos) << text;
  // An existing directory keeps its lanes: 0 means "its own", another count is refused.
  cfg.lanes = 3;
  auto other = data_dir::open(posix_file_system(), t.path(), cfg);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), errc::config_mismatch);
  EXPECT_NE(other.error().message().find("directory has 1 journal lanes, configuration asks for 3"),
            std::string::npos)
      << other.error().message();
  cfg.lanes = 0;
  ASSERT_TRUE(data_dir::open(posix_file_system(), t.path(), cfg));
  // A new directory with a lane per partition; more lanes than partitions make no sense.
  temp_dir t2;
  cfg.lanes = 3;
  {
    auto d = data_dir::open(posix_file_system(), t2.path(), cfg);
    ASSERT_TRUE(d) << d.error().to_string();
    EXPECT_EQ((*d)->info().lanes, 3u);
    EXPECT_EQ((*d)->info().lane_of(2), 2u);
  }
  temp_dir t3;
  cfg.lanes = 4;
  EXPECT_EQ(data_dir::open(posix_file_system(), t3.path(), cfg).error().code(), errc::invalid_argument);

  auto with = [&](const std::string& from, const std::string& to) {
    std::string body = text.substr(0, text.rfind("crc32c="));
    body.replace(body.find(from), from.size(), to);
    return decode_manifest(sealed(body), "M");
  };
  for (const char* bad : {"lanes=0", "lanes=4"}) {
    auto impossible = with("lanes=1", bad);
    ASSERT_FALSE(impossible) << bad;
    EXPECT_EQ(impossible.error().code(), errc::corruption) << bad;
    EXPECT_NE(impossible.error().message().find("impossible lane count"), std::string::npos)
        << impossible.error().message();
  }
  auto by_source = with("partitioner=key_hash", "partitioner=source");
  ASSERT_FALSE(by_source);
  EXPECT_EQ(by_source.error().code(), errc::unsupported);
  EXPECT_NE(by_source.error().message().find("partitioned by source"), std::string::npos);
  auto unknown = with("partitioner=key_hash", "partitioner=range");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), errc::corruption);
  auto missing = with("lanes=1\n", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::corruption);
}

}  // namespace
}  // namespace statefold
