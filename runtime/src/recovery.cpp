#include "statefold/recovery.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

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

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string no_command_offers_pitr(const std::string& would) {
  return "(point-in-time recovery, an operator's choice: engine_options::recovery = point_in_time, "
         "no command offers it yet, would " + would + ")";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The plan

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

std::string partition_plan::describe() const {
  if (!start) return "full replay from LSN " + std::to_string(from_lsn);
  return "checkpoint " + std::to_string(start->lsn) + (sealed ? " (sealed)" : "") + ", then its records after " +
         std::to_string(after_pseq) + " from LSN " + std::to_string(from_lsn);
}

result<partition_plan> plan_partition(uint32_t partition, const lane_facts& lane,
                                      const std::vector<uint64_t>& lsns, std::optional<uint64_t> sealed,
                                      const checkpoint_steps& steps) {
  partition_plan plan;
  plan.partition = partition;
  const bool pitr = lane.mode == recovery_mode::point_in_time;
  for (uint64_t lsn : lsns) {
    const std::string name = "checkpoint " + std::to_string(lsn);
    if (lane.first_lsn == 0 && lsn > 0 && !pitr) {
      plan.notes.push_back(name + " skipped: the log has no segments");
      continue;
    }
    auto c = steps.verify(lsn);
    if (!c) {
      // Damage falls back to an older checkpoint; a read error is never taken for damage.
      if (c.error().code() == errc::io_error) return c.error();
      plan.notes.push_back(name + " skipped: " + c.error().to_string());
      continue;
    }
    if (c->lane != lane.lane) {
      plan.notes.push_back(name + " skipped: it records a position in journal lane " + std::to_string(c->lane) +
                           ", but the partition's lane is " + std::to_string(lane.lane));
      continue;
    }
    // A released partition's last checkpoint (checkpoint.hpp, Sealing): its lane kept nothing
    // for it since, so the lane starting after that checkpoint's position loses nothing.
    const bool sealed_here = sealed && *sealed == lsn;
    if (sealed_here) plan.notes.push_back(name + " is sealed (the partition was released)");
    if (lane.first_lsn > c->position && !sealed_here) {
      plan.notes.push_back(name + " skipped: it replays from LSN " + std::to_string(c->position) +
                           ", but the log now starts at LSN " + std::to_string(lane.first_lsn));
      continue;
    }
    if (steps.load) {
      if (status st = steps.load(lsn); !st.is_ok()) {
        if (st.code() == errc::io_error) return st;
        plan.notes.push_back(name + " skipped: " + st.to_string());
        continue;
      }
    }
    plan.start = std::move(c).value();
    plan.sealed = sealed_here;
    plan.from_lsn = plan.start->position;
    plan.after_pseq = lsn;
    return plan;
  }
  auto refuse = [&](std::string why) -> status {
    for (const auto& n : plan.notes) why += "; " + n;
    return {errc::corruption, std::move(why)};
  };
  const bool history_claimed = !lsns.empty() && lsns.front() > 0;
  if (lane.first_lsn == 0 && history_claimed)
    return refuse(lane.log_dir + ": the log has no segments but checkpoint " + std::to_string(lsns.front()) +
                  " exists, so acknowledged events may be missing; refusing to start " +
                  no_command_offers_pitr("accept the newest valid checkpoint"));
  // A shared lane may have released its start for other partitions; this partition's own
  // records must then still begin at 1, which replay checks.
  if (lane.first_lsn > 1 && (!lane.shared || history_claimed))
    return refuse(lane.log_dir + ": no usable checkpoint of partition " + std::to_string(partition) +
                  ", and the log starts at LSN " + std::to_string(lane.first_lsn) +
                  ": the partition's records before it are gone, so the state cannot be rebuilt");
  plan.from_lsn = lane.first_lsn == 0 ? 1 : lane.first_lsn;
  return plan;
}

std::optional<std::string> covers_beyond_end(const checkpoint_position& c, bool shared, const log_scan& scan) {
  // The lane held LSN position - 1 durably when the checkpoint was taken (and, in a private
  // lane, the partition's record `lsn` is the lane's record `lsn`).
  const uint64_t must_reach = shared ? c.position : std::max(c.position, c.lsn + 1);
  if (scan.segments.empty() || scan.next_lsn >= must_reach) return std::nullopt;
  std::string what = c.path + " verifies and covers up to LSN " + std::to_string(must_reach - 1) +
                     ", but the log ends at LSN " + std::to_string(scan.next_lsn - 1);
  if (!scan.damage.empty()) what += " after cutting damage (" + scan.damage + ")";
  return what;
}

// ---------------------------------------------------------------------------------------------
// The execution

namespace {

/// Runs f(i) for i in [0, n) on up to `threads` threads.
template <class F>
void for_each_parallel(std::size_t n, unsigned threads, F&& f) {
  if (threads <= 1 || n <= 1) {
    for (std::size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::min<std::size_t>(threads, n); ++t)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) f(i);
    });
  for (auto& t : pool) t.join();
}

