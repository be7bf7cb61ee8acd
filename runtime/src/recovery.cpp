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

  const lane_membership lane = o.lane.lanes == 0 ? lane_membership::alone(o.partition) : o.lane;
  const bool shared = !lane.is_private();
  SF_ASSIGN_OR_RETURN(uint64_t first_lsn, first_segment_lsn(fs, log_dir));
  SF_ASSIGN_OR_RETURN(auto lsns, checkpoints.list());
  // A released partition's last checkpoint (checkpoint.hpp, Sealing): its lane kept nothing
  // for it since, so the lane starting after that checkpoint's position loses nothing.
  SF_ASSIGN_OR_RETURN(const std::optional<uint64_t> sealed, checkpoints.sealed());

  log_scan_options so;
  lane.apply_to(so);
  so.max_epoch = o.max_epoch;
  so.mode = o.mode;
  so.max_lsn = o.max_lsn;
  so.skip_before_from = shared;
  uint64_t replayed = 0;
  uint64_t after_pseq = 0;  // the checkpoint's: records up to it are in the state already
  uint64_t next_pseq = 1;   // the partition's next record must have this pseq
  log_visitor visit = [&](const log_record& r) -> status {
    if (r.partition != o.partition || r.pseq <= after_pseq) return status::ok();
    if (r.pseq != next_pseq)
      return {errc::corruption,
              std::string(r.file) + " at offset " + std::to_string(r.offset) + " (LSN " +
                  std::to_string(r.lsn) + "): partition " + std::to_string(o.partition) +
                  "'s record " + std::to_string(r.pseq) + " where its record " +
                  std::to_string(next_pseq) + " was due (records " + std::to_string(next_pseq) +
                  ".." + std::to_string(r.pseq - 1) + " of the partition are missing from its lane)"};
    ++next_pseq;
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
    const auto tc = std::chrono::steady_clock::now();
    auto c = checkpoints.load(lsn);
    if (!c) {
      rep.checkpoint_seconds += since(tc);
      // Damage falls back to an older checkpoint; a read error is never taken for damage.
      if (c.error().code() == errc::io_error) return c.error();
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: " + c.error().to_string());
      continue;
    }
    if (c->lane != lane.lane) {
      rep.checkpoint_seconds += since(tc);
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: it records a position in journal lane " +
                          std::to_string(c->lane) + ", but the partition's lane is " +
                          std::to_string(lane.lane));
      continue;
    }
    const bool sealed_here = sealed && *sealed == lsn;
    if (sealed_here) rep.notes.push_back("checkpoint " + std::to_string(lsn) + " is sealed (the partition was released)");
    if (first_lsn > c->position && !sealed_here) {
      rep.checkpoint_seconds += since(tc);
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: it replays from LSN " +
                          std::to_string(c->position) + ", but the log now starts at LSN " +
                          std::to_string(first_lsn));
      continue;
    }
    status loaded = hooks.load_checkpoint(*c);
    rep.checkpoint_seconds += since(tc);
    if (status st = loaded; !st.is_ok()) {
      rep.notes.push_back("checkpoint " + std::to_string(lsn) + " skipped: " + st.to_string());
      continue;
    }
    so.from_lsn = c->position;
    after_pseq = lsn;
    next_pseq = lsn + 1;
    replayed = 0;
    if (hooks.before_replay) hooks.before_replay();
    const auto tr = std::chrono::steady_clock::now();
    SF_ASSIGN_OR_RETURN(out.scan, scan_log(fs, log_dir, so, visit));
    rep.replay_seconds += since(tr);
    // The lane held LSN position - 1 durably when the checkpoint was taken (and, in a private
    // lane, the partition's record `lsn` is the lane's record `lsn`).
    const uint64_t must_reach = shared ? c->position : std::max(c->position, lsn + 1);
    if (!out.scan.segments.empty() && out.scan.next_lsn < must_reach) {
      // A verified checkpoint proves that the lane was durable this far (checkpoints are
      // written only after the sync that covers them), so the log has lost acknowledged
      // records — or the checkpoint is wrong. Either way, nothing here may be guessed.
      std::string what = checkpoints.path_of(lsn) + " verifies and covers up to LSN " +
                         std::to_string(must_reach - 1) + ", but the log ends at LSN " +
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
      out.scan.first_lsn = out.scan.next_lsn = shared ? 1 : lsn + 1;
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
    // A shared lane may have released its start for other partitions; this partition's own
    // records must then still begin at 1, which replay checks.
    if (first_lsn > 1 && (!shared || history_claimed)) {
      std::string why = log_dir + ": no usable checkpoint of partition " + std::to_string(o.partition) +
                        ", and the log starts at LSN " + std::to_string(first_lsn) +
                        ", so the state before it cannot be rebuilt";
      for (const auto& n : rep.notes) why += "; " + n;
      return status{errc::corruption, why};
    }
    hooks.reset();
    so.from_lsn = first_lsn == 0 ? 1 : first_lsn;
    after_pseq = 0;
    next_pseq = 1;
    replayed = 0;
    if (hooks.before_replay) hooks.before_replay();
    const auto tr = std::chrono::steady_clock::now();
    SF_ASSIGN_OR_RETURN(out.scan, scan_log(fs, log_dir, so, visit));
    rep.replay_seconds += since(tr);
  }

  rep.events_replayed = next_pseq - 1 - after_pseq;
  rep.bytes_read = out.scan.bytes_read;
  rep.next_lsn = next_pseq;
  if (!shared) {
    rep.bytes_cut = out.scan.cut_bytes;
    rep.damage = out.scan.damage;
    for (const auto& p : out.scan.stray_files) rep.notes.push_back("removed leftover " + p);
    for (const auto& p : out.scan.discard_segments)
      rep.notes.push_back("discarded segment " + p + " (point-in-time recovery)");
  }
  if (o.repair) {
    // Checkpoints beyond a point-in-time cut go first: should we crash before the log is cut,
    // the next recovery sees the same damage and cuts again, and never meets a checkpoint
    // that describes discarded history.
    if (out.scan.lsn_may_regress || drop_checkpoints)
      SF_RETURN_IF_ERROR(checkpoints.remove_from(next_pseq));
    if (!shared) SF_RETURN_IF_ERROR(repair_log(fs, log_dir, out.scan));
  }
  rep.seconds = since(t0);
  return out;
}

}  // namespace statefold
