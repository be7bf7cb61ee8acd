#pragma once

// data_dir: ownership of a statefold data directory.
//
//   DIR/MANIFEST      format version, partition count, key-group count, hash version, epoch
//   DIR/LOCK          flock'ed for as long as the data_dir object lives
//   DIR/p-NNNN/       one directory per partition (log/ and ckpt/)
//
// Opening takes an exclusive flock on LOCK (a second opener, in this process or another, gets
// errc::locked), reads MANIFEST (or creates it for a new directory), refuses a configuration
// that disagrees with it (errc::config_mismatch: no silent re-sharding), then bumps the epoch
// and writes MANIFEST back atomically. The epoch goes into every segment header this owner
// creates; check_epoch() lets a writer verify it is still the owner before it creates a
// segment (fencing: a stale owner cannot append).
//
// MANIFEST is a small text file, one key=value per line, ending in a crc32c line over the
// lines above it. See docs/log_format.md.

#include <cstdint>
#include <memory>
#include <string>

#include "statefold/file_system.hpp"
#include "statefold/partitioner.hpp"
#include "statefold/status.hpp"

namespace statefold {

inline constexpr uint32_t data_format_version = 1;

struct manifest {
  uint32_t format_version = data_format_version;
  uint32_t partitions = 0;
  uint32_t key_groups = default_key_groups;
  uint32_t hash_version = statefold::hash_version;
  uint64_t epoch = 0;
};

std::string encode_manifest(const manifest& m);
result<manifest> decode_manifest(std::string_view text, const std::string& path);
/// Reads DIR/MANIFEST without locking (for read-only tools).
result<manifest> read_manifest(file_system& fs, const std::string& dir);

struct data_dir_config {
  uint32_t partitions = 4;
  uint32_t key_groups = default_key_groups;
  bool create_if_missing = true;
};

class data_dir {
 public:
  static result<std::unique_ptr<data_dir>> open(file_system& fs, std::string path,
                                                const data_dir_config& config);

  const manifest& info() const noexcept { return manifest_; }
  uint64_t epoch() const noexcept { return manifest_.epoch; }
  const std::string& path() const noexcept { return path_; }
  file_system& fs() const noexcept { return fs_; }
  partitioner make_partitioner() const { return {manifest_.partitions, manifest_.key_groups}; }
  /// DIR/p-0003
  std::string partition_dir(uint32_t partition) const;
  /// errc::fenced when MANIFEST now names another epoch than the one this owner wrote.
  status check_epoch() const;

 private:
  data_dir(file_system& fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  file_system& fs_;
  std::string path_;
  manifest manifest_;
  std::unique_ptr<file_lock> lock_;
};

std::string partition_dir_name(uint32_t partition);

}  // namespace statefold
