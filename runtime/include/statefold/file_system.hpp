#pragma once

// The file-system interface every byte of statefold's storage goes through.
//
// Two implementations: `posix_file_system()` (the real disk: pwrite, fdatasync, rename,
// directory fsync, an OFD lock) and, in the test kit (statefold::testing, never linked by
// production code), `fault_file_system` (statefold/testing/fault_fs.hpp), which wraps another file
// system to inject errors and to simulate a crash or power loss. (The tests add a third, in
// memory: statefold/testing/memory_fs.hpp, a simulated disk with fault_file_system over it.)
//
// Durability rules the callers rely on (the POSIX contract, which fault_file_system enforces):
// - bytes written to a file are durable only after `file::sync()` returns ok;
// - a file's creation, a rename or a removal is durable only after `sync_dir()` of the
//   directory that holds the name;
// - a failed `sync()` leaves the file in an unknown state: callers never retry and trust it.
//
// Threading: a `file` is used by one thread at a time; distinct files and the file system
// object itself may be used from several threads.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/status.hpp"

namespace statefold {

/// An open file. Errors name the path and the byte offset.
class file {
 public:
  virtual ~file() = default;

  /// Reads up to `n` bytes at `offset` into `buf`; fewer only at end of file. An OS error is
  /// an error, never a short read.
  virtual result<std::size_t> read_at(uint64_t offset, char* buf, std::size_t n) = 0;
  /// Writes all of `data` at `offset` (or fails; the file content is then unknown).
  virtual status write_at(uint64_t offset, std::string_view data) = 0;
  /// fdatasync: every byte written so far, and the size, is durable when this returns ok.
  virtual status sync() = 0;
  /// Writes [offset, offset + len) back to the device now and waits for it — a pacing hint
  /// (sync_file_range), NOT a durability guarantee: no metadata, no cache flush. Background
  /// writers use it to keep their share of the device queue small. Default: nothing.
  virtual status write_back(uint64_t /*offset*/, uint64_t /*len*/) { return status::ok(); }
  virtual status truncate(uint64_t size) = 0;
  virtual result<uint64_t> size() = 0;
  virtual const std::string& path() const = 0;
};

/// Held while a data directory is open; releasing it (destruction) drops the lock.
class file_lock {
 public:
  virtual ~file_lock() = default;
};

enum class open_mode {
  read,           ///< existing file, read only
  read_write,     ///< existing file
  create,         ///< create if missing, read-write
  create_new,     ///< must not exist yet (fails with already_exists)
};

class file_system {
 public:
  virtual ~file_system() = default;

  virtual result<std::unique_ptr<file>> open(const std::string& path, open_mode mode) = 0;
  virtual status rename(const std::string& from, const std::string& to) = 0;
  virtual status remove(const std::string& path) = 0;
  /// Names (not paths) of the entries in `dir`, sorted; "." and ".." excluded.
  virtual result<std::vector<std::string>> list(const std::string& dir) = 0;
  /// fsync of a directory: makes creations, renames and removals in it durable.
  virtual status sync_dir(const std::string& dir) = 0;
  /// mkdir -p; every directory it creates is made durable in its parent.
  virtual status create_dirs(const std::string& dir) = 0;
  virtual result<bool> exists(const std::string& path) = 0;
  /// Exclusive, non-blocking lock on `path` (created if missing): an open-file-description
  /// lock (fcntl F_OFD_SETLK), dropped when the returned object is destroyed. errc::locked
  /// when another holder has it — another process, or another handle in this process.
  virtual result<std::unique_ptr<file_lock>> lock(const std::string& path) = 0;
  /// Whether someone holds lock(path) now, found out without taking it and without creating
  /// anything (false when `path` does not exist). For readers beside a live writer.
  virtual result<bool> is_locked(const std::string& path) = 0;

  /// Reads a whole file. Convenience over open + read_at.
  result<std::string> read_file(const std::string& path);
  /// Writes `data` to `path` atomically and durably: temp file, sync, rename, sync_dir.
  status write_file_atomic(const std::string& path, std::string_view data);
};

/// The process-wide POSIX file system.
file_system& posix_file_system();

/// An OS error as a status, the way posix_file_system reports it: ENOSPC/EDQUOT no_space,
/// ENOENT not_found, EEXIST already_exists, anything else io_error; the message is
/// "<what> <path>: <strerror>" (os_error_at adds "at offset <o> (<n> bytes)" to the path).
status os_error(const std::string& what, const std::string& path, int err);
status os_error_at(const std::string& what, const std::string& path, uint64_t offset,
                   std::size_t n, int err);

/// "dir/name" joining helpers; paths are plain strings.
std::string path_join(std::string_view dir, std::string_view name);
std::string parent_dir(std::string_view path);
std::string base_name(std::string_view path);

}  // namespace statefold
