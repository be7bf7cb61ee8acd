// The fault-injecting file system must forget exactly what a power loss forgets; otherwise
// every crash test built on it proves nothing.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::fault_file_system;
using testing::fs_op;

using testing::temp_dir;

class fault_fs_test : public ::testing::Test {
 protected:
  std::unique_ptr<file> create(const std::string& name) {
    auto f = ffs_.open(t_ / name, open_mode::create);
    EXPECT_TRUE(f) << f.error().to_string();
    return std::move(f).value();
  }
  bool exists(const std::string& name) { return *posix_file_system().exists(t_ / name); }

  temp_dir t_;
  fault_file_system ffs_{posix_file_system()};
};

TEST_F(fault_fs_test, PowerLossDropsUnsyncedBytesAndKeepsSyncedOnes) {
  auto f = create("a");
  ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
  ASSERT_TRUE(f->write_at(0, "durable").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(f->write_at(7, "-volatile").is_ok());
  ASSERT_TRUE(f->write_at(0, "DUR").is_ok());  // overwrite in place, unsynced
  EXPECT_EQ(testing::read_bytes(t_ / "a"), "DURable-volatile");
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  EXPECT_EQ(testing::read_bytes(t_ / "a"), "durable");
  // The old handle is dead after the power loss.
  EXPECT_EQ(f->write_at(0, "x").code(), errc::crashed);
}

TEST_F(fault_fs_test, PowerLossUndoesCreationWithoutDirectorySync) {
  auto f = create("new");
  ASSERT_TRUE(f->write_at(0, "data").is_ok());
  ASSERT_TRUE(f->sync().is_ok());  // file data synced, directory entry not
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  EXPECT_FALSE(exists("new"));
}

TEST_F(fault_fs_test, PowerLossUndoesRenameAndRemoveWithoutDirectorySync) {
  {
    auto f = create("old");
    ASSERT_TRUE(f->write_at(0, "old content").is_ok());
    ASSERT_TRUE(f->sync().is_ok());
    auto g = create("tmp");
    ASSERT_TRUE(g->write_at(0, "new content").is_ok());
    ASSERT_TRUE(g->sync().is_ok());
    auto h = create("doomed");
    ASSERT_TRUE(h->sync().is_ok());
  }
  ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
  ASSERT_TRUE(ffs_.rename(t_ / "tmp", t_ / "old").is_ok());  // replaces "old"
  ASSERT_TRUE(ffs_.remove(t_ / "doomed").is_ok());
  EXPECT_EQ(testing::read_bytes(t_ / "old"), "new content");
  EXPECT_FALSE(exists("doomed"));
  auto names = ffs_.list(t_.path());
  EXPECT_EQ(*names, (std::vector<std::string>{"old"}));  // hidden trash is not listed
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  EXPECT_EQ(testing::read_bytes(t_ / "old"), "old content");
  EXPECT_EQ(testing::read_bytes(t_ / "tmp"), "new content");
  EXPECT_TRUE(exists("doomed"));
}

TEST_F(fault_fs_test, DirectorySyncMakesRenameDurable) {
  {
    auto g = create("tmp");
    ASSERT_TRUE(g->write_at(0, "v2").is_ok());
    ASSERT_TRUE(g->sync().is_ok());
  }
  ASSERT_TRUE(ffs_.rename(t_ / "tmp", t_ / "final").is_ok());
  ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  EXPECT_EQ(testing::read_bytes(t_ / "final"), "v2");
  EXPECT_FALSE(exists("tmp"));
}

TEST_F(fault_fs_test, TornPowerLossKeepsOnlyAPrefixOfUnsyncedWrites) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto f = create("t" + std::to_string(seed));
    ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
    ASSERT_TRUE(f->write_at(0, "AAAA").is_ok());
    ASSERT_TRUE(f->sync().is_ok());
    ASSERT_TRUE(f->write_at(4, "BBBBBBBB").is_ok());
    ASSERT_TRUE(f->write_at(12, "CCCCCCCC").is_ok());
    ASSERT_TRUE(ffs_.power_loss({true, seed}).is_ok());
    std::string got = testing::read_bytes(t_ / ("t" + std::to_string(seed)));
    const std::string all = "AAAABBBBBBBBCCCCCCCC";
    ASSERT_GE(got.size(), 4u);
    EXPECT_EQ(got, all.substr(0, got.size())) << "seed " << seed;
  }
}

