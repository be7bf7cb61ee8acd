// memory_file_system (testkit) must behave like posix_file_system: the same script of
// operations runs against both, in a temporary directory, and must give the same transcript
// (error codes and messages included). Then what the script cannot compare: several
// handles, locks across renames, the interface's helpers.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/testing/memory_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

using testing::memory_file_system;
using testing::temp_dir;

std::string show(const status& st) { return st.is_ok() ? "ok" : st.to_string(); }

template <class T>
std::string show(const result<T>& r, const std::function<std::string(const T&)>& value) {
  return r ? "ok " + value(*r) : r.error().to_string();
}

std::string show(const result<bool>& r) {
  return show<bool>(r, [](bool b) { return std::string(b ? "true" : "false"); });
}

std::string show(const result<std::vector<std::string>>& r) {
  return show<std::vector<std::string>>(r, [](const std::vector<std::string>& names) {
    std::string out = "[";
    for (const auto& n : names) out += n + ";";
    return out + "]";
  });
}

// Runs a fixed script of operations under `r` (an existing, empty directory) and records
// every outcome.
std::vector<std::string> transcript(file_system& fs, const std::string& r) {
  std::vector<std::string> out;
  auto note = [&](const std::string& what, const std::string& outcome) {
    out.push_back(what + " -> " + outcome);
  };
  auto p = [&](const std::string& rel) { return r + "/" + rel; };
  // Opens and returns the handle (null on error), noting the outcome.
  auto open = [&](const std::string& rel, open_mode mode) -> std::unique_ptr<file> {
    auto f = fs.open(p(rel), mode);
    note("open " + rel + " mode " + std::to_string(static_cast<int>(mode)),
         f ? "ok path " + (*f)->path() : f.error().to_string());
    return f ? std::move(f).value() : nullptr;
  };
  auto read = [&](file* f, uint64_t off, std::size_t n) {
    std::string buf(n, '?');
    auto got = f->read_at(off, buf.data(), n);
    if (got) buf.resize(*got);
    note("read " + f->path() + " " + std::to_string(off) + "+" + std::to_string(n),
         got ? "ok '" + buf + "'" : got.error().to_string());
  };
  auto size = [&](file* f) {
    auto s = f->size();
    note("size " + f->path(), s ? "ok " + std::to_string(*s) : s.error().to_string());
  };

  // Missing things.
  note("exists log", show(fs.exists(p("log"))));
  note("list log", show(fs.list(p("log"))));
  note("sync_dir log", show(fs.sync_dir(p("log"))));
  open("log/a", open_mode::read);
  open("log/a", open_mode::read_write);
  open("log/a", open_mode::create);  // parent missing
  note("remove log/a", show(fs.remove(p("log/a"))));
  note("rename log/a", show(fs.rename(p("log/a"), p("b"))));
  note("open empty path", show(fs.open("", open_mode::read).to_status()));

  // Directories.
  note("create_dirs log/sub/deeper", show(fs.create_dirs(p("log/sub/deeper"))));
  note("create_dirs again", show(fs.create_dirs(p("log/sub/deeper"))));
  note("create_dirs trailing slash", show(fs.create_dirs(p("log/other/"))));
  note("exists log", show(fs.exists(p("log"))));
  note("exists log/", show(fs.exists(p("log/"))));
  note("list log", show(fs.list(p("log"))));
  note("list log/ with //", show(fs.list(r + "//log//")));
  note("sync_dir log", show(fs.sync_dir(p("log"))));

  // A file: writes, holes, reads, sizes.
  {
    auto f = open("log/a", open_mode::create_new);
    if (!f) return out;
    note("write hello", show(f->write_at(0, "hello")));
    note("write world at 10", show(f->write_at(10, "world")));
    note("write empty at 100", show(f->write_at(100, "")));
    size(f.get());
    read(f.get(), 0, 20);
    read(f.get(), 3, 4);
    read(f.get(), 15, 4);
    read(f.get(), 100, 4);
    note("sync", show(f->sync()));
    note("write_back", show(f->write_back(0, 15)));
    note("truncate 3", show(f->truncate(3)));
    read(f.get(), 0, 20);
    note("truncate 6", show(f->truncate(6)));
    read(f.get(), 0, 20);
    size(f.get());
  }
  open("log/a", open_mode::create_new);  // exists
  {
    auto f = open("log/a", open_mode::create);  // exists: opened, content kept
    if (f) read(f.get(), 0, 20);
  }
  {
    auto f = open("log/a", open_mode::read);
    if (f) {
      note("write read-only", show(f->write_at(0, "x")));
      note("empty write read-only", show(f->write_at(0, "")));
      note("truncate read-only", show(f->truncate(0)));
      note("sync read-only", show(f->sync()));
      read(f.get(), 0, 3);
    }
  }
  {
    auto f = open("log/a", open_mode::read_write);
    if (f) {
      note("write rw", show(f->write_at(1, "EL")));
      read(f.get(), 0, 10);
    }
  }
  open("log/./sub/../a", open_mode::read);
  open("log/a/", open_mode::read);          // a file with a trailing slash
  open("log/a/x", open_mode::create);       // a file as a directory
  open("log/new/", open_mode::create);      // create with a trailing slash
  note("exists log/a/x", show(fs.exists(p("log/a/x"))));
  note("exists log/a/", show(fs.exists(p("log/a/"))));
  note("list log/a", show(fs.list(p("log/a"))));
  note("sync_dir log/a", show(fs.sync_dir(p("log/a"))));
  note("create_dirs over a file", show(fs.create_dirs(p("log/a/deeper"))));
  note("create_dirs file itself", show(fs.create_dirs(p("log/a"))));
  open(std::string(256, 'n'), open_mode::create);  // name too long
  open("missing/" + std::string(256, 'n'), open_mode::create);  // the missing directory first
  note("exists long name", show(fs.exists(p(std::string(256, 'n')))));
  open(std::string(255, 'n'), open_mode::create);  // just fits
  note("remove 255", show(fs.remove(p(std::string(255, 'n')))));

  // Directories opened as files.
  {
    auto d = open("log/sub", open_mode::read);  // allowed, as on Linux
    if (d) read(d.get(), 0, 4);
  }
  open("log/sub", open_mode::read_write);
  open("log/sub", open_mode::create);
  open("log/sub", open_mode::create_new);
  note("remove dir", show(fs.remove(p("log/sub"))));
  note("remove dir/", show(fs.remove(p("log/sub/"))));

  // Listing: direct children only, sorted.
  open("log/sub/inner", open_mode::create);
  open("log/B", open_mode::create);
  open("log/.hidden", open_mode::create);
  note("list log", show(fs.list(p("log"))));
  note("list log/sub", show(fs.list(p("log/sub"))));

  // Renames.
  note("rename a -> c", show(fs.rename(p("log/a"), p("log/c"))));
  note("exists a", show(fs.exists(p("log/a"))));
  note("exists c", show(fs.exists(p("log/c"))));
  note("rename c -> c", show(fs.rename(p("log/c"), p("log/c"))));
  note("rename missing", show(fs.rename(p("log/missing"), p("log/d"))));
  note("rename into missing dir", show(fs.rename(p("log/c"), p("nodir/d"))));
  note("rename c over B", show(fs.rename(p("log/c"), p("log/B"))));
  {
    auto f = open("log/B", open_mode::read);
    if (f) read(f.get(), 0, 10);
  }
  note("rename file over dir", show(fs.rename(p("log/B"), p("log/other"))));
  note("rename dir over file", show(fs.rename(p("log/other"), p("log/B"))));
  note("rename dir over non-empty dir", show(fs.rename(p("log/other"), p("log/sub"))));
  note("rename dir into itself", show(fs.rename(p("log/sub"), p("log/sub/deeper/x"))));
  note("rename file to x/", show(fs.rename(p("log/B"), p("log/x/"))));
  open("log/other/keep", open_mode::create);
  note("rename dir over empty dir", show(fs.rename(p("log/other"), p("log/sub/deeper"))));
  note("list log", show(fs.list(p("log"))));
  note("list log/sub/deeper", show(fs.list(p("log/sub/deeper"))));
  note("rename dir to new name", show(fs.rename(p("log/sub"), p("moved"))));
  note("list moved/deeper", show(fs.list(p("moved/deeper"))));
  note("exists log/sub", show(fs.exists(p("log/sub"))));

  // Removal.
  note("remove B", show(fs.remove(p("log/B"))));
  note("remove B again", show(fs.remove(p("log/B"))));
  note("remove in missing dir", show(fs.remove(p("nodir/B"))));
  note("remove file/", show(fs.remove(p("log/.hidden/"))));

  // Locks.
  {
    auto l1 = fs.lock(p("log/LOCK"));
    note("lock", show(l1.to_status()));
    auto l2 = fs.lock(p("log/LOCK"));
    note("lock again", show(l2.to_status()));
    note("exists LOCK", show(fs.exists(p("log/LOCK"))));
  }
  {
    auto l3 = fs.lock(p("log/LOCK"));
    note("lock after release", show(l3.to_status()));
  }
  note("lock in missing dir", show(fs.lock(p("nodir/LOCK")).to_status()));
  note("lock a dir", show(fs.lock(p("moved")).to_status()));

  // The interface's helpers.
  note("write_file_atomic", show(fs.write_file_atomic(p("log/MANIFEST"), "v=1\n")));
  note("read_file", show<std::string>(fs.read_file(p("log/MANIFEST")),
                                      [](const std::string& s) { return s; }));
  note("read_file missing", show(fs.read_file(p("log/none")).to_status()));
  note("list log", show(fs.list(p("log"))));
  return out;
}

