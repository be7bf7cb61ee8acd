#pragma once

// data_dir: ownership of a statefold data directory.
//
//   DIR/MANIFEST      format version, partition count, key-group count, hash version, dedup
//                     window, the Model's name and codec version, epoch
//   DIR/LOCK          flock'ed for as long as the data_dir object lives
//   DIR/lanes/L-NNNN/ one directory per journal lane (log/, durable)
//   DIR/p-NNNN/       one directory per partition (ckpt/)
//   (layout.hpp spells every name)
//
// Opening takes an exclusive flock on LOCK (a second opener, in this process or another, gets
// errc::locked), reads MANIFEST (or creates it for a new directory), refuses a configuration
// that disagrees with it (errc::config_mismatch: no silent re-sharding, no smaller dedup
// window, no other Model), then bumps the epoch and writes MANIFEST back atomically. A
// directory that holds partition data but no MANIFEST is refused, never initialised anew:
// the MANIFEST's partition count decides which keys each partition's data belongs to. The epoch goes into every segment header this owner
// creates; check_epoch() lets a writer verify it is still the owner before it creates a
// segment (fencing: a stale owner cannot append).
//
// MANIFEST is a small text file, one key=value per line, ending in a crc32c line over the
// lines above it. See docs/log_format.md.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/file_system.hpp"
#include "statefold/journal_lane.hpp"
#include "statefold/layout.hpp"
#include "statefold/partitioner.hpp"
#include "statefold/status.hpp"

namespace statefold {

inline constexpr uint32_t data_format_version = 4;

/// How keys map to partitions, recorded in MANIFEST.
enum class partitioner_kind {
  key_hash,  ///< "key_hash": hash of the key -> key group -> partition (partitioner.hpp)
  source,    ///< "source": by the source's own partition (a Kafka topic partition); not built yet
};
const char* to_string(partitioner_kind k) noexcept;
/// The dedup window a new directory gets when the configuration names none.
inline constexpr uint64_t default_dedup_window = 1u << 18;

struct manifest {
  uint32_t format_version = data_format_version;
  uint32_t partitions = 0;
  /// Journal lanes (journal_lane.hpp): partition p writes to lane p % lanes. 1..partitions.
  uint32_t lanes = 0;
  partitioner_kind partitioner = partitioner_kind::key_hash;
  uint32_t key_groups = default_key_groups;
  uint32_t hash_version = statefold::hash_version;
  /// Event identities remembered per partition: a property of the data (checkpoints carry
  /// the window's content), so it only ever grows.
  uint64_t dedup_window = default_dedup_window;
  std::string model;           ///< the Model's name (model.hpp), empty when it declares none
  uint32_t codec_version = 1;  ///< the Model's codec version
  uint64_t epoch = 0;
  /// Which partitions lane `lane` holds.
  lane_membership membership(uint32_t lane) const;
  uint32_t lane_of(uint32_t partition) const noexcept { return partition % lanes; }
};

/// DIR/lanes/L-0003 (its journal in log/, its published durable LSN in durable).
std::string lane_dir(const std::string& dir, uint32_t lane);

std::string encode_manifest(const manifest& m);
result<manifest> decode_manifest(std::string_view text, const std::string& path);
/// Reads DIR/MANIFEST without locking (for read-only tools).
result<manifest> read_manifest(file_system& fs, const std::string& dir);

struct data_dir_config {
  uint32_t partitions = 4;
  uint32_t key_groups = default_key_groups;
  bool create_if_missing = true;
  /// nullopt: the directory's window (default_dedup_window for a new one). A larger value
  /// grows the stored window; a smaller one is refused (config_mismatch).
  std::optional<uint64_t> dedup_window;
  /// 0 turns deduplication by event ID off. Refused unless this is set, and only for a new
  /// directory or one whose window is 0 already.
  bool allow_no_dedup = false;
  std::string model;           ///< recorded in a new MANIFEST; another one is refused
  uint32_t codec_version = 1;  ///< likewise
  /// How long to retry a LOCK another holder has before errc::locked: a killed owner's lock
  /// can linger for a few milliseconds after the process is gone.
  std::chrono::milliseconds lock_wait{500};
  /// Journal lanes (0: the directory's own; 1 for a new one). An existing directory keeps the
  /// count it was made with: another one is refused (config_mismatch).
  uint32_t lanes = 0;
};

class data_dir {
 public:
  static result<std::unique_ptr<data_dir>> open(file_system& fs, std::string path,
                                                const data_dir_config& config);

  const manifest& info() const noexcept { return manifest_; }
  /// What open() changed besides the epoch ("dedup window grown from 1024 to 4096"), for logs.
  const std::vector<std::string>& notes() const noexcept { return notes_; }
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
  std::vector<std::string> notes_;
  std::unique_ptr<file_lock> lock_;
};

namespace detail {
/// errc::corruption, naming one, when `dir` (whose MANIFEST is missing) holds partition data.
status check_no_orphan_partitions(file_system& fs, const std::string& dir);
}  // namespace detail

}  // namespace statefold
