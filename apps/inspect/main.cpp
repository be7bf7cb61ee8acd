// statefold-inspect: offline, read-only inspection of a statefold data directory.
//
//   statefold-inspect verify DIR                      check every byte the runtime would read
//   statefold-inspect dump DIR [--partition P] [--from LSN] [--limit N]   records as JSON Lines
//   statefold-inspect stats DIR                       one JSON object per partition
//
// Exit codes: 0 ok, 1 a problem was found (or the directory could not be read), 2 usage error.
//
// The tool never writes: it uses the runtime's readers (read_manifest, scan_log,
// decode_checkpoint), which never change a file, and it deliberately avoids data_dir::open
// (bumps the epoch), checkpoint_store::open (creates directories, deletes leftovers) and
// repair_log. It takes no lock either, so it must not be pointed at a directory a live
// process is writing (it would see half-written tails). It is Model-agnostic: event bodies
// and entity states are opaque; only the envelope and the framing are decoded.
//
// stdout carries data (the verify report, JSON Lines); progress, if any, goes to stderr and
// only when stderr is a terminal.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "statefold/checkpoint.hpp"
#include "statefold/data_dir.hpp"
#include "statefold/data_reader.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/recovery.hpp"
#include "statefold/status.hpp"

namespace {

using namespace statefold;
// ordered_json keeps the documented field order ("partition" first), which scripts and
// humans reading the output both rely on.
using json = nlohmann::ordered_json;

constexpr int exit_ok = 0;
constexpr int exit_problems = 1;
constexpr int exit_usage = 2;

// ---------------------------------------------------------------------------------------------
// Output helpers

/// One JSON line. Keys, IDs and source names are arbitrary bytes: invalid UTF-8 is replaced
/// (U+FFFD) instead of throwing, so one odd key cannot abort a dump.
void print_json_line(const json& j) {
  std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

/// Progress on stderr, only when a human watches it (stderr is a terminal): scripts that
/// capture stderr get no noise. Rewrites one line in place and erases it when done.
class progress_meter {
 public:
  progress_meter() : enabled_(::isatty(STDERR_FILENO) == 1) {}
  ~progress_meter() { clear(); }
  progress_meter(const progress_meter&) = delete;
  progress_meter& operator=(const progress_meter&) = delete;

  void record(uint32_t lane) {
    if (!enabled_ || (++records_ & ((1u << 20) - 1)) != 0) return;
    std::cerr << '\r' << lane_dir_name(lane) << ": " << records_ << " records read"
              << std::flush;
    shown_ = true;
  }
  void clear() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  uint64_t records_ = 0;
};

/// "1 segment", "3 segments"; "1 entity", "2 entities" with the irregular form given.
std::string plural(uint64_t n, std::string_view one, std::string_view many = {}) {
  if (n == 1) return "1 " + std::string(one);
  return std::to_string(n) + " " + (many.empty() ? std::string(one) + "s" : std::string(many));
}

// ---------------------------------------------------------------------------------------------
// Reading a data directory (never writing)

std::string partition_path(const std::string& dir, uint32_t p) {
  return path_join(dir, partition_dir_name(p));
}
/// The journal of lane `l`: DIR/lanes/L-NNNN/log.
std::string lane_log_dir(const std::string& dir, uint32_t l) {
  return path_join(lane_dir(dir, l), layout::log_dir);
}
std::string ckpt_dir_of(const std::string& dir, uint32_t p) {
  return path_join(partition_path(dir, p), layout::checkpoint_dir);
}

/// "lanes/L-0000/log/00000000000000000001.seg": paths in output are relative to DIR, so that dumps
/// of the same data at two locations compare equal.
std::string relative_to(const std::string& dir, std::string_view path) {
  const std::string prefix = dir.ends_with('/') ? dir : dir + "/";
  if (path.starts_with(prefix)) path.remove_prefix(prefix.size());
  return std::string(path);
}

result<std::vector<std::string>> list_if_present(file_system& fs, const std::string& dir);

/// Reads MANIFEST without locking. A directory without one gets the documented message.
result<manifest> load_manifest(file_system& fs, const std::string& dir) {
  SF_ASSIGN_OR_RETURN(bool has_manifest, fs.exists(path_join(dir, layout::manifest)));
  if (!has_manifest) {
    // Partition data without its MANIFEST is damage, not an empty directory: the MANIFEST's
    // partition count decides which keys each partition holds.
    auto names = list_if_present(fs, dir);
    if (names)
      for (const auto& n : *names)
        if (is_partition_dir_name(n) || n == layout::lanes_dir)
          return status{errc::corruption, path_join(dir, layout::manifest) +
                                              " is missing, but the directory holds partition data (" +
                                              n + "): the runtime refuses to open it"};
    return status{errc::not_found, dir + ": not a statefold data directory (no MANIFEST)"};
  }
  return read_manifest(fs, dir);
}

/// Names in `dir` (empty when it does not exist: a partition that never wrote anything).
result<std::vector<std::string>> list_if_present(file_system& fs, const std::string& dir) {
  SF_ASSIGN_OR_RETURN(bool present, fs.exists(dir));
  if (!present) return std::vector<std::string>{};
  return fs.list(dir);
}

/// Leftovers of interrupted writes that the runtime deletes at its next open: a segment or
/// checkpoint name + ".tmp". Foreign *.tmp files are not ours and are not reported.
result<std::vector<std::string>> temp_files_in(file_system& fs, const std::string& dir) {
  SF_ASSIGN_OR_RETURN(auto names, list_if_present(fs, dir));
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (!n.ends_with(".tmp")) continue;
    const std::string_view stem = std::string_view(n).substr(0, n.size() - 4);
    uint64_t lsn;
    if (log_format::parse_segment_name(stem, lsn) || checkpoint_format::parse_file_name(stem, lsn) ||
        stem == checkpoint_format::sealed_name)
      out.push_back(path_join(dir, n));
  }
  return out;
}

/// What the tool needs from one checkpoint file; the entity bytes are not kept (a checkpoint
/// can be large, and the tool cannot decode states anyway).
struct checkpoint_info {
  uint64_t lsn = 0;  ///< from the file name: the partition's sequence number it covers
  std::string path;
  uint32_t lane = 0;
  uint64_t position = 0;  ///< the lane LSN its replay starts from
  status problem;    ///< ok when the checkpoint verifies and its header LSN matches the name
  uint64_t entities = 0;
  uint64_t dedup_window = 0;
  uint64_t dedup_evictions = 0;
  std::vector<std::pair<std::string, source_progress>> sources;
};

/// Reads and verifies every checkpoint in `ckpt_dir`, oldest first. Lists the directory
/// itself instead of using checkpoint_store::open, which creates it and deletes leftovers.
result<std::vector<checkpoint_info>> read_checkpoints(file_system& fs, const std::string& ckpt_dir,
                                                      uint32_t partition) {
  SF_ASSIGN_OR_RETURN(auto names, list_if_present(fs, ckpt_dir));
  std::vector<checkpoint_info> out;
  for (const auto& n : names) {
    checkpoint_info c;
    if (!checkpoint_format::parse_file_name(n, c.lsn)) continue;
    c.path = path_join(ckpt_dir, n);
    // One at a time: only the summary is kept, so memory stays at one checkpoint's size.
    auto bytes = fs.read_file(c.path);
    auto loaded = bytes ? decode_checkpoint(std::move(bytes).value(), c.path, partition)
                        : result<loaded_checkpoint>(bytes.error());
    if (!loaded) {
      c.problem = loaded.error();
    } else if (loaded->lsn != c.lsn) {
      // The same check checkpoint_store::load makes: recovery would skip this file.
      c.problem = status{errc::corruption, c.path + ": header says LSN " + std::to_string(loaded->lsn) +
                                               " but the file name says " + std::to_string(c.lsn)};
    } else {
      c.lane = loaded->lane;
      c.position = loaded->position;
      c.entities = loaded->entities.size();
      c.dedup_window = loaded->dedup.size();
      c.dedup_evictions = loaded->dedup_evictions;
      c.sources = std::move(loaded->sources);
    }
    out.push_back(std::move(c));
  }
  // Names are zero-padded, so the sorted listing is already in LSN order; sort anyway rather
  // than rely on file_system::list's ordering for correctness.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.lsn < b.lsn; });
  return out;
}

/// The newest checkpoint that verifies, or null: the one recovery would start from.
const checkpoint_info* newest_valid(const std::vector<checkpoint_info>& cps) {
  for (auto it = cps.rbegin(); it != cps.rend(); ++it)
    if (it->problem.is_ok()) return &*it;
  return nullptr;
}

/// "file at offset N (LSN L): " — the location prefix the runtime's own messages use.
std::string record_location(const log_record& r) {
  return std::string(r.file) + " at offset " + std::to_string(r.offset) + " (LSN " +
         std::to_string(r.lsn) + ")";
}

// ---------------------------------------------------------------------------------------------
// Reading a lane: one pass, what each partition has in it

/// One partition's records in its lane, as far as the lane still holds them.
struct partition_in_lane {
  uint64_t records = 0;
  uint64_t first_lsn = 0, first_seq = 0;  ///< its first record in the lane (0: none)
  uint64_t last_seq = 0;
};

struct lane_read {
  log_scan scan;
  std::map<uint32_t, partition_in_lane> partitions;
};

/// Scans lane `l` whole with `o` (membership, epoch, mode, bound set by the caller), tallying
/// each partition's records; `visit` (may be null) sees every record too.
result<lane_read> read_lane(file_system& fs, const std::string& dir, uint32_t l, log_scan_options o,
                            const log_visitor& visit) {
  lane_read out;
  auto tally = [&](const log_record& r) -> status {
    auto& p = out.partitions[r.partition];
    if (p.records++ == 0) {
      p.first_lsn = r.lsn;
      p.first_seq = r.pseq;
    }
    p.last_seq = r.pseq;
    return visit ? visit(r) : status::ok();
  };
  SF_ASSIGN_OR_RETURN(out.scan, scan_log(fs, lane_log_dir(dir, l), o, tally));
  return out;
}

// ---------------------------------------------------------------------------------------------
// verify

struct findings {
  std::vector<std::string> problems;
  std::vector<std::string> warnings;
  std::string summary;  ///< the text after "NAME ok: " when there are no problems
};

/// "3 segments, LSN 1..41233" or "1 segment, no records (next LSN 40001)".
std::string describe_log(const log_scan& scan) {
  std::string s = plural(scan.segments.size(), "segment");
  if (scan.next_lsn > scan.first_lsn)
    s += ", LSN " + std::to_string(scan.first_lsn) + ".." + std::to_string(scan.next_lsn - 1);
  else
    s += ", no records (next LSN " + std::to_string(scan.next_lsn) + ")";
  return s;
}

/// "2 checkpoints (newest LSN 40000, 8123 entities), dedup window 8123" or "no checkpoints".
std::string describe_checkpoints(const std::vector<checkpoint_info>& cps) {
  if (cps.empty()) return "no checkpoints";
  std::string s = plural(cps.size(), "checkpoint");
  if (const checkpoint_info* n = newest_valid(cps))
    s += " (newest LSN " + std::to_string(n->lsn) + ", " +
         plural(n->entities, "entity", "entities") + "), dedup window " +
         std::to_string(n->dedup_window);
  return s;
}

void warn_leftovers(file_system& fs, const std::string& d, findings& f) {
  auto temps = temp_files_in(fs, d);
  if (!temps) {
    f.problems.push_back(temps.error().message());
    return;
  }
  for (const auto& t : *temps)
    f.warnings.push_back(t + ": leftover of an interrupted write (the next open deletes it)");
}

/// Lane `l` whole: every record's CRC, framing, LSN order, partition and sequence, envelope.
findings verify_lane(file_system& fs, const std::string& dir, const manifest& m, uint32_t l,
                     const detail::read_bound& b, progress_meter& progress, lane_read& out) {
  findings f;
  if (!b.live) warn_leftovers(fs, lane_log_dir(dir, l), f);
  // absolute: any damage, a torn tail included, is reported (and nothing is cut: scan_log
  // never writes). max_epoch = MANIFEST's epoch: no owner can have written a newer segment.
  // Beside a live writer: only up to the LSN it has published as durable.
  log_scan_options o;
  m.membership(l).apply_to(o);
  o.max_epoch = b.epoch;
  o.mode = recovery_mode::absolute;
  o.max_lsn = b.max_lsn;
  // Replay would decode every payload; a CRC-valid record with a broken one would stop
  // recovery, so it is damage too.
  auto visit = [&](const log_record& r) -> status {
    progress.record(l);
    const status st = r.type == log_format::record_type::position ? decode_position(r.payload).to_status()
                      : r.type == log_format::record_type::noop   ? decode_noop(r.payload).to_status()
                                                                  : decode_envelope(r.payload).to_status();
    return st.is_ok() ? st : st.with_context(record_location(r));
  };
  auto read = read_lane(fs, dir, l, o, visit);
  progress.clear();
  if (!read) {
    f.problems.push_back(read.error().message());
    return f;
  }
  out = std::move(read).value();
  f.summary = out.scan.segments.empty() ? "empty (no segments)" : describe_log(out.scan);
  if (b.live)
    f.summary += " (a writer is running: verified up to the LSN it has made durable, " +
                 std::to_string(b.max_lsn) + ")";
  return f;
}

/// Partition p's checkpoints, and whether they and its lane describe the same history.
findings verify_partition(file_system& fs, const std::string& dir, const manifest& m, uint32_t p,
                          const lane_read* lane, bool live) {
  findings f;
  const std::string pdir = partition_path(dir, p);
  auto present = fs.exists(pdir);
  if (!present) {
    f.problems.push_back(present.error().message());
    return f;
  }
  if (!*present) {
    // The engine opens (and so creates) every partition; a missing one was deleted.
    f.problems.push_back(pdir + ": partition directory is missing (MANIFEST declares " +
                         plural(m.partitions, "partition") + ")");
    return f;
  }
  const std::string ckpt_dir = ckpt_dir_of(dir, p);
  if (!live) warn_leftovers(fs, ckpt_dir, f);
  auto cps = read_checkpoints(fs, ckpt_dir, p);
  if (!cps) f.problems.push_back(cps.error().message());
  const std::vector<checkpoint_info> no_checkpoints;
  const auto& checkpoints = cps ? *cps : no_checkpoints;
  for (const auto& c : checkpoints)
    if (!c.problem.is_ok()) f.problems.push_back(c.problem.message());
  std::optional<uint64_t> sealed;
  if (auto sd = checkpoint_store::open_read_only(fs, ckpt_dir, p).sealed(); !sd)
    f.problems.push_back(sd.error().message());
  else
    sealed = *sd;

  const uint32_t l = m.lane_of(p);
  const std::string where = lane_log_dir(dir, l);
  if (!lane) {
    f.problems.push_back(where + ": the lane could not be read (above), so partition " + std::to_string(p) +
                         "'s records could not be checked");
    return f;
  }
  const log_scan& scan = lane->scan;
  const auto it = lane->partitions.find(p);
  const partition_in_lane mine = it == lane->partitions.end() ? partition_in_lane{} : it->second;
  const bool shared = !m.membership(l).is_private();

  // Recovery's own plan (recovery.hpp), from what was read here.
  lane_facts facts{where, l, shared, scan.segments.empty() ? 0 : scan.first_lsn, recovery_mode::tolerate_torn_tail};
  std::vector<uint64_t> newest_first;
  for (auto c = checkpoints.rbegin(); c != checkpoints.rend(); ++c) newest_first.push_back(c->lsn);
  checkpoint_steps steps;
  steps.verify = [&](uint64_t lsn) -> result<checkpoint_position> {
    const auto c = std::find_if(checkpoints.begin(), checkpoints.end(), [&](const auto& x) { return x.lsn == lsn; });
    if (!c->problem.is_ok()) return status{errc::corruption, c->problem.message()};  // reported above
    return checkpoint_position{c->lsn, c->lane, c->position, c->path};
  };
  auto plan = plan_partition(p, facts, newest_first, sealed, steps);
  if (!plan) f.problems.push_back(plan.error().message());

  for (const auto& c : checkpoints) {
    if (!c.problem.is_ok()) continue;
    if (c.lane != l) {
      f.problems.push_back(c.path + ": records a position in journal lane " + std::to_string(c.lane) +
                           ", but partition " + std::to_string(p) + "'s lane is " + std::to_string(l) +
                           " (recovery skips it)");
      continue;
    }
    // Rule 3 of recovery, for every checkpoint (recovery meets only the one it starts from).
    if (auto lost = covers_beyond_end({c.lsn, c.lane, c.position, c.path}, shared, scan))
      f.problems.push_back(*lost + ": the lane lost acknowledged records");
    // The lane still holds record `last_seq` of the partition, and every later one after it.
    if (mine.records > 0 && mine.last_seq < c.lsn)
      f.problems.push_back(c.path + ": checkpoint at LSN " + std::to_string(c.lsn) + " of partition " +
                           std::to_string(p) + ", whose records in " + where + " end at " +
                           std::to_string(mine.last_seq) + ": records " + std::to_string(mine.last_seq + 1) +
                           ".." + std::to_string(c.lsn) + " are missing");
  }
  // Replay requires the partition's records to follow its start without a gap.
  const uint64_t covered = plan ? plan->after_pseq : 0;
  if (plan && mine.records > 0 && mine.first_seq > covered + 1)
    f.problems.push_back(where + ": partition " + std::to_string(p) + "'s first record in the lane (LSN " +
                         std::to_string(mine.first_lsn) + ") is its record " + std::to_string(mine.first_seq) +
                         ", but " +
                         (plan->start ? "recovery starts from checkpoint " + std::to_string(covered)
                                      : std::string("there is no valid checkpoint")) +
                         ": records " + std::to_string(covered + 1) + ".." + std::to_string(mine.first_seq - 1) +
                         " are missing");
  const checkpoint_info* newest = newest_valid(checkpoints);
  if (mine.records == 0 && checkpoints.empty())
    f.summary = "empty (no records, no checkpoints)";
  else
    f.summary = (mine.records == 0 ? std::string("no records")
                                   : plural(mine.records, "record") + " (seq " + std::to_string(mine.first_seq) +
                                         ".." + std::to_string(mine.last_seq) + ")") +
                " in lane " + std::to_string(l) + ", " + describe_checkpoints(checkpoints);
  if (sealed) f.summary += "; released, sealed at checkpoint " + std::to_string(*sealed);
  if (plan) f.summary += "; recovery: " + plan->describe();
  if (sealed && newest && newest->lsn > *sealed)
    f.warnings.push_back(ckpt_dir + "/" + std::string(checkpoint_format::sealed_name) + ": seals checkpoint " +
                         std::to_string(*sealed) + ", older than the newest (" + std::to_string(newest->lsn) +
                         "): an activation was interrupted; the next open removes it");
  return f;
}

/// Directories that look like partitions (or lanes) but are not declared by MANIFEST: not read
/// by the runtime, so not damage, but worth a look (a copy from another directory?).
std::vector<std::string> undeclared_dirs(file_system& fs, const std::string& dir, const manifest& m) {
  std::vector<std::string> out;
  auto scan = [&](const std::string& in, std::string_view prefix, uint32_t count, const char* what,
                  std::string (*name_of)(uint32_t)) {
    auto names = fs.list(in);
    if (!names) return;
    for (const auto& n : *names) {
      // prefix + 4 to 10 digits; the round trip through name_of rejects "p-00001".
      if (!n.starts_with(prefix) || n.size() < prefix.size() + 4 || n.size() > prefix.size() + 10) continue;
      uint64_t v = 0;
      bool digits = true;
      for (char c : std::string_view(n).substr(prefix.size())) {
        digits = digits && c >= '0' && c <= '9';
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (digits && v >= count && v <= UINT32_MAX && name_of(static_cast<uint32_t>(v)) == n)
        out.push_back(path_join(in, n) + ": " + what + " directory not declared by MANIFEST (" +
                      std::to_string(count) + "); the runtime ignores it");
    }
  };
  scan(dir, "p-", m.partitions, "partition", &partition_dir_name);
  scan(path_join(dir, layout::lanes_dir), "L-", m.lanes, "lane", &lane_dir_name);
  return out;
}

/// Prints one verdict ("NAME ok: ...", or its errors and "NAME FAILED: n problems").
bool report(const std::string& name, const findings& f) {
  for (const auto& w : f.warnings) std::cout << name << " warning: " << w << '\n';
  for (const auto& e : f.problems) std::cout << name << " error: " << e << '\n';
  if (f.problems.empty()) std::cout << name << " ok: " << f.summary << '\n';
  else std::cout << name << " FAILED: " << plural(f.problems.size(), "problem") << '\n';
  std::cout.flush();  // a long verify shows each verdict as soon as it is known
  return f.problems.empty();
}

int run_verify(file_system& fs, const std::string& dir) {
  auto m = load_manifest(fs, dir);
  if (!m) {
    std::cerr << m.error().message() << '\n';
    return exit_problems;
  }
  bool ok = true;
  // file_system::write_file_atomic writes <name>.tmp, then renames it.
  const std::string manifest_tmp_path = path_join(dir, std::string(layout::manifest) + ".tmp");
  auto manifest_tmp = fs.exists(manifest_tmp_path);
  if (manifest_tmp && *manifest_tmp)
    std::cout << "warning: " << manifest_tmp_path
              << ": leftover of an interrupted MANIFEST write (the next open overwrites it)\n";
  for (const auto& w : undeclared_dirs(fs, dir, *m)) std::cout << "warning: " << w << '\n';

  progress_meter progress;
  for (uint32_t l = 0; l < m->lanes; ++l) {
    // Beside a live writer, a file that changes under the check (a segment recycled, a
    // checkpoint pruned) is read again; with no writer, the first verdict is final. The
    // partitions of the lane are checked in the same attempt, against the same reading.
    lane_read lane;
    findings lf;
    std::map<uint32_t, findings> pf;
    const status read = detail::read_with_retries(fs, dir, l, 20, [&](const detail::read_bound& b) {
      lf = verify_lane(fs, dir, *m, l, b, progress, lane);
      pf.clear();
      const bool lane_ok = lf.problems.empty();
      for (uint32_t p = l; p < m->partitions; p += m->lanes)
        pf[p] = verify_partition(fs, dir, *m, p, lane_ok ? &lane : nullptr, b.live);
      if (!lf.problems.empty()) return status{errc::corruption, lf.problems.front()};
      for (const auto& [p, f] : pf)
        if (!f.problems.empty()) return status{errc::corruption, f.problems.front()};
      return status::ok();
    });
    if (!read.is_ok() && lf.problems.empty() &&
        std::all_of(pf.begin(), pf.end(), [](const auto& x) { return x.second.problems.empty(); }))
      lf.problems.push_back(read.message());
    ok = report(lane_dir_name(l), lf) && ok;
    for (const auto& [p, f] : pf) ok = report(partition_dir_name(p), f) && ok;
  }
  return ok ? exit_ok : exit_problems;
}

// ---------------------------------------------------------------------------------------------
// dump

struct dump_options {
  std::optional<uint32_t> partition;
  uint64_t from_lsn = 1;
  std::optional<uint64_t> limit;
};

// What every dumped record starts with (whose it is, where in its lane) and ends with (its
// size and place on disk); `json` (ordered_json) keeps keys in the order they are set.
json record_head_json(uint32_t lane, const log_record& r) {
  json j;
  j["partition"] = r.partition;
  j["lane"] = lane;
  j["lsn"] = r.lsn;
  j["seq"] = r.pseq;  // the record's sequence number within its partition
  return j;
}
json with_record_tail(json j, const std::string& dir, const log_record& r) {
  j["size"] = r.payload.size();
  j["file"] = relative_to(dir, r.file);
  j["offset"] = r.offset;
  return j;
}

json record_json(const std::string& dir, uint32_t lane, const log_record& r, const envelope_view& e) {
  json j = record_head_json(lane, r);
  j["event_id"] = e.event_id;
  j["key"] = e.key;
  // Optional envelope fields appear only when the writer stored them (the encoding has a
  // flag per field), so absence and "empty" stay distinguishable for scripts.
  if (!e.session.empty()) j["session"] = e.session;
  if (!e.correlation.empty()) j["correlation"] = e.correlation;
  if (!e.causation.empty()) j["causation"] = e.causation;
  if (e.has_source) {
    j["source"] = e.source;
    j["source_offset"] = e.source_offset;
  }
  j["type"] = "event";
  return with_record_tail(std::move(j), dir, r);
}

json noop_json(const std::string& dir, uint32_t lane, const log_record& r, uint64_t time_us) {
  json j = record_head_json(lane, r);
  j["type"] = "noop";
  j["time_us"] = time_us;
  return with_record_tail(std::move(j), dir, r);
}

json position_json(const std::string& dir, uint32_t lane, const log_record& r, const position_view& v) {
  json j = record_head_json(lane, r);
  j["type"] = "position";
  j["source"] = v.source;
  j["next"] = v.progress.next;
  if (v.progress.fingerprint_at != 0) j["fingerprint_at"] = v.progress.fingerprint_at;
  j["time_us"] = v.time_us;
  return with_record_tail(std::move(j), dir, r);
}

int run_dump(file_system& fs, const std::string& dir, const dump_options& opt) {
  auto m = load_manifest(fs, dir);
  if (!m) {
    std::cerr << m.error().message() << '\n';
    return exit_problems;
  }
  if (opt.partition && *opt.partition >= m->partitions) {
    std::cerr << "--partition " << *opt.partition << ": " << dir << " has "
              << plural(m->partitions, "partition") << " (0.." << m->partitions - 1 << ")\n";
    return exit_usage;
  }
  // Lanes in order, each in LSN order; with --partition, only its lane and its records.
  const uint32_t first = opt.partition ? m->lane_of(*opt.partition) : 0;
  const uint32_t last = opt.partition ? first : m->lanes - 1;
  const uint64_t limit = opt.limit.value_or(std::numeric_limits<uint64_t>::max());
  uint64_t emitted = 0;
  progress_meter progress;

  for (uint32_t l = first; l <= last && emitted < limit; ++l) {
    // scan_log's visitor can stop a scan only by returning an error; this flag tells the
    // deliberate stop at --limit apart from a real failure.
    bool limit_reached = false;
    auto visit = [&](const log_record& r) -> status {
      progress.record(l);
      if (opt.partition && r.partition != *opt.partition) return status::ok();
      if (r.type == log_format::record_type::position) {
        auto pos = decode_position(r.payload);
        if (!pos) return pos.error().with_context(record_location(r));
        print_json_line(position_json(dir, l, r, *pos));
      } else if (r.type == log_format::record_type::noop) {
        auto t = decode_noop(r.payload);
        if (!t) return t.error().with_context(record_location(r));
        print_json_line(noop_json(dir, l, r, *t));
      } else {
        auto env = decode_envelope(r.payload);
        if (!env) return env.error().with_context(record_location(r));
        print_json_line(record_json(dir, l, r, *env));
      }
      if (++emitted == limit) {
        limit_reached = true;
        return status{errc::failed, "--limit reached"};
      }
      return status::ok();
    };
    log_scan_options o;
    m->membership(l).apply_to(o);
    o.from_lsn = opt.from_lsn;
    o.mode = recovery_mode::tolerate_torn_tail;  // a torn tail was never acknowledged: skip it
    // Beside a live writer, up to what it has made durable; one attempt, since what is
    // printed cannot be taken back.
    const status read = detail::read_with_retries(fs, dir, l, 1, [&](const detail::read_bound& b) {
      o.max_lsn = b.max_lsn;
      o.max_epoch = b.epoch;
      auto scan = scan_log(fs, lane_log_dir(dir, l), o, visit);
      return limit_reached ? status::ok() : scan.to_status();
    });
    progress.clear();
    if (!read.is_ok()) {
      std::cout.flush();  // the records before the damage stay in order before the error
      std::cerr << lane_dir_name(l) << ": " << read.message() << '\n';
      return exit_problems;
    }
  }
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// stats

json checkpoint_json(const checkpoint_info& c) {
  json sources = json::object();
  for (const auto& [name, p] : c.sources)
    sources[name] = {{"next", p.next}, {"fingerprint_at", p.fingerprint_at}};
  return json{{"lsn", c.lsn},
              {"position", c.position},
              {"entities", c.entities},
              {"dedup_window", c.dedup_window},
              {"dedup_evictions", c.dedup_evictions},
              {"sources", std::move(sources)}};
}

int run_stats(file_system& fs, const std::string& dir) {
  auto m = load_manifest(fs, dir);
  if (!m) {
    std::cerr << m.error().message() << '\n';
    return exit_problems;
  }
  bool failed = false;
  for (uint32_t l = 0; l < m->lanes; ++l) {
    log_scan_options o;
    m->membership(l).apply_to(o);
    o.mode = recovery_mode::tolerate_torn_tail;  // count what recovery would keep
    // Beside a live writer, up to what it has made durable (read again if files change).
    result<lane_read> lane = status{errc::failed, "not read"};
    bool live = false;
    const status read = detail::read_with_retries(fs, dir, l, 20, [&](const detail::read_bound& b) {
      o.max_lsn = b.max_lsn;
      o.max_epoch = b.epoch;
      live = b.live;
      lane = read_lane(fs, dir, l, o, nullptr);
      return lane.to_status();
    });
    if (!read.is_ok() && lane) lane = read;  // the retries' verdict, with its context
    if (!lane) {
      std::cerr << lane_dir_name(l) << ": " << lane.error().message() << '\n';
      failed = true;
    }
    for (uint32_t p = l; p < m->partitions; p += m->lanes) {
      json j;
      j["partition"] = p;
      j["lane"] = l;
      std::vector<std::string> errors;
      if (live) j["live_writer"] = true;
      if (lane) {
        const log_scan& scan = lane->scan;
        uint64_t bytes = 0;
        for (const auto& s : scan.segments) bytes += s.file_bytes;
        j["segments"] = scan.segments.size();  // the lane's, shared with its other partitions
        j["bytes"] = bytes;
        j["first_lsn"] = scan.first_lsn;
        j["next_lsn"] = scan.next_lsn;
        const auto it = lane->partitions.find(p);
        const partition_in_lane mine = it == lane->partitions.end() ? partition_in_lane{} : it->second;
        j["records"] = mine.records;
        if (mine.records > 0) {
          j["first_seq"] = mine.first_seq;
          j["last_seq"] = mine.last_seq;
        }
      } else {
        errors.push_back(lane.error().message());
      }
      auto cps = read_checkpoints(fs, ckpt_dir_of(dir, p), p);
      if (cps) {
        json lsns = json::array();
        for (const auto& c : *cps) lsns.push_back(c.lsn);
        j["checkpoints"] = std::move(lsns);
        const checkpoint_info* newest = newest_valid(*cps);
        j["newest_checkpoint"] = newest ? checkpoint_json(*newest) : json(nullptr);
      } else {
        errors.push_back(cps.error().message());
      }
      if (lane) j["free_segments"] = lane->scan.free_segments.size();
      // A torn tail is not an error for stats (recovery cuts it), but it is worth showing.
      if (lane && !lane->scan.damage.empty()) j["damage"] = lane->scan.damage;
      if (!errors.empty()) {
        j["error"] = errors.front();
        for (const auto& e : errors) std::cerr << partition_dir_name(p) << ": " << e << '\n';
        failed = true;
      }
      print_json_line(j);
      std::cout.flush();
    }
  }
  return failed ? exit_problems : exit_ok;
}

// ---------------------------------------------------------------------------------------------
// command line

int run(int argc, char** argv) {
  CLI::App app{"statefold-inspect: offline, read-only inspection of a statefold data directory"};
  app.require_subcommand(1);

  std::string dir;
  auto* verify = app.add_subcommand(
      "verify", "Check MANIFEST, every log segment and every checkpoint; change nothing");
  verify->add_option("DIR", dir, "data directory")->required();

  dump_options dump_opt;
  auto* dump = app.add_subcommand("dump", "Print log records as JSON Lines");
  dump->add_option("DIR", dir, "data directory")->required();
  // NonNegativeNumber: CLI11 would otherwise wrap "-1" into a huge unsigned value.
  dump->add_option("--partition", dump_opt.partition, "only this partition")
      ->check(CLI::NonNegativeNumber);
  dump->add_option("--from", dump_opt.from_lsn, "first LSN to print (per journal lane)")
      ->check(CLI::NonNegativeNumber);
  dump->add_option("--limit", dump_opt.limit, "stop after this many records in total")
      ->check(CLI::NonNegativeNumber);

  auto* stats = app.add_subcommand("stats", "Per-partition statistics, one JSON object per line");
  stats->add_option("DIR", dir, "data directory")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every other parse error is a usage error (exit 2), whatever
    // CLI11's own exit code for it would be.
    const int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  }

  std::ios::sync_with_stdio(false);  // dump can print millions of lines
  file_system& fs = posix_file_system();
  int rc = exit_ok;
  if (verify->parsed()) rc = run_verify(fs, dir);
  else if (dump->parsed()) rc = run_dump(fs, dir, dump_opt);
  else if (stats->parsed()) rc = run_stats(fs, dir);

  // stdout is the product: a write error (full disk, closed pipe) must not look like success.
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "statefold-inspect: error writing to stdout\n";
    return exit_problems;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // The edge: third-party code (CLI11, nlohmann_json, the standard library) reports by
    // throwing; the runtime itself returns status values.
    std::cerr << "statefold-inspect: " << e.what() << '\n';
    return exit_problems;
  }
}
