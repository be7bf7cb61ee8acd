#include "statefold/recovery.hpp"

#include <chrono>
#include <cstdio>

namespace statefold {

std::string recovery_report::summary() const {
  if (!used_checkpoint && events_replayed == 0 && next_lsn == 1 && bytes_cut == 0 && damage.empty() &&
      notes.empty())
    return "partition " + std::to_string(partition) + ": new, empty";
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "partition %u recovered in %.3f s (checkpoint %.3f s, replay %.3f s): %s, "
                "%llu events replayed (%.1f MB read), next LSN %llu, %llu entities",
                partition, seconds, checkpoint_seconds, replay_seconds,
                used_checkpoint ? ("checkpoint at LSN " + std::to_string(checkpoint_lsn)).c_str()
                                : "no checkpoint (full replay)",
                static_cast<unsigned long long>(events_replayed), bytes_read / 1e6,
                static_cast<unsigned long long>(next_lsn),
                static_cast<unsigned long long>(entities));
  std::string s = buf;
  if (bytes_cut > 0) s += "; cut " + std::to_string(bytes_cut) + " bytes: " + damage;
  else if (!damage.empty()) s += "; " + damage;
  for (const auto& n : notes) s += "; " + n;
  return s;
}

namespace {

// LSN of the first segment present, or 0 when the log has none.
result<uint64_t> first_segment_lsn(file_system& fs, const std::string& log_dir) {
  SF_ASSIGN_OR_RETURN(bool present, fs.exists(log_dir));
  if (!present) return uint64_t{0};
  SF_ASSIGN_OR_RETURN(auto names, fs.list(log_dir));
  uint64_t first = 0;
  for (const auto& n : names) {
    uint64_t base;
    if (log_format::parse_segment_name(n, base) && (first == 0 || base < first)) first = base;
  }
  return first;
}

}  // namespace

