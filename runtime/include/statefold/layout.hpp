#pragma once

// The names in a data directory: the one place they are spelled.
//
//   DIR/MANIFEST          what the directory is (data_dir.hpp)
//   DIR/LOCK              held by the one process that writes (file_system::lock)
//   DIR/lanes/L-NNNN/     one per journal lane, NNNN its number (at least 4 digits)
//   DIR/lanes/L-NNNN/log/ its journal: <base LSN, 20 digits>.seg (log_format.hpp), holding the
//                         records of partitions p with p % lanes == NNNN (journal_lane.hpp)
//   DIR/lanes/L-NNNN/durable  its published durable LSN, for readers beside the writer
//                         (live_progress.hpp)
//   DIR/p-NNNN/           one per partition, NNNN its number (at least 4 digits)
//   DIR/p-NNNN/ckpt/      its checkpoints: <its pseq, 20 digits>.ckpt (checkpoint.hpp)
//
// A partition_state opened alone (no data directory) keeps a private lane in its own DIR/log.

#include <cstdint>
#include <string>
#include <string_view>

namespace statefold {

namespace layout {
inline constexpr std::string_view manifest = "MANIFEST";
inline constexpr std::string_view lock = "LOCK";
inline constexpr std::string_view lanes_dir = "lanes";
inline constexpr std::string_view log_dir = "log";
inline constexpr std::string_view checkpoint_dir = "ckpt";
inline constexpr std::string_view durable_file = "durable";
}  // namespace layout

/// "p-0007": the name of a partition's directory.
std::string partition_dir_name(uint32_t partition);
/// True for "p-NNNN" (at least 4 digits): a partition directory's name.
bool is_partition_dir_name(std::string_view name);
/// "L-0000": the name of a journal lane's directory (in DIR/lanes).
std::string lane_dir_name(uint32_t lane);

}  // namespace statefold