TEST_F(fault_fs_test, CrashAtStopsTheNthMutationAndEverythingAfter) {
  auto f = create("c");  // mutation 1
  ffs_.reset_counts();
  ffs_.crash_at(2);
  EXPECT_TRUE(f->write_at(0, "one").is_ok());        // 1
  EXPECT_EQ(f->write_at(3, "two").code(), errc::crashed);  // 2: does not happen
  EXPECT_EQ(f->sync().code(), errc::crashed);
  EXPECT_TRUE(ffs_.crashed());
  EXPECT_EQ(testing::read_bytes(t_ / "c"), "one");
  ffs_.restart_after_crash();  // a process crash: unsynced data survives in the page cache
  EXPECT_FALSE(ffs_.crashed());
  EXPECT_EQ(testing::read_bytes(t_ / "c"), "one");
}

TEST_F(fault_fs_test, InjectedErrorsHitTheNthOperationOfAKind) {
  auto f = create("e");
  ffs_.fail(fs_op::sync, 2, errc::io_error);
  EXPECT_TRUE(f->sync().is_ok());
  status st = f->sync();
  EXPECT_EQ(st.code(), errc::io_error);
  EXPECT_NE(st.message().find(t_ / "e"), std::string::npos);
  EXPECT_TRUE(f->sync().is_ok());  // once, not persistent
  ffs_.fail(fs_op::write, 1, errc::no_space, /*persistent=*/true);
  EXPECT_EQ(f->write_at(0, "x").code(), errc::no_space);
  EXPECT_EQ(f->write_at(0, "x").code(), errc::no_space);
}

TEST_F(fault_fs_test, WritesOfAFailedSyncStayLostEvenAfterALaterSuccessfulSync) {
  auto f = create("g");
  ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
  ASSERT_TRUE(f->write_at(0, "durable").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(f->write_at(7, "+A").is_ok());
  ffs_.fail(fs_op::sync, 1, errc::io_error);
  EXPECT_EQ(f->sync().code(), errc::io_error);
  ASSERT_TRUE(f->write_at(9, "+B").is_ok());
  EXPECT_TRUE(f->sync().is_ok());  // succeeds, but cannot vouch for "+A" (fsyncgate)
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  const std::string got = testing::read_bytes(t_ / "g");
  EXPECT_NE(got, "durable+A+B");
  EXPECT_EQ(got.substr(0, 7), "durable");
}

TEST_F(fault_fs_test, AProcessCrashMakesNothingDurable) {
  {
    auto f = create("never-synced");
    ASSERT_TRUE(f->write_at(0, "data").is_ok());
  }
  ffs_.crash_at(1);
  EXPECT_EQ(ffs_.sync_dir(t_.path()).code(), errc::crashed);
  ffs_.restart_after_crash();
  EXPECT_EQ(testing::read_bytes(t_ / "never-synced"), "data");  // the page cache has it
  ASSERT_TRUE(ffs_.power_loss().is_ok());
  EXPECT_FALSE(exists("never-synced"));  // ... the disk does not
}

TEST_F(fault_fs_test, RenameOfAMissingSourceLeavesTheTargetAlone) {
  {
    auto f = create("target");
    ASSERT_TRUE(f->write_at(0, "keep me").is_ok());
    ASSERT_TRUE(f->sync().is_ok());
  }
  ASSERT_TRUE(ffs_.sync_dir(t_.path()).is_ok());
  EXPECT_EQ(ffs_.rename(t_ / "missing", t_ / "target").code(), errc::not_found);
  EXPECT_EQ(testing::read_bytes(t_ / "target"), "keep me");
}

TEST_F(fault_fs_test, KillAtRaisesSigkillJustBeforeTheNthMutation) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = ffs_.open(t_ / "k", open_mode::create);  // mutation 1
    if (!f) ::_exit(3);
    ffs_.kill_at(2);
    if (!(*f)->write_at(0, "first").is_ok()) ::_exit(4);   // mutation 1 after kill_at
    ignore((*f)->write_at(5, "-second"));                  // mutation 2: killed before it
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "exit status " << WEXITSTATUS(wstatus);
  EXPECT_EQ(WTERMSIG(wstatus), SIGKILL);
  EXPECT_EQ(testing::read_bytes(t_ / "k"), "first");
}

}  // namespace
}  // namespace statefold