result<recovery_result> recover_partition(file_system& fs, const std::string& log_dir,
                                          checkpoint_store& checkpoints,
                                          const recovery_options& o, const recovery_hooks& hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  recovery_result out;
  recovery_report& rep = out.report;
  rep.partition = o.partition;
  for (const auto& p : checkpoints.removed_at_open())
    rep.notes.push_back("removed leftover " + p);

  SF_ASSIGN_OR_RETURN(uint64_t first_lsn, first_segment_lsn(fs, log_dir));
  SF_ASSIGN_OR_RETURN(auto lsns, checkpoints.list());

  log_scan_options so;
  so.partition = o.partition;
  so.max_epoch = o.max_epoch;
  so.mode = o.mode;
  so.max_lsn = o.max_lsn;
  uint64_t replayed = 0;
  log_visitor visit = [&](const log_record& r) -> status {
    SF_RETURN_IF_ERROR(hooks.replay(r));
    if (o.progress && (++replayed & ((1u << 20) - 1)) == 0) o.progress(replayed, 0);
    return status::ok();
  };

  const bool pitr = o.mode == recovery_mode::point_in_time;
  bool drop_checkpoints = false;  // point-in-time: checkpoints beyond the log's end go
  bool done = false;
  for (uint64_t lsn : lsns) {
    if (first_lsn == 0 && lsn > 0 && !pitr) {
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: the log has no segments");
      continue;
    }
    if (first_lsn > lsn + 1) {
      rep.notes.push_back("checkpoint " + std::to_string(lsn) +
                          " skipped: the log now starts at LSN " + std::to_string(first_lsn));
      continue;
    }
    const auto tc = std::chrono::steady_clock::now();
    auto c = checkpoints.load(lsn);
    if (!c) {
      rep.checkpoint_seconds += since(tc);
      // Damage falls back to an older checkpoint; a read error is never taken for damage.
      if (c.error().code() == errc::io_error) return c.error();
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: " + c.error().to_string());
      continue;
    }
    status loaded = hooks.load_checkpoint(*c);
    rep.checkpoint_seconds += since(tc);
    if (status st = loaded; !st.is_ok()) {
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: " + st.to_string());
      continue;
    }
    so.from_lsn = lsn + 1;
    replayed = 0;
    if (hooks.before_replay) hooks.before_replay();
    const auto tr = std::chrono::steady_clock::now();
    SF_ASSIGN_OR_RETURN(out.scan, scan_log(fs, log_dir, so, visit));
    rep.replay_seconds += since(tr);
    if (!out.scan.segments.empty() && out.scan.next_lsn < lsn + 1) {
      // A verified checkpoint proves that LSN `lsn` was durable (checkpoints are written only
      // after the sync that covers them), so the log has lost acknowledged records — or the
      // checkpoint is wrong. Either way, nothing here may be guessed.
      std::string what = checkpoints.path_of(lsn) + " verifies and covers up to LSN " +
                         std::to_string(lsn) + ", but the log ends at LSN " +
                         std::to_string(out.scan.next_lsn - 1);
      if (!out.scan.damage.empty()) what += " after cutting damage (" + out.scan.damage + ")";
      if (!pitr)
        return status{errc::corruption,
                      what + ": records the checkpoint proves durable are missing from the log; "
                             "refusing to start (point-in-time recovery, an operator's choice: "
                             "engine_options::recovery = point_in_time, no command offers it yet, "
                             "would fall back to an older checkpoint and discard LSN " +
                          std::to_string(out.scan.next_lsn) + " onwards)"};
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " dropped: " + what);
      drop_checkpoints = true;
      continue;
    }
    if (out.scan.segments.empty()) {
      // Only point-in-time recovery gets here with lsn > 0: the log is gone, the checkpoint
      // is all there is, and events after it (acknowledged or not) are lost.
      if (lsn > 0) {
        rep.notes.push_back("the log has no segments: recovered to checkpoint " +
                            std::to_string(lsn) + " (point-in-time); later events are lost");
        // LSNs after the checkpoint will be reused: recyclable segments and newer (damaged)
        // checkpoints could hold records or claims about them.
        out.scan.lsn_may_regress = true;
        drop_checkpoints = true;
      }
      out.scan.first_lsn = out.scan.next_lsn = lsn + 1;
    }
    rep.used_checkpoint = true;
    rep.checkpoint_lsn = lsn;
    done = true;
    break;
  }
  if (!done) {
    const bool history_claimed = !lsns.empty() && lsns.front() > 0;
    if (first_lsn == 0 && history_claimed) {
      std::string why = log_dir + ": the log has no segments but checkpoint " +
                        std::to_string(lsns.front()) +
                        " exists, so acknowledged events may be missing; refusing to start "
                        "(point-in-time recovery, an operator's choice: engine_options::recovery = "
                        "point_in_time, no command offers it yet, would accept the newest valid "
                        "checkpoint)";
      for (const auto& n : rep.notes) why += "; " + n;
      return status{errc::corruption, why};
    }
    if (first_lsn > 1) {
      std::string why = log_dir + ": no usable checkpoint, and the log starts at LSN " +
                        std::to_string(first_lsn) + ", so the state before it cannot be rebuilt";
      for (const auto& n : rep.notes) why += "; " + n;
      return status{errc::corruption, why};
    }
    hooks.reset();
    so.from_lsn = 1;
    replayed = 0;
    if (hooks.before_replay) hooks.before_replay();
    const auto tr = std::chrono::steady_clock::now();
    SF_ASSIGN_OR_RETURN(out.scan, scan_log(fs, log_dir, so, visit));
    rep.replay_seconds += since(tr);
  }

  rep.events_replayed = out.scan.records_visited;
  rep.bytes_read = out.scan.bytes_read;
  rep.next_lsn = out.scan.next_lsn;
  rep.bytes_cut = out.scan.cut_bytes;
  rep.damage = out.scan.damage;
  for (const auto& p : out.scan.stray_files) rep.notes.push_back("removed leftover " + p);
  for (const auto& p : out.scan.discard_segments)
    rep.notes.push_back("discarded segment " + p + " (point-in-time recovery)");
  if (o.repair) {
    // Checkpoints beyond a point-in-time cut go first: should we crash before the log is cut,
    // the next recovery sees the same damage and cuts again, and never meets a checkpoint
    // that describes discarded history.
    if (out.scan.lsn_may_regress || drop_checkpoints)
      SF_RETURN_IF_ERROR(checkpoints.remove_from(out.scan.next_lsn));
    SF_RETURN_IF_ERROR(repair_log(fs, log_dir, out.scan));
  }
  rep.seconds = since(t0);
  return out;
}

}  // namespace statefold
