// statefold-bench: how many events per second statefold makes durable, how that changes with
// the number of partitions, how fast it comes back after a kill — each next to the baselines
// of ../shared/BENCHMARKS.md, measured in the same run on the same generated events.
//
//   scaling     engine<Model> at 1..64 partitions: closed loop (max throughput) and open loop
//               at half of it (latency from each batch's intended send time, so queueing is
//               not hidden), on the headline workload (sync, 100 B, 1 M keys, 5 % dup)
//   baselines   tight loop (one thread: the same dedup + apply + encode + CRC + group commit,
//               no actors), Redis (the seed's stateless consumer, appendfsync always) and
//               RocksDB (embedded store, synced write batch per group), same workload
//   variations  at 2 partitions: durability interval/none (with the baselines at none),
//               1 KiB events, 10 M keys, Zipf keys, no duplicates
//   recovery    a child process loads C entities, checkpoints, appends L more events and is
//               killed (SIGKILL); the reopen is timed
//
// Output: a table on stdout, a JSON file and a PNG plot (gnuplot). docs/benchmarks.md explains
// every column. Usage: statefold-bench --help; `--quick` is the < 2 minute preset.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <malloc.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "baseline_run.hpp"  // proc_field, split_by_key
#include "baselines.hpp"
#include "harness.hpp"
#include "statefold/engine.hpp"
#include "workload.hpp"

extern char** environ;

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;
using json = nlohmann::json;
using sf_engine = engine<counter_model>;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "statefold-bench: %s\n", what.c_str());
  std::exit(1);
}

void progress(const std::string& what) {
  std::fprintf(stderr, "[%7.1f s] %s\n", now_seconds() - [] {
    static const double start = now_seconds();
    return start;
  }(), what.c_str());
}

// -- process figures ------------------------------------------------------------------------

