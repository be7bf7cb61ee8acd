#pragma once

// memory_file_system: an in-memory statefold::file_system for tests and fuzz targets. No
// system call per operation; one instance is one private file tree, gone with the object.
//
// POSIX-like semantics, matching posix_file_system (runtime/src/posix_fs.cpp) operation by
// operation, with the same error kinds and messages (strerror text included):
// - a missing file or directory, or a missing parent, is errc::not_found (ENOENT);
// - open(create_new) of an existing name is errc::already_exists (EEXIST);
// - create_dirs over a file is errc::already_exists ("exists and is not a directory");
// - the other OS errors posix_fs maps to errc::io_error are io_error here too: a path
//   component that is a file (ENOTDIR, also from exists()), a directory where a file is wanted
//   (EISDIR: open for writing, remove, rename of a file over a directory), rename of a
//   directory over a non-empty one (ENOTEMPTY) or into itself (EINVAL), write/truncate
//   through a read-only handle (EBADF/EINVAL), a name longer than 255 bytes (ENAMETOOLONG),
//   a file larger than max_file_size (EFBIG);
// - list() gives the direct children only, sorted; rename replaces an existing file
//   atomically; a removed or replaced file stays readable through handles opened before;
// - writing past the end leaves a hole of zeros; truncate cuts or extends with zeros;
// - lock() creates the file and is exclusive per file (inode), also within one process:
//   errc::locked while another lock object on it lives (it follows the file across renames).
// Paths: "/" and "" components ("a//b", trailing '/') and "." / ".." are resolved as the
// kernel does (no symlinks); a relative path is relative to "/", so "x" and "/x" are the same
// file. The tree starts with the root directory only.
//
// Not modelled: durability (everything is "durable" at once: sync, write_back and sync_dir
// only check their argument; wrap it in fault_file_system to simulate crashes), permissions,
// ENOSPC, hard links and symlinks. Opening a directory with open_mode::read succeeds as on
// Linux; its size() is 0 and read_at fails (EISDIR).
//
// Thread-safe: one mutex per file system, shared by its open handles and locks (which may
// outlive the file system object).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "statefold/file_system.hpp"

namespace statefold::testing {

class memory_file_system final : public file_system {
 public:
  /// Largest file size accepted by write_at and truncate (EFBIG beyond it).
  static constexpr uint64_t max_file_size = uint64_t{1} << 30;

  memory_file_system();
  ~memory_file_system() override;
  memory_file_system(const memory_file_system&) = delete;
  memory_file_system& operator=(const memory_file_system&) = delete;

  result<std::unique_ptr<file>> open(const std::string& path, open_mode mode) override;
  status rename(const std::string& from, const std::string& to) override;
  status remove(const std::string& path) override;
  result<std::vector<std::string>> list(const std::string& dir) override;
  status sync_dir(const std::string& dir) override;
  status create_dirs(const std::string& dir) override;
  result<bool> exists(const std::string& path) override;
  result<std::unique_ptr<file_lock>> lock(const std::string& path) override;
  result<bool> is_locked(const std::string& path) override;

  struct node;  // implementation (memory_fs.cpp)
  struct tree;

 private:
  std::shared_ptr<tree> t_;
};

}  // namespace statefold::testing