/// A partition's state during its lane's recovery.
struct part_progress {
  partition_plan plan;
  uint64_t next_pseq = 1;  // its next record must have this pseq
  uint64_t applied = 0;
  std::vector<uint64_t> dropped;  // point-in-time: checkpoints beyond the lane's end
};

}  // namespace

result<lane_recovery_result> recover_lane(file_system& fs, const std::string& log_dir,
                                          const lane_recovery_options& o,
                                          std::vector<partition_recovery>& parts) {
  const auto t0 = std::chrono::steady_clock::now();
  lane_recovery_result out;
  out.reports.resize(parts.size());
  if (parts.empty() && !o.opening) return out;
  const lane_membership lane =
      o.lane.lanes == 0 ? lane_membership::alone(parts.empty() ? 0 : parts.front().partition) : o.lane;
  const bool shared = !lane.is_private();
  const bool pitr = o.mode == recovery_mode::point_in_time;
  lane_facts facts{log_dir, lane.lane, shared, 0, o.mode};
  SF_ASSIGN_OR_RETURN(facts.first_lsn, first_segment_lsn(fs, log_dir));

  // 1. Plans, checkpoints loaded: each partition in parallel (decoding a checkpoint is CPU).
  std::vector<part_progress> prog(parts.size());
  std::vector<status> errors(parts.size());
  auto plan_one = [&](std::size_t i, const std::vector<uint64_t>& exclude) -> status {
    partition_recovery& pr = parts[i];
    recovery_report& rep = out.reports[i];
    const auto tc = std::chrono::steady_clock::now();
    SF_ASSIGN_OR_RETURN(auto lsns, pr.checkpoints->list());
    std::erase_if(lsns, [&](uint64_t l) { return std::find(exclude.begin(), exclude.end(), l) != exclude.end(); });
    SF_ASSIGN_OR_RETURN(const std::optional<uint64_t> sealed, pr.checkpoints->sealed());
    std::optional<loaded_checkpoint> held;
    checkpoint_steps steps;
    steps.verify = [&](uint64_t lsn) -> result<checkpoint_position> {
      SF_ASSIGN_OR_RETURN(auto c, pr.checkpoints->load(lsn));
      checkpoint_position at{c.lsn, c.lane, c.position, pr.checkpoints->path_of(lsn)};
      held = std::move(c);
      return at;
    };
    steps.load = [&](uint64_t) { return pr.hooks.load_checkpoint(*held); };
    auto plan = plan_partition(pr.partition, facts, lsns, sealed, steps);
    rep.checkpoint_seconds += seconds_since(tc);
    if (!plan) return plan.error();
    for (auto& n : plan->notes) rep.notes.push_back(std::move(n));
    plan->notes.clear();
    if (!plan->start) pr.hooks.reset();
    if (pr.hooks.before_replay) pr.hooks.before_replay();
    prog[i].plan = std::move(plan).value();
    prog[i].next_pseq = prog[i].plan.after_pseq + 1;
    prog[i].applied = 0;
    return status::ok();
  };
  for (std::size_t i = 0; i < parts.size(); ++i) {
    out.reports[i].partition = parts[i].partition;
    for (const auto& p : parts[i].checkpoints->removed_at_open())
      out.reports[i].notes.push_back("removed leftover " + p);
  }
  for_each_parallel(parts.size(), o.threads, [&](std::size_t i) { errors[i] = plan_one(i, {}); });
  for (std::size_t i = 0; i < parts.size(); ++i)
    if (!errors[i].is_ok())
      return errors[i].with_context("partition " + std::to_string(parts[i].partition));

  // 2. The lane read by each of up to `threads` threads, which applies its share of the
  //    partitions (the k-th of them on thread k % n) as it reads: no copy, no hand-over. The
  //    lane is read at most min(threads, partitions) times, whatever the partition count:
  //    whole by the first thread when it is being opened, from the oldest position its
  //    partitions need by each of the others. (One reader
  //    handing records to appliers was measured too: on 2 cores it replayed 1.7 M events/s
  //    per partition against 2.6 M for this, docs/benchmarks.md.)
  auto read = [&](const std::vector<std::size_t>& which, bool whole) -> result<log_scan> {
    const std::size_t n = std::max<std::size_t>(1, std::min<std::size_t>(o.threads, which.size()));
    std::vector<result<log_scan>> scans(n, status{errc::failed, "not read"});
    std::atomic<bool> stop{false};  // a share failed: the others need not read on
    std::vector<char> stopped(n, 0);  // the share stopped for that reason
    auto read_share = [&](std::size_t g) {
      std::vector<int32_t> part_of(lane.partitions, -1);
      uint64_t from = UINT64_MAX;
      for (std::size_t k = g; k < which.size(); k += n) {
        part_of[parts[which[k]].partition] = static_cast<int32_t>(which[k]);
        from = std::min(from, prog[which[k]].plan.from_lsn);
      }
      log_scan_options so;
      lane.apply_to(so);
      so.max_epoch = o.max_epoch;
      so.mode = o.mode;
      so.max_lsn = o.max_lsn;
      // Only the first share reads a lane being opened whole (its scan is the lane's); the
      // others start at the oldest position their partitions need.
      const bool read_whole = whole && g == 0;
      so.from_lsn = read_whole || from == UINT64_MAX ? 1 : from;
      so.skip_before_from = shared && !read_whole;
      uint64_t seen = 0;
      log_visitor visit = [&](const log_record& r) -> status {
        if ((++seen & 4095) == 0 && stop.load(std::memory_order_relaxed)) {
          stopped[g] = 1;
          return status{errc::failed, "stopped: another share of the lane failed"};
        }
        if (r.partition >= part_of.size() || part_of[r.partition] < 0) return status::ok();
        const uint32_t i = static_cast<uint32_t>(part_of[r.partition]);
        part_progress& pp = prog[i];
        if (r.lsn < pp.plan.from_lsn || r.pseq <= pp.plan.after_pseq) return status::ok();
        if (r.pseq != pp.next_pseq)
          return {errc::corruption,
                  std::string(r.file) + " at offset " + std::to_string(r.offset) + " (LSN " + std::to_string(r.lsn) +
                      "): partition " + std::to_string(r.partition) + "'s record " + std::to_string(r.pseq) +
                      " where its record " + std::to_string(pp.next_pseq) + " was due (records " +
                      std::to_string(pp.next_pseq) + ".." + std::to_string(r.pseq - 1) +
                      " of the partition are missing from its lane)"};
        ++pp.next_pseq;
        SF_RETURN_IF_ERROR(parts[i].hooks.replay(r));
        if (parts[i].progress && (++pp.applied & ((1u << 20) - 1)) == 0) parts[i].progress(pp.applied, 0);
        return status::ok();
      };
      scans[g] = scan_log(fs, log_dir, so, visit);
      if (!scans[g]) stop.store(true);
    };
    const auto tr = std::chrono::steady_clock::now();
    for_each_parallel(n, static_cast<unsigned>(n), read_share);
    const double took = seconds_since(tr);
    for (std::size_t i : which) out.reports[i].replay_seconds += took;
    for (std::size_t g = 0; g < n; ++g)  // the first error that is not a share stopping for it
      if (!scans[g] && !stopped[g]) return scans[g].error();
    return std::move(scans.front());
  };
  std::vector<std::size_t> all(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) all[i] = i;
  SF_ASSIGN_OR_RETURN(out.scan, read(all, o.opening));

  // 3. Checkpoints that prove more than the lane holds. Point-in-time recovery falls back to
  //    older ones (a second read, for those partitions only); otherwise nothing may be guessed.
  for (;;) {
    std::vector<std::size_t> again;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      part_progress& pp = prog[i];
      if (!pp.plan.start) continue;
      auto lost = covers_beyond_end(*pp.plan.start, shared, out.scan);
      if (!lost) continue;
      if (!pitr)
        return status{errc::corruption,
                      *lost + ": records the checkpoint proves durable are missing from the log; refusing to start " +
                          no_command_offers_pitr("fall back to an older checkpoint and discard LSN " +
                                                 std::to_string(out.scan.next_lsn) + " onwards")}
            .with_context("partition " + std::to_string(parts[i].partition));
      out.reports[i].notes.push_back("checkpoint " + std::to_string(pp.plan.start->lsn) + " dropped: " + *lost);
      pp.dropped.push_back(pp.plan.start->lsn);
      SF_RETURN_IF_ERROR(plan_one(i, pp.dropped).with_context("partition " + std::to_string(parts[i].partition)));
      again.push_back(i);
    }
    if (again.empty()) break;
    SF_ASSIGN_OR_RETURN(auto rescan, read(again, false));
    if (!o.opening) out.scan = std::move(rescan);
  }

  // 4. Reports; repairs (a lane not open yet).
  for (std::size_t i = 0; i < parts.size(); ++i) {
    part_progress& pp = prog[i];
    recovery_report& rep = out.reports[i];
    bool drop_checkpoints = !pp.dropped.empty();
    if (pp.plan.start && out.scan.segments.empty() && pp.plan.after_pseq > 0) {
      // Only point-in-time recovery gets here: the log is gone, the checkpoint is all there
      // is, and events after it (acknowledged or not) are lost. LSNs after the checkpoint will
      // be reused: recyclable segments and newer (damaged) checkpoints could hold records or
      // claims about them.
      rep.notes.push_back("the log has no segments: recovered to checkpoint " + std::to_string(pp.plan.after_pseq) +
                          " (point-in-time); later events are lost");
      out.scan.lsn_may_regress = true;
      drop_checkpoints = true;
    }
    rep.used_checkpoint = pp.plan.start.has_value();
    rep.checkpoint_lsn = pp.plan.after_pseq;
    rep.events_replayed = pp.next_pseq - 1 - pp.plan.after_pseq;
    rep.bytes_read = out.scan.bytes_read;
    rep.next_lsn = pp.next_pseq;
    if (!shared) {
      rep.bytes_cut = out.scan.cut_bytes;
      rep.damage = out.scan.damage;
      for (const auto& p : out.scan.stray_files) rep.notes.push_back("removed leftover " + p);
      for (const auto& p : out.scan.discard_segments)
        rep.notes.push_back("discarded segment " + p + " (point-in-time recovery)");
    }
    // Checkpoints beyond a point-in-time cut go first: should we crash before the log is cut,
    // the next recovery sees the same damage and cuts again, and never meets a checkpoint
    // that describes discarded history.
    if (o.repair && (out.scan.lsn_may_regress || drop_checkpoints))
      SF_RETURN_IF_ERROR(parts[i].checkpoints->remove_from(pp.next_pseq));
  }
  if (out.scan.segments.empty() && !shared && !parts.empty()) {
    // A private lane with no segments continues after its checkpoint (point-in-time).
    out.scan.first_lsn = out.scan.next_lsn = prog[0].next_pseq;
  }
  if (o.repair && o.opening) SF_RETURN_IF_ERROR(repair_log(fs, log_dir, out.scan));
  const double took = seconds_since(t0);
  for (auto& rep : out.reports) rep.seconds = took;
  return out;
}

result<recovery_result> recover_partition(file_system& fs, const std::string& log_dir,
                                          checkpoint_store& checkpoints, const recovery_options& o,
                                          const recovery_hooks& hooks) {
  std::vector<partition_recovery> parts{{o.partition, &checkpoints, hooks, o.progress}};
  lane_recovery_options lo;
  lo.lane = o.lane;
  lo.max_epoch = o.max_epoch;
  lo.mode = o.mode;
  lo.max_lsn = o.max_lsn;
  lo.repair = o.repair;
  // A shared lane is read whole and repaired by whoever opens it, for all its partitions.
  lo.opening = o.lane.lanes == 0 || o.lane.is_private();
  SF_ASSIGN_OR_RETURN(auto r, recover_lane(fs, log_dir, lo, parts));
  return recovery_result{std::move(r.scan), std::move(r.reports.front())};
}

}  // namespace statefold
