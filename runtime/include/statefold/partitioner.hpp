#pragma once

// Routing: key -> 64-bit stable hash -> key group -> partition.
//
//   hash      = XXH3_64bits(key bytes, seed 0)        (hash version 1)
//   key group = hash % key_groups                      (fixed per data directory)
//   partition = key_group * partitions / key_groups    (contiguous ranges of key groups)
//
// The hash and both mappings are part of the on-disk format: the MANIFEST records the
// hash version and the key-group count, and changing either is a format change. Rescaling
// moves whole key groups between partitions, which is why the key group sits in between.

#include <cstdint>
#include <string_view>

#include "statefold/status.hpp"

namespace statefold {

/// The version of the pinned key hash. Bump only with a new on-disk format version.
inline constexpr uint32_t hash_version = 1;
inline constexpr uint32_t default_key_groups = 4096;

/// The pinned 64-bit hash of a key (XXH3, seed 0).
uint64_t key_hash(std::string_view key) noexcept;
/// The key group of a key hash, for a directory of `key_groups` key groups.
inline uint32_t key_group_of_hash(uint64_t hash, uint32_t key_groups) noexcept {
  return static_cast<uint32_t>(hash % key_groups);
}

/// Stateless and immutable: safe to share between threads.
class partitioner {
 public:
  /// Precondition: 1 <= partitions <= key_groups (see `check`); violating it aborts.
  partitioner(uint32_t partitions, uint32_t key_groups = default_key_groups);

  /// An error naming the bad value when the pair cannot form a partitioner.
  static status check(uint32_t partitions, uint32_t key_groups);

  uint32_t partitions() const noexcept { return partitions_; }
  uint32_t key_groups() const noexcept { return key_groups_; }

  uint32_t key_group_of_hash(uint64_t hash) const noexcept {
    return statefold::key_group_of_hash(hash, key_groups_);
  }
  uint32_t partition_of_group(uint32_t group) const noexcept {
    return static_cast<uint32_t>(uint64_t{group} * partitions_ / key_groups_);
  }
  uint32_t key_group_of(std::string_view key) const noexcept {
    return key_group_of_hash(key_hash(key));
  }
  uint32_t partition_of(std::string_view key) const noexcept {
    return partition_of_group(key_group_of(key));
  }

 private:
  uint32_t partitions_;
  uint32_t key_groups_;
};

}  // namespace statefold
