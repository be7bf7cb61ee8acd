#include "statefold/planted.hpp"

#ifdef STATEFOLD_PLANTED_BUGS
#include <cstdlib>
#include <cstring>

namespace statefold::planted {

bool active(bug b) noexcept {
  static const char* names[] = {"ack_before_sync",
                                "dedup_off",
                                "checkpoint_renamed_before_sync",
                                "segment_created_without_dir_sync",
                                "fsync_retried_after_eio",
                                "offset_committed_before_durable",
                                "segment_deleted_before_checkpoint",
                                "torn_tail_cut_without_sync"};
  static const char* chosen = std::getenv("STATEFOLD_PLANT");
  return chosen != nullptr && std::strcmp(chosen, names[static_cast<int>(b)]) == 0;
}

}  // namespace statefold::planted
#endif
