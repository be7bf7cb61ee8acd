#include "statefold/partitioner.hpp"

#include <cstdlib>
#include <string>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace statefold {

uint64_t key_hash(std::string_view key) noexcept { return XXH3_64bits(key.data(), key.size()); }

status partitioner::check(uint32_t partitions, uint32_t key_groups) {
  if (key_groups == 0 || key_groups > (1u << 20))
    return {errc::invalid_argument,
            "key group count " + std::to_string(key_groups) + " is outside 1..1048576"};
  if (partitions == 0 || partitions > key_groups)
    return {errc::invalid_argument, "partition count " + std::to_string(partitions) +
                                        " is outside 1..key groups (" +
                                        std::to_string(key_groups) + ")"};
  return status::ok();
}

partitioner::partitioner(uint32_t partitions, uint32_t key_groups)
    : partitions_(partitions), key_groups_(key_groups) {
  if (!check(partitions, key_groups).is_ok()) std::abort();
}

}  // namespace statefold