uint64_t proc_self(const char* file, std::string_view field, uint64_t unit) {
  return proc_field(std::string("/proc/self/") + file, field).value_or(0) * unit;
}
uint64_t rss_bytes() { return proc_self("status", "VmRSS", 1024); }
uint64_t peak_rss_bytes() { return proc_self("status", "VmHWM", 1024); }
uint64_t write_bytes() { return proc_self("io", "write_bytes", 1); }
// Hands freed heap back to the OS first, so that RSS differences measure live memory.
uint64_t live_rss_bytes() {
  ::malloc_trim(0);
  return rss_bytes();
}
// Memory per entity from two live_rss_bytes() readings; 0 (shown "-") when noise wins.
double per_entity(uint64_t before, uint64_t after, uint64_t entities) {
  return after > before && entities > 0 ? static_cast<double>(after - before) / static_cast<double>(entities) : 0;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// Removes the previous run's files and waits until the file system has settled. On a volume
// mounted with `discard` (this VM's root is), freed blocks are trimmed inside the next journal
// commit: without the sync, a run's first fsyncs paid for the last run's gigabytes (stalls of
// 100-200 ms that moved with the order of the runs).
void fresh_dir(const std::string& dir) {
  fsys::remove_all(dir);
  ::sync();
}

// -- options ---------------------------------------------------------------------------------

struct options {
  std::vector<uint32_t> partitions = {1, 2, 4, 8, 16, 64};
  /// Journal lanes the partitions share (engine_options::lanes, at most one per partition);
  /// 0: one per partition, the layout before shared lanes.
  uint32_t lanes = 1;
  uint64_t events = 2'000'000;          // per statefold / tight-loop run
  uint64_t baseline_events = 300'000;   // per Redis / RocksDB run: they are 10-50x slower
  uint64_t keys = 1'000'000;
  uint64_t big_keys = 10'000'000;       // the "10 M keys" variation
  int reps = 3;
  int producers = 2;
  std::size_t batch = 256;
  /// Producers' batches hold at least this many events per partition (batch = max(batch,
  /// per_message x partitions)): one message per partition carries that many, whatever the
  /// partition count, so the sweep measures the engine, not CAF's cost per message.
  std::size_t per_message = 32;
  std::size_t batch_for(uint32_t partitions) const { return std::max(batch, per_message * partitions); }
  uint32_t vary_partitions = 2;
  uint64_t recovery_entities = 10'000'000;
  uint64_t recovery_tail = 1'000'000;
  uint32_t recovery_partitions = 2;
  std::string sections = "scaling,baselines,variations,recovery";
  std::string dir = "statefold-bench-data";
  std::string json_path = "statefold-bench.json";
  std::string plot_path = "statefold-bench.png";
  std::string command;
  std::string trace;  // per-batch latencies of the open-loop runs, for finding pauses

  bool wants(const std::string& s) const { return ("," + sections + ",").find("," + s + ",") != std::string::npos; }
};

// -- results ---------------------------------------------------------------------------------

// One line of the table: a system on a workload under a load, with one sample per repetition.
struct row {
  std::string section, system, workload, durability, load;
  uint32_t partitions = 0;  // 0: not partitioned (tight loop, Redis, RocksDB)
  std::map<std::string, std::vector<double>> samples;
  std::string note;

  double median(const std::string& m) const {
    auto it = samples.find(m);
    if (it == samples.end() || it->second.empty()) return 0;
    sample_set s{m, "", it->second};
    return s.median();
  }
  bool has(const std::string& m) const { return samples.count(m) && !samples.at(m).empty(); }
};

class results {
 public:
  row& at(const std::string& section, const std::string& system, uint32_t partitions,
          const std::string& workload, const std::string& durability, const std::string& load) {
    for (auto& r : rows_)
      if (r.section == section && r.system == system && r.partitions == partitions &&
          r.workload == workload && r.durability == durability && r.load == load)
        return r;
    rows_.push_back({section, system, workload, durability, load, partitions, {}, {}});
    return rows_.back();
  }
  const row* find(const std::string& system, uint32_t partitions, const std::string& workload,
                  const std::string& durability, const std::string& load) const {
    for (const auto& r : rows_)
      if (r.system == system && r.partitions == partitions && r.workload == workload &&
          r.durability == durability && r.load == load)
        return &r;
    return nullptr;
  }
  const std::vector<row>& rows() const { return rows_; }
  json recovery = json::object();
  json stateless_recovery = json::object();
  json idle = json::array();  // the fixed cost of partitions (run_idle)

 private:
  std::vector<row> rows_;
};

// What one run measured; every system fills what it can.
struct run_out {
  double events_per_s = 0;
  double recovery_seconds = 0;  // Redis with measure_recovery
  std::vector<double> latencies_ms;  // per batch / group
  std::vector<std::pair<double, double>> trace;  // (intended send time - t0 in s, latency ms)
  double bytes_written_per_event = 0;
  double peak_rss_mb = 0;            // above the process's memory before the system opened
  double bytes_per_entity = 0;
  uint64_t applied = 0, duplicates = 0, syncs = 0;
  double batch = 0;  // events per producer batch (statefold runs)
  std::string note;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void record(row& r, run_out& o) {
  r.samples["events/s"].push_back(o.events_per_s);
  if (!o.latencies_ms.empty()) {
    r.samples["p50 ms"].push_back(percentile(o.latencies_ms, 0.50));
    r.samples["p99 ms"].push_back(percentile(o.latencies_ms, 0.99));
    r.samples["p999 ms"].push_back(percentile(o.latencies_ms, 0.999));
  }
  if (o.bytes_written_per_event > 0) r.samples["written B/event"].push_back(o.bytes_written_per_event);
  if (o.peak_rss_mb > 0) r.samples["peak RSS MB"].push_back(o.peak_rss_mb);
  if (o.bytes_per_entity > 0) r.samples["B/entity"].push_back(o.bytes_per_entity);
  if (o.batch > 0) r.samples["batch"].push_back(o.batch);
  if (o.syncs > 0) r.samples["events/sync"].push_back(o.syncs ? static_cast<double>(o.applied + o.duplicates) / o.syncs : 0);
  if (!o.note.empty()) r.note = o.note;
}

// Every system must apply each distinct event exactly once: a benchmark of a wrong answer is
// worth nothing.
void check_counts(const std::string& who, const run_out& o, uint64_t events, uint64_t distinct) {
  if (o.applied != distinct || o.applied + o.duplicates != events)
    die(who + ": applied " + std::to_string(o.applied) + " and duplicates " +
        std::to_string(o.duplicates) + " for " + std::to_string(events) + " events with " +
        std::to_string(distinct) + " distinct IDs — the run is wrong, not slow");
}

// -- statefold ---------------------------------------------------------------------------------

const char* name_of(durability d) { return d == durability::sync ? "sync" : d == durability::interval ? "interval" : "none"; }

struct engine_config {
  uint32_t partitions = 2;
  durability mode = durability::sync;
};

engine_options make_engine_options(const options& o, const engine_config& c, const workload_spec& w) {
  engine_options eo;
  eo.dir = o.dir + "/engine";
  eo.partitions = c.partitions;
  eo.lanes = o.lanes == 0 ? c.partitions : std::min(o.lanes, c.partitions);
  eo.mode = c.mode;
  eo.expected_entities = w.keys;
  eo.max_in_flight = 64 * o.batch;
  // Engine defaults otherwise: checkpoints every 1 M events per partition, segments sized by
  // partition count and prepared ahead — what a service gets without tuning.
  return eo;
}

// Submits one warm-up event per key and waits for all answers: every key has state, and the
// engine's threads and tables are warm, before the clock starts.
void warm_up(sf_engine& e, const workload_spec& w, std::size_t batch) {
  std::atomic<uint64_t> answered{0};
  uint64_t sent = 0;
  for (uint64_t i = 0; i < w.keys;) {
    std::vector<event> b;
    for (; i < w.keys && b.size() < batch; ++i) b.push_back(warmup_event(i, w.event_bytes));
    sent += b.size();
    status st = e.submit_batch(std::move(b), [&](std::vector<submit_result>& rs) {
      for (auto& r : rs)
        if (r.kind != outcome::applied) die("warm-up event not applied: " + r.reason);
      answered += rs.size();
    });
    if (!st.is_ok()) die("warm-up: " + st.to_string());
  }
  while (answered.load() < sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// rate_per_s == 0: closed loop; else the producers pace their batches to that total rate.
run_out run_engine(const options& o, const engine_config& c, const workload_spec& w,
                   const std::vector<event>& events, double rate_per_s) {
  fresh_dir(o.dir);
  // Batches are built before the clock starts and moved in: the timed region measures the
  // engine, not the producers' string copies (which compete for the same cores).
  // Each producer owns the keys with key_hash(key) % producers == its index, in event order,
  // as a consumer owns its topic partitions (split_by_key, as for the baselines). A redelivered
  // duplicate then always follows its first delivery on the same producer. (Splitting one
  // stream between producers reordered it by whole seconds when one producer starved in
  // backpressure: duplicates older than the dedup window came back as new events.)
  std::vector<std::vector<std::vector<event>>> prebuilt(o.producers);
  const auto owned = split_by_key(events, o.producers);
  const std::size_t batch = o.batch_for(c.partitions);
  for (int t = 0; t < o.producers; ++t)
    for (std::size_t i = 0; i < owned[t].size(); i += batch) {
      auto& b = prebuilt[t].emplace_back();
      for (std::size_t j = i; j < std::min(owned[t].size(), i + batch); ++j) b.push_back(*owned[t][j]);
    }
  const uint64_t rss_base = live_rss_bytes();
  reset_peak_rss();
  auto opened = sf_engine::open(make_engine_options(o, c, w));
  if (!opened) die("open: " + opened.error().to_string());
  sf_engine& e = *opened.value();
  warm_up(e, w, batch);
  run_out r;
  r.batch = static_cast<double>(batch);
  uint64_t entities = 0;
  for (const auto& s : e.stats()) entities += s.core.entities;
  r.bytes_per_entity = per_entity(rss_base, live_rss_bytes(), entities);
  uint64_t syncs_before = 0;
  for (const auto& s : e.stats()) syncs_before += s.syncs;

  std::mutex mu;
  r.latencies_ms.reserve(events.size() / batch + o.producers);
  std::atomic<uint64_t> applied{0}, duplicates{0}, answered{0};
  const uint64_t written0 = write_bytes();
  const double t0 = now_seconds();
  std::vector<std::thread> producers;
  for (int t = 0; t < o.producers; ++t) {
    producers.emplace_back([&, t] {
      const double interval = rate_per_s > 0 ? static_cast<double>(batch * o.producers) / rate_per_s : 0;
      for (std::size_t n = 0; n < prebuilt[t].size(); ++n) {
        const double intended = rate_per_s > 0 ? t0 + static_cast<double>(n) * interval : now_seconds();
        // Sleep, not spin: on 2 cores a spinning producer takes a core from the engine. A
        // late wake-up is charged to the batch (latency counts from `intended`).
        if (rate_per_s > 0 && now_seconds() < intended)
          std::this_thread::sleep_for(std::chrono::duration<double>(intended - now_seconds()));
        status st = e.submit_batch(std::move(prebuilt[t][n]), [&, intended](std::vector<submit_result>& rs) {
          const double ms = (now_seconds() - intended) * 1e3;
          uint64_t a = 0, d = 0;
          for (auto& x : rs) {
            a += x.kind == outcome::applied;
            d += x.kind == outcome::duplicate;
          }
          applied += a;
          duplicates += d;
          {
            std::lock_guard lock(mu);
            r.latencies_ms.push_back(ms);
            r.trace.emplace_back(intended - t0, ms);
          }
          answered += rs.size();
        });
        if (!st.is_ok()) die("submit: " + st.to_string());
      }
    });
  }
  for (auto& p : producers) p.join();
  while (answered.load() < events.size()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  const double dt = now_seconds() - t0;
  r.bytes_written_per_event = static_cast<double>(write_bytes() - written0) / static_cast<double>(events.size());
  r.peak_rss_mb = static_cast<double>(peak_rss_bytes() - std::min(peak_rss_bytes(), rss_base)) / 1e6;
  for (const auto& s : e.stats()) r.syncs += s.syncs;
  r.syncs -= syncs_before;
  if (status st = e.close(); !st.is_ok()) die("close: " + st.to_string());
  if (!o.trace.empty() && rate_per_s > 0) {
    std::ofstream t(o.trace, std::ios::app);
    t << "# " << c.partitions << " partitions, " << name_of(c.mode) << ", " << w.describe()
      << ", offered " << rate_per_s << "/s, t0 " << t0 << ": send time (s), latency (ms)\n";
    std::sort(r.trace.begin(), r.trace.end());
    for (const auto& [at, ms] : r.trace) t << at << " " << ms << "\n";
  }
  r.events_per_s = static_cast<double>(events.size()) / dt;
  r.applied = applied;
  r.duplicates = duplicates;
  return r;
}

// -- tight loop ----------------------------------------------------------------------------------

// One thread, partition_state directly: the same dedup + apply + encode + CRC, a group commit
// every 256 KiB of log. Same warm-up, same segment handling (prepared ahead) as the engine.
run_out run_tight(const options& o, const workload_spec& w, const std::vector<event>& events) {
  fresh_dir(o.dir);
  const uint64_t rss_base = live_rss_bytes();
  reset_peak_rss();
  partition_options po;
  po.dir = o.dir + "/tight";
  po.expected_entities = w.keys;
  po.log.preparer = std::make_shared<segment_preparer>();
  auto p = partition_state<counter_model>::open(posix_file_system(), po);
  if (!p) die("tight loop: " + p.error().to_string());
  auto& ps = **p;
  const std::size_t group = 256 * 1024 / (w.event_bytes + 20);
  auto sync = [&] {
    if (auto s = ps.sync(); !s) die("tight loop: " + s.error().to_string());
  };
  for (uint64_t i = 0; i < w.keys; ++i) {
    if (ps.apply(warmup_event(i, w.event_bytes)).kind != outcome::applied) die("tight loop warm-up");
    if ((i + 1) % group == 0) sync();
  }
  sync();
  run_out r;
  r.bytes_per_entity = per_entity(rss_base, live_rss_bytes(), w.keys);
  const uint64_t written0 = write_bytes();
  const double t0 = now_seconds();
  std::size_t in_group = 0;
  for (const auto& e : events) {
    auto a = ps.apply(e);
    r.applied += a.kind == outcome::applied;
    r.duplicates += a.kind == outcome::duplicate;
    if (++in_group == group) {
      sync();
      ++r.syncs;
      in_group = 0;
    }
  }
  sync();
  ++r.syncs;
  r.events_per_s = static_cast<double>(events.size()) / (now_seconds() - t0);
  r.bytes_written_per_event = static_cast<double>(write_bytes() - written0) / static_cast<double>(events.size());
  r.peak_rss_mb = static_cast<double>(peak_rss_bytes() - std::min(peak_rss_bytes(), rss_base)) / 1e6;
  return r;
}

// -- baselines -----------------------------------------------------------------------------------

run_out run_baseline(const options& o, const std::string& which, store_durability d,
                     const std::vector<event>& events, double rate_per_s, int clients = 0,
                     bool measure_recovery = false) {
  fresh_dir(o.dir);
  baseline_options bo;
  bo.durability = d;
  bo.group = o.batch;
  bo.clients = clients ? clients : o.producers;
  bo.measure_recovery = measure_recovery;
  bo.rate_per_s = rate_per_s;
  bo.dir = o.dir + "/" + which;
  fsys::create_directories(bo.dir);
  const uint64_t rss_base = live_rss_bytes();
  reset_peak_rss();
  auto res = which == "redis" ? run_redis_baseline(bo, events) : run_rocksdb_baseline(bo, events);
  if (!res) die(which + ": " + res.error().to_string());
  run_out r;
  r.events_per_s = res->events_per_s;
  r.applied = res->applied;
  r.duplicates = res->duplicates;
  r.bytes_written_per_event = res->bytes_written_per_event;
  r.bytes_per_entity = res->bytes_per_entity;
  // Redis: the server's peak; RocksDB: this process above its memory before the run.
  const uint64_t own_peak = peak_rss_bytes() - std::min(peak_rss_bytes(), rss_base);
  r.peak_rss_mb = static_cast<double>(res->peak_rss_bytes ? res->peak_rss_bytes : own_peak) / 1e6;
  r.note = res->note;
  r.recovery_seconds = res->recovery_seconds;
  // The baselines report percentiles, not samples: {p50, p99, p999} (record_baseline).
  r.latencies_ms = {res->p50_ms, res->p99_ms, res->p999_ms};
  fresh_dir(o.dir);
  return r;
}

void record_baseline(row& r, const run_out& o) {
  r.samples["events/s"].push_back(o.events_per_s);
  if (o.latencies_ms.size() == 3) {
    r.samples["p50 ms"].push_back(o.latencies_ms[0]);
    r.samples["p99 ms"].push_back(o.latencies_ms[1]);
    r.samples["p999 ms"].push_back(o.latencies_ms[2]);
  }
  if (o.bytes_written_per_event > 0) r.samples["written B/event"].push_back(o.bytes_written_per_event);
  if (o.peak_rss_mb > 0) r.samples["peak RSS MB"].push_back(o.peak_rss_mb);
  if (o.bytes_per_entity > 0) r.samples["B/entity"].push_back(o.bytes_per_entity);
  r.note = o.note;
}

// -- recovery --------------------------------------------------------------------------------------

// The child: C warm entities, a checkpoint, L more events, then SIGKILL — no close, no final
// checkpoint. Prints "checkpoint_seconds <s>" for the parent.
int recovery_writer(const options& o, uint64_t entities, uint64_t tail) {
  spdlog::set_level(spdlog::level::warn);
  engine_options eo;
  eo.dir = o.dir + "/recovery";
  eo.partitions = o.recovery_partitions;
  eo.expected_entities = entities;
  eo.checkpoint_every_events = 0;
  eo.checkpoint_every = std::chrono::seconds(0);
  eo.checkpoint_on_close = false;
  auto opened = sf_engine::open(eo);
  if (!opened) die("recovery writer: " + opened.error().to_string());
  sf_engine& e = *opened.value();
  workload_spec w;
  w.keys = entities;
  warm_up(e, w, o.batch);
  const double t0 = now_seconds();
  if (status st = e.checkpoint(); !st.is_ok()) die("recovery writer: checkpoint: " + st.to_string());
  std::printf("checkpoint_seconds %.6f\n", now_seconds() - t0);
  std::mt19937_64 rng(7);
  std::atomic<uint64_t> answered{0};
  for (uint64_t i = 0; i < tail;) {
    std::vector<event> b;
    for (; i < tail && b.size() < o.batch; ++i) {
      event ev;
      ev.id = "t" + std::to_string(i);
      ev.key = key_name(rng() % entities);
      ev.amount = 1;
      pad_to(ev, 100);
      b.push_back(std::move(ev));
    }
    if (!e.submit_batch(std::move(b), [&](std::vector<submit_result>& rs) { answered += rs.size(); }).is_ok())
      die("recovery writer: submit");
  }
  while (answered.load() < tail) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::printf("acknowledged %llu\n", static_cast<unsigned long long>(tail));
  std::fflush(stdout);
  ::raise(SIGKILL);
  return 1;
}

// A child writes `entities` keys, checkpoints, logs `tail` more events and is killed; the
// engine is reopened on its directory and timed.
json measure_recovery(const options& o, uint64_t entities, uint64_t tail) {
  fresh_dir(o.dir);
  progress("recovery: child writes " + std::to_string(entities) + " entities + checkpoint + " +
           std::to_string(tail) + " tail events, then is killed");
  // The child is this binary (recovery-writer subcommand); its stdout comes back in a file.
  const std::string out_path = o.dir + ".child-out";
  std::vector<std::string> args = {"/proc/self/exe", "recovery-writer", "--dir", o.dir,
                                   "--entities", std::to_string(entities), "--tail",
                                   std::to_string(tail), "--recovery-partitions",
                                   std::to_string(o.recovery_partitions)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ) != 0)
    die("recovery: cannot start the writer process");
  posix_spawn_file_actions_destroy(&fa);
  int ws = 0;
  ::waitpid(pid, &ws, 0);
  double checkpoint_write = 0;
  bool acked = false;
  {
    std::ifstream in(out_path);
    std::string k;
    double v;
    while (in >> k >> v) {
      if (k == "checkpoint_seconds") checkpoint_write = v;
      if (k == "acknowledged") acked = true;
    }
  }
  fsys::remove(out_path);
  if (!(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL && acked))
    die("recovery: the writer did not finish and get killed as planned (see its stderr)");

  engine_options eo;
  eo.dir = o.dir + "/recovery";
  eo.partitions = o.recovery_partitions;
  eo.expected_entities = entities;
  const double t0 = now_seconds();
  auto opened = sf_engine::open(eo);
  const double reopen = now_seconds() - t0;
  if (!opened) die("recovery: reopen: " + opened.error().to_string());
  uint64_t replayed = 0, recovered_entities = 0;
  double replay_s = 0, ckpt_load = 0, lane_replay_s = 0;
  for (const auto& s : opened.value()->stats()) {
    replayed += s.recovery.events_replayed;
    recovered_entities += s.recovery.entities;
    replay_s += s.recovery.replay_seconds;
    // Partitions of a lane replay together (recover_lane): the lane's replay took the longest.
    lane_replay_s = std::max(lane_replay_s, s.recovery.replay_seconds);
    ckpt_load = std::max(ckpt_load, s.recovery.checkpoint_seconds);
  }
  if (status st = opened.value()->close(); !st.is_ok()) die("recovery: close: " + st.to_string());
  if (replayed < tail) die("recovery: replayed " + std::to_string(replayed) + " < tail " + std::to_string(tail));
  json out = {{"partitions", o.recovery_partitions},
                  {"checkpoint_entities", entities},
                  {"tail_events", tail},
                  {"events_replayed", replayed},
                  {"entities_recovered", recovered_entities},
                  {"reopen_seconds", reopen},
                  {"replay_events_per_s_per_partition", replay_s > 0 ? replayed / replay_s : 0},
                  {"replay_events_per_s", lane_replay_s > 0 ? replayed / lane_replay_s : 0},
                  {"checkpoint_write_seconds", checkpoint_write},
                  {"checkpoint_load_seconds", ckpt_load}};
  fresh_dir(o.dir);
  return out;
}

void run_recovery(const options& o, results& res) {
  res.recovery = measure_recovery(o, o.recovery_entities, o.recovery_tail);
}

// -- stateful vs stateless (docs/stateful-vs-stateless.md) -----------------------------------
std::string fmt_rate(double v);

// The same events through statefold (2 partitions) and through the seed's stateless consumer
// over one Redis with 1, 2 and 4 clients; then each design's recovery for that much state.
void run_stateless(const options& o, results& res, const workload_spec& spec, const std::vector<event>& events) {
  const uint64_t distinct = distinct_ids(events);
  const std::string w = spec.describe();
  progress("stateless: statefold, 2 partitions, " + std::to_string(events.size()) + " events");
  auto c = run_engine(o, {2, durability::sync}, spec, events, 0);
  check_counts("statefold", c, events.size(), distinct);
  record(res.at("stateless", "statefold", 2, w, "sync", "closed"), c);
  auto h = run_engine(o, {2, durability::sync}, spec, events, c.events_per_s / 2);
  check_counts("statefold", h, events.size(), distinct);
  record(res.at("stateless", "statefold", 2, w, "sync", "half"), h);
  double redis_recovery = 0;
  for (int clients : {1, 2, 4}) {
    progress("stateless: Redis, " + std::to_string(clients) + " clients, closed loop");
    auto r = run_baseline(o, "redis", store_durability::sync, events, 0, clients, clients == 2);
    check_counts("redis", r, events.size(), distinct);
    record_baseline(res.at("stateless", "redis", static_cast<uint32_t>(clients), w, "sync", "closed"), r);
    if (clients == 2) {
      redis_recovery = r.recovery_seconds;
      progress("stateless: Redis, 2 clients, open loop at half (" + fmt_rate(r.events_per_s / 2) + "/s)");
      auto rh = run_baseline(o, "redis", store_durability::sync, events, r.events_per_s / 2, 2);
      check_counts("redis", rh, events.size(), distinct);
      record_baseline(res.at("stateless", "redis", 2, w, "sync", "half"), rh);
    }
  }
  const uint64_t keys = std::min<uint64_t>(spec.keys, events.size());
  progress("stateless: statefold recovery of " + std::to_string(keys) + " keys + " +
           std::to_string(events.size()) + " events");
  json sf = measure_recovery(o, keys, events.size());
  res.stateless_recovery = {{"statefold_reopen_seconds", sf["reopen_seconds"]},
                            {"statefold_entities", sf["checkpoint_entities"]},
                            {"statefold_tail_events", sf["tail_events"]},
                            {"redis_restart_seconds", redis_recovery},
                            {"events", events.size()}};
}

// -- report ----------------------------------------------------------------------------------------

std::string fmt(double v, const char* f = "%.3g") {
  if (v == 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string fmt_rate(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2f M", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.0f k", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

// The fixed cost of partitions: an engine opened on an empty directory with P partitions and
// no events, against the process before it opened. What a partition costs before it holds
// anything: memory (live RSS), threads, open files and disk.
void run_idle(const options& o, results& res) {
  auto count_dir = [](const std::string& d) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fsys::directory_iterator(d)) ++n;
    return n;
  };
  auto disk_bytes = [](const std::string& d) {
    uint64_t n = 0;
    struct stat st {};
    for (const auto& e : fsys::recursive_directory_iterator(d))
      if (e.is_regular_file() && ::stat(e.path().c_str(), &st) == 0) n += static_cast<uint64_t>(st.st_blocks) * 512;
    return n;
  };
  for (uint32_t p : o.partitions) {
    progress("idle engine, " + std::to_string(p) + " partitions");
    fresh_dir(o.dir);
    const uint64_t rss0 = live_rss_bytes();
    const std::size_t threads0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
    workload_spec none;
    none.keys = 0;
    json x;
    {
      auto opened = sf_engine::open(make_engine_options(o, {p, durability::sync}, none));
      if (!opened) die("open: " + opened.error().to_string());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let every actor start
      const uint64_t rss = live_rss_bytes();
      x = {{"partitions", p},
           {"rss_bytes", rss - std::min(rss, rss0)},
           {"rss_bytes_per_partition", static_cast<double>(rss - std::min(rss, rss0)) / p},
           {"threads", count_dir("/proc/self/task") - threads0},
           {"open_files", count_dir("/proc/self/fd") - fds0},
           {"disk_bytes", disk_bytes(o.dir)}};
    }
    res.idle.push_back(x);
  }
}

struct aim {
  std::string what;
  double value;
  double target;
  bool at_least;  // else: at most
  std::string unit;
  bool met() const { return at_least ? value >= target : value <= target; }
};

void print_table(const results& res, const std::vector<aim>& aims, const std::string& headline) {
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf("\nstatefold-bench — %u cores; medians of the repetitions; latency per batch of events\n", cores);
  std::printf("%-11s %-10s %5s %-32s %-8s %-6s %10s %8s %8s %8s %9s %9s %9s %6s\n", "section", "system",
              "parts", "workload", "durab.", "load", "events/s", "p50 ms", "p99 ms", "p999 ms",
              "B written", "peak MB", "B/entity", "batch");
  for (const auto& r : res.rows()) {
    std::printf("%-11s %-10s %5s %-32s %-8s %-6s %10s %8s %8s %8s %9s %9s %9s %6s\n", r.section.c_str(),
                r.system.c_str(), r.partitions ? std::to_string(r.partitions).c_str() : "-",
                r.workload.c_str(), r.durability.c_str(), r.load.c_str(),
                fmt_rate(r.median("events/s")).c_str(), fmt(r.median("p50 ms")).c_str(),
                fmt(r.median("p99 ms")).c_str(), fmt(r.median("p999 ms")).c_str(),
                fmt(r.median("written B/event"), "%.0f").c_str(), fmt(r.median("peak RSS MB"), "%.0f").c_str(),
                fmt(r.median("B/entity"), "%.0f").c_str(), fmt(r.median("batch"), "%.0f").c_str());
  }
  if (!res.recovery.empty()) {
    const auto& x = res.recovery;
    std::printf("\nrecovery (%u partitions): %llu entities in the checkpoint + %llu events in the tail, "
                "killed, reopened in %.2f s; replay %.2f M events/s in all (%.2f M per partition); "
                "checkpoint write %.2f s, load %.2f s\n",
                x["partitions"].get<unsigned>(), x["checkpoint_entities"].get<unsigned long long>(),
                x["tail_events"].get<unsigned long long>(), x["reopen_seconds"].get<double>(),
                x.value("replay_events_per_s", 0.0) / 1e6, x["replay_events_per_s_per_partition"].get<double>() / 1e6,
                x["checkpoint_write_seconds"].get<double>(), x["checkpoint_load_seconds"].get<double>());
  }
  if (!res.stateless_recovery.empty()) {
    const auto& x = res.stateless_recovery;
    std::printf("\nstateless vs stateful recovery: statefold (2 partitions) reopened %llu keys + %llu "
                "logged events after kill -9 in %.2f s; Redis (the stateless design's state) restarted "
                "after kill -9 with the AOF of %llu events, a consumer ready, in %.2f s\n",
                x["statefold_entities"].get<unsigned long long>(), x["statefold_tail_events"].get<unsigned long long>(),
                x["statefold_reopen_seconds"].get<double>(), x["events"].get<unsigned long long>(),
                x["redis_restart_seconds"].get<double>());
  }
  if (!res.idle.empty()) {
    std::printf("\nidle engines (no events): what partitions cost before they hold anything\n");
    std::printf("%10s %12s %14s %8s %10s %12s\n", "partitions", "RSS MB", "RSS KB/part.", "threads",
                "open files", "disk MB");
    for (const auto& x : res.idle)
      std::printf("%10u %12.1f %14.1f %8zu %10zu %12.1f\n", x["partitions"].get<unsigned>(),
                  x["rss_bytes"].get<double>() / 1e6, x["rss_bytes_per_partition"].get<double>() / 1e3,
                  x["threads"].get<std::size_t>(), x["open_files"].get<std::size_t>(),
                  x["disk_bytes"].get<double>() / 1e6);
  }
  if (!aims.empty()) {
    std::printf("\naims (../shared/BENCHMARKS.md, set for 2 cores, sync, 100 B, 1M keys uniform, 5%% dup);"
                " this run: %u cores, %s\n", cores, headline.c_str());
    for (const auto& a : aims)
      std::printf("  %-62s %10.3g %s (aim %s %g)  %s\n", a.what.c_str(), a.value, a.unit.c_str(),
                  a.at_least ? ">=" : "<=", a.target, a.met() ? "met" : "MISSED");
  }
}

std::vector<aim> evaluate_aims(const options& o, const results& res, const std::string& headline) {
  std::vector<aim> aims;
  const row* two = res.find("statefold", 2, headline, "sync", "closed");
  const row* two_half = res.find("statefold", 2, headline, "sync", "half");
  const row* tight = res.find("tight loop", 0, headline, "sync", "closed");
  const row* redis = res.find("redis", 0, headline, "sync", "closed");
  const row* rocks = res.find("rocksdb", 0, headline, "sync", "closed");
  if (two) aims.push_back({"statefold, 2 partitions: events/s", two->median("events/s"), 3e6, true, "ev/s"});
  if (two && tight)
    aims.push_back({"statefold 2 partitions / tight loop", two->median("events/s") / tight->median("events/s"), 1.2, true, "x"});
  if (two_half) aims.push_back({"statefold, 2 partitions, half load: ack p99", two_half->median("p99 ms"), 2, false, "ms"});
  if (two && redis)
    aims.push_back({"statefold 2 partitions / Redis (appendfsync always)", two->median("events/s") / redis->median("events/s"), 10, true, "x"});
  if (two && rocks)
    aims.push_back({"statefold 2 partitions / RocksDB (synced batches)", two->median("events/s") / rocks->median("events/s"), 3, true, "x"});
  double peak = 0, low = 1e300;
  int counted = 0;
  for (uint32_t p : o.partitions) {
    if (p < 2) continue;
    if (const row* r = res.find("statefold", p, headline, "sync", "closed")) {
      peak = std::max(peak, r->median("events/s"));
      low = std::min(low, r->median("events/s"));
      ++counted;
    }
  }
  if (counted >= 2) aims.push_back({"lowest / peak events/s from 2 to " + std::to_string(o.partitions.back()) + " partitions", low / peak, 0.8, true, "x"});
  if (!res.recovery.empty()) {
    aims.push_back({"replay, events/s per partition", res.recovery["replay_events_per_s_per_partition"].get<double>(), 5e6, true, "ev/s"});
    if (o.recovery_entities >= 10'000'000 && o.recovery_tail >= 1'000'000)
      aims.push_back({"reopen, 10 M entities checkpointed + 1 M in the tail", res.recovery["reopen_seconds"].get<double>(), 3, false, "s"});
  }
  return aims;
}

void write_json(const options& o, const results& res, const std::vector<aim>& aims) {
  json j;
  j["tool"] = "statefold-bench";
  j["command"] = o.command;
  j["cores"] = std::thread::hardware_concurrency();
  json rows = json::array();
  for (const auto& r : res.rows()) {
    json x = {{"section", r.section}, {"system", r.system}, {"partitions", r.partitions},
              {"workload", r.workload}, {"durability", r.durability}, {"load", r.load}, {"note", r.note}};
    for (const auto& [m, v] : r.samples) x["median"][m] = r.median(m), x["samples"][m] = v;
    rows.push_back(x);
  }
  j["rows"] = rows;
  j["recovery"] = res.recovery;
  j["stateless_recovery"] = res.stateless_recovery;
  j["idle"] = res.idle;
  for (const auto& a : aims)
    j["aims"].push_back({{"aim", a.what}, {"value", a.value}, {"target", a.target},
                         {"at_least", a.at_least}, {"met", a.met()}});
  std::ofstream(o.json_path) << j.dump(2) << "\n";
}

// Throughput and half-load p99 against partitions, the baselines as horizontal lines.
void write_plot(const options& o, const results& res, const std::string& headline) {
  if (o.plot_path.empty()) return;
  const std::string dat = o.plot_path + ".dat", gp = o.plot_path + ".gp";
  {
    std::ofstream d(dat);
    d << "# partitions closed_events_per_s half_load_p99_ms\n";
    for (uint32_t p : o.partitions) {
      const row* c = res.find("statefold", p, headline, "sync", "closed");
      const row* h = res.find("statefold", p, headline, "sync", "half");
      if (c) d << p << " " << c->median("events/s") << " " << (h ? h->median("p99 ms") : 0) << "\n";
    }
  }
  auto line = [&](const char* system, const char* load, const char* metric) {
    const row* r = res.find(system, 0, headline, "sync", load);
    return r ? r->median(metric) : 0.0;
  };
  std::ofstream g(gp);
  g << "set terminal pngcairo size 1200,480 font 'sans,10'\n"
    << "set output '" << o.plot_path << "'\n"
    << "set multiplot layout 1,2 title 'statefold-bench: " << headline << ", durability sync, "
    << std::thread::hardware_concurrency() << " cores'\n"
    << "set logscale x 2\nset logscale y\nset grid\nset key bottom left\nset xlabel 'partitions'\n"
    << "set xrange [0.8:" << o.partitions.back() * 1.25 << "]\n"
    << "set ylabel 'events/s (closed loop)'\n"
    << "plot '" << dat << "' using 1:2 with linespoints lw 2 pt 7 title 'statefold'";
  auto hline = [&](double v, const char* title, const char* color) {
    if (v > 0) g << ", " << v << " with lines dt 2 lw 2 lc rgb '" << color << "' title '" << title << "'";
  };
  hline(line("tight loop", "closed", "events/s"), "tight loop (1 thread)", "gray40");
  hline(line("redis", "closed", "events/s"), "Redis, appendfsync always", "red");
  hline(line("rocksdb", "closed", "events/s"), "RocksDB, synced batches", "blue");
  g << "\nset ylabel 'ack p99 at half load (ms)'\nset key top left\n"
    << "plot '" << dat << "' using 1:3 with linespoints lw 2 pt 7 title 'statefold'";
  hline(line("redis", "half", "p99 ms"), "Redis", "red");
  hline(line("rocksdb", "half", "p99 ms"), "RocksDB", "blue");
  g << ", 2 with lines dt 3 lc rgb 'black' title 'aim: 2 ms'\nunset multiplot\n";
  g.close();
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "statefold-bench: gnuplot not found; plot script left in %s\n", gp.c_str());
    return;
  }
  if (std::system(("gnuplot '" + gp + "'").c_str()) != 0)
    std::fprintf(stderr, "statefold-bench: gnuplot failed on %s\n", gp.c_str());
}

// -- the sweep ---------------------------------------------------------------------------------------

int run(options& o) {
  spdlog::set_level(spdlog::level::warn);
  // The producers' batches are built before the clock starts and freed by the engine's
  // threads during the run, with nothing allocated in between to reuse them. glibc parks such
  // frees in "fastbins" and, at the next large allocation, consolidates all of them at once:
  // a 25-35 ms pause every few hundred thousand events, which set the p99 of every run
  // (found with --trace; gone with GLIBC_TUNABLES=glibc.malloc.mxfast=0). A service that
  // builds events as it goes reuses those chunks instead. The bench turns fastbins off so that
  // it measures the engine, not its own pre-built batches; docs/benchmarks.md says so.
  ::mallopt(M_MXFAST, 0);
  results res;
  workload_spec headline_spec;
  headline_spec.events = o.events;
  headline_spec.keys = o.keys;
  const std::string headline = headline_spec.describe();
  progress("generating " + std::to_string(o.events) + " events (" + headline + ")");
  const auto events = make_events(headline_spec);
  const uint64_t distinct = distinct_ids(events);

  // Baselines use the first baseline_events of the same events.
  const std::vector<event> baseline_events(events.begin(), events.begin() + std::min<std::size_t>(events.size(), o.baseline_events));
  const uint64_t baseline_distinct = distinct_ids(baseline_events);

  for (int rep = 0; rep < o.reps; ++rep) {
    const std::string of = " (rep " + std::to_string(rep + 1) + "/" + std::to_string(o.reps) + ")";
    if (o.wants("baselines") || o.wants("scaling")) {
      progress("tight loop" + of);
      auto t = run_tight(o, headline_spec, events);
      check_counts("tight loop", t, events.size(), distinct);
      record(res.at("baselines", "tight loop", 0, headline, "sync", "closed"), t);
    }
    if (o.wants("scaling")) {
      for (uint32_t p : o.partitions) {
        progress("statefold, " + std::to_string(p) + " partitions, closed loop" + of);
        auto c = run_engine(o, {p, durability::sync}, headline_spec, events, 0);
        check_counts("statefold", c, events.size(), distinct);
        record(res.at("scaling", "statefold", p, headline, "sync", "closed"), c);
        progress("statefold, " + std::to_string(p) + " partitions, open loop at half (" + fmt_rate(c.events_per_s / 2) + "/s)" + of);
        auto h = run_engine(o, {p, durability::sync}, headline_spec, events, c.events_per_s / 2);
        check_counts("statefold", h, events.size(), distinct);
        record(res.at("scaling", "statefold", p, headline, "sync", "half"), h);
      }
    }
    if (o.wants("baselines")) {
      for (const char* store : {"redis", "rocksdb"}) {
        progress(std::string(store) + ", closed loop, " + std::to_string(baseline_events.size()) + " events" + of);
        auto c = run_baseline(o, store, store_durability::sync, baseline_events, 0);
        check_counts(store, c, baseline_events.size(), baseline_distinct);
        record_baseline(res.at("baselines", store, 0, headline, "sync", "closed"), c);
        progress(std::string(store) + ", open loop at half (" + fmt_rate(c.events_per_s / 2) + "/s)" + of);
        auto h = run_baseline(o, store, store_durability::sync, baseline_events, c.events_per_s / 2);
        check_counts(store, h, baseline_events.size(), baseline_distinct);
        record_baseline(res.at("baselines", store, 0, headline, "sync", "half"), h);
      }
    }
  }

  if (o.wants("variations")) {
    const uint32_t p = o.vary_partitions;
    for (durability d : {durability::interval, durability::none}) {
      progress(std::string("variation: durability ") + name_of(d));
      auto c = run_engine(o, {p, d}, headline_spec, events, 0);
      check_counts("statefold", c, events.size(), distinct);
      record(res.at("variations", "statefold", p, headline, name_of(d), "closed"), c);
      auto h = run_engine(o, {p, d}, headline_spec, events, c.events_per_s / 2);
      check_counts("statefold", h, events.size(), distinct);
      record(res.at("variations", "statefold", p, headline, name_of(d), "half"), h);
    }
    for (const char* store : {"redis", "rocksdb"}) {
      progress(std::string("variation: ") + store + ", durability none");
      auto c = run_baseline(o, store, store_durability::none, baseline_events, 0);
      check_counts(store, c, baseline_events.size(), baseline_distinct);
      record_baseline(res.at("variations", store, 0, headline, "none", "closed"), c);
    }
    std::vector<workload_spec> specs;
    workload_spec big = headline_spec;
    big.event_bytes = 1024;
    big.events = o.events / 2;  // the same log bytes in about 5x fewer events
    specs.push_back(big);
    if (o.big_keys > o.keys) {
      workload_spec many = headline_spec;
      many.keys = o.big_keys;
      specs.push_back(many);
    }
    workload_spec skew = headline_spec;
    skew.zipf = true;
    specs.push_back(skew);
    workload_spec nodup = headline_spec;
    nodup.dup = 0;
    specs.push_back(nodup);
    for (const auto& w : specs) {
      progress("variation: " + w.describe() + " (" + std::to_string(w.events) + " events)");
      const auto ev = make_events(w);
      auto c = run_engine(o, {p, durability::sync}, w, ev, 0);
      check_counts("statefold", c, ev.size(), distinct_ids(ev));
      record(res.at("variations", "statefold", p, w.describe(), "sync", "closed"), c);
    }
  }

  if (o.wants("recovery")) run_recovery(o, res);
  if (o.wants("idle")) run_idle(o, res);
  if (o.wants("stateless")) run_stateless(o, res, headline_spec, baseline_events);

  const auto aims = evaluate_aims(o, res, headline);
  print_table(res, aims, headline);
  write_json(o, res, aims);
  write_plot(o, res, headline);
  std::printf("\nJSON: %s%s%s\n", o.json_path.c_str(), o.plot_path.empty() ? "" : "; plot: ",
              o.plot_path.c_str());
  fresh_dir(o.dir);
  return 0;
}

std::vector<uint32_t> parse_list(const std::string& s) {
  std::vector<uint32_t> v;
  for (std::size_t pos = 0; pos < s.size();) {
    auto comma = s.find(',', pos);
    v.push_back(static_cast<uint32_t>(std::stoul(s.substr(pos, comma - pos))));
    pos = comma == std::string::npos ? s.size() : comma + 1;
  }
  return v;
}

}  // namespace
}  // namespace statefold::bench

int main(int argc, char** argv) {
  using namespace statefold::bench;
  options o;
  for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
  bool quick = false, smoke = false;
  std::string parts;
  uint64_t entities = 0, tail = 0;
  CLI::App app{"statefold-bench: partition scaling, baselines, recovery (docs/benchmarks.md)"};
  app.add_flag("--quick", quick, "the < 2 minute preset: fewer events, one repetition, no 10 M keys");
  app.add_flag("--smoke", smoke, "a few seconds, to check that everything runs (CI)");
  app.add_option("--partitions", parts, "comma-separated partition counts (default 1,2,4,8,16,64)");
  app.add_option("--lanes", o.lanes, "journal lanes the partitions share (default 1; 0: one per partition)")
      ->capture_default_str();
  app.add_option("--events", o.events, "events per statefold run");
  app.add_option("--baseline-events", o.baseline_events, "events per Redis / RocksDB run");
  app.add_option("--keys", o.keys, "keys of the headline workload");
  app.add_option("--reps", o.reps, "repetitions of the scaling and baseline runs");
  app.add_option("--producers", o.producers, "threads submitting batches (and baseline clients)");
  app.add_option("--per-message", o.per_message, "statefold producers' batches hold at least this many events per partition: batch = max(256, N x partitions) (default 32)");
  app.add_option("--sections", o.sections, "any of scaling,baselines,variations,recovery,stateless,idle");
  app.add_option("--recovery-entities", o.recovery_entities, "entities in the recovery checkpoint");
  app.add_option("--recovery-tail", o.recovery_tail, "events in the recovery log tail");
  app.add_option("--recovery-partitions", o.recovery_partitions,
                 "partitions of the recovery benchmark (one journal lane; default 2)")
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--dir", o.dir, "scratch directory on the disk under test (removed after)");
  app.add_option("--json", o.json_path, "JSON output file");
  app.add_option("--plot", o.plot_path, "PNG plot (gnuplot); empty: no plot");
  app.add_option("--trace", o.trace, "append each open-loop batch's send time and latency to this file");
  auto* writer = app.add_subcommand("recovery-writer", "internal: the process the recovery benchmark kills");
  writer->add_option("--dir", o.dir)->required();
  writer->add_option("--entities", entities)->required();
  writer->add_option("--tail", tail)->required();
  writer->add_option("--recovery-partitions", o.recovery_partitions);
  CLI11_PARSE(app, argc, argv);
  if (*writer) return recovery_writer(o, entities, tail);
  if (quick) {
    o.events = 400'000;
    o.baseline_events = 60'000;
    o.reps = 1;
    o.big_keys = 0;
    o.recovery_entities = 1'000'000;
    o.recovery_tail = 200'000;
  }
  if (smoke) {
    o.partitions = {1, 2};
    o.events = 20'000;
    o.keys = 5'000;
    o.baseline_events = 4'000;
    o.reps = 1;
    o.big_keys = 0;
    o.recovery_entities = 20'000;
    o.recovery_tail = 5'000;
  }
  if (!parts.empty()) o.partitions = parse_list(parts);
  std::sort(o.partitions.begin(), o.partitions.end());
  return run(o);
}
