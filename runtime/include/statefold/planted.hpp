#pragma once

// Planted bugs: known-bad behaviours, compiled in only with -DSTATEFOLD_PLANTED_BUGS=ON, to
// prove that the test harness catches them (scripts/planted_bugs.sh runs it once per bug and
// prints caught/planted). In every other build active() is a constant false and the bad
// branches vanish. A bug is switched on by name: STATEFOLD_PLANT=ack_before_sync.

namespace statefold::planted {

enum class bug {
  ack_before_sync,                  ///< the engine answers before the covering sync
  dedup_off,                        ///< duplicate event IDs are applied again
  checkpoint_renamed_before_sync,   ///< a checkpoint is renamed into place before its data is synced
  segment_created_without_dir_sync, ///< a new segment's directory entry is never synced
  fsync_retried_after_eio,          ///< a failed fdatasync is retried, and trusted if it succeeds
  offset_committed_before_durable,  ///< a source offset is reported committed before its event is durable
  segment_deleted_before_checkpoint,///< segments are released before the replacing checkpoint is durable
  torn_tail_cut_without_sync,       ///< a torn tail is truncated and the truncation never synced
};

#ifdef STATEFOLD_PLANTED_BUGS
bool active(bug b) noexcept;
#else
constexpr bool active(bug) noexcept { return false; }
#endif

}  // namespace statefold::planted