TEST(memory_fs_test, SameTranscriptAsPosix) {
  temp_dir t;
  const std::vector<std::string> posix = transcript(posix_file_system(), t.path());

  memory_file_system mem;
  ASSERT_TRUE(mem.create_dirs(t.path()).is_ok());
  const std::vector<std::string> memory = transcript(mem, t.path());

  ASSERT_GT(posix.size(), 100u);
  ASSERT_EQ(memory.size(), posix.size());
  for (std::size_t i = 0; i < posix.size(); ++i) EXPECT_EQ(memory[i], posix[i]) << "step " << i;
}

TEST(memory_fs_test, RelativePathsAreRelativeToTheRoot) {
  memory_file_system fs;
  ASSERT_TRUE(fs.create_dirs("d").is_ok());
  ASSERT_TRUE(fs.write_file_atomic("d/f", "x").is_ok());
  EXPECT_TRUE(*fs.exists("/d/f"));
  EXPECT_EQ(*fs.read_file("/d/../d/./f"), "x");
  EXPECT_EQ(*fs.list("/"), std::vector<std::string>{"d"});
  EXPECT_EQ(*fs.list("."), std::vector<std::string>{"d"});
  EXPECT_EQ(*fs.list("/.."), std::vector<std::string>{"d"});
}

TEST(memory_fs_test, HandlesSeeEachOtherAndSurviveRemovalAndReplacement) {
  memory_file_system fs;
  auto a = std::move(fs.open("/a", open_mode::create)).value();
  auto b = std::move(fs.open("/a", open_mode::read)).value();
  ASSERT_TRUE(a->write_at(0, "one").is_ok());
  std::string buf(8, '\0');
  EXPECT_EQ(*b->read_at(0, buf.data(), buf.size()), 3u);
  EXPECT_EQ(buf.substr(0, 3), "one");

  ASSERT_TRUE(fs.write_file_atomic("/a", "two").is_ok());  // replaces the name, not the inode
  EXPECT_EQ(*fs.read_file("/a"), "two");
  EXPECT_EQ(*b->size(), 3u);
  ASSERT_TRUE(fs.remove("/a").is_ok());
  EXPECT_FALSE(*fs.exists("/a"));
  ASSERT_TRUE(a->write_at(3, "!").is_ok());  // an unlinked file is still writable
  EXPECT_EQ(*b->read_at(0, buf.data(), buf.size()), 4u);
  EXPECT_EQ(buf.substr(0, 4), "one!");
  EXPECT_EQ(b->path(), "/a");
}

TEST(memory_fs_test, LockFollowsTheFileAndOutlivesTheFileSystem) {
  std::unique_ptr<file_lock> held;
  std::unique_ptr<file> handle;
  {
    memory_file_system fs;
    held = std::move(fs.lock("/LOCK")).value();
    ASSERT_TRUE(fs.rename("/LOCK", "/L2").is_ok());
    EXPECT_EQ(fs.lock("/L2").to_status().code(), errc::locked);
    EXPECT_TRUE(fs.lock("/LOCK").to_status().is_ok());  // a new file: a new lock
    handle = std::move(fs.open("/f", open_mode::create)).value();
  }
  EXPECT_TRUE(handle->write_at(0, "x").is_ok());  // handles keep the tree alive
  handle.reset();
  held.reset();
}

TEST(memory_fs_test, SizesBeyondTheLimitAreRefused) {
  memory_file_system fs;
  auto f = std::move(fs.open("/big", open_mode::create)).value();
  EXPECT_EQ(f->write_at(memory_file_system::max_file_size, "x").code(), errc::io_error);
  EXPECT_EQ(f->truncate(memory_file_system::max_file_size + 1).code(), errc::io_error);
  EXPECT_EQ(f->write_at(uint64_t{1} << 63, "x").code(), errc::io_error);
  EXPECT_EQ(*f->size(), 0u);
}

}  // namespace
}  // namespace statefold
