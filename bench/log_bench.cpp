// log_bench: what the storage core costs, next to what the disk allows, in the same run.
//
//   append  statefold's log_writer (encode + CRC32C + group commit per batch) against a raw
//           pwrite + fdatasync loop writing the same bytes in the same batch size to a
//           preallocated file;
//   read    scan_log (read + CRC + framing checks) against a raw read + CRC loop;
//   replay  reopening a partition_state (full replay into a map of `keys` entities), and the
//           single-thread apply loop that wrote it (dedup + apply + encode + CRC + group commit).
//
// Usage: log_bench [--records N] [--batch-kib K] [--reps R] [--keys K] [--dir D] [--json F]

#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <random>

#include "counter_model.hpp"
#include "harness.hpp"
#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/partition_state.hpp"

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;
using log_format::record_header_size;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "log_bench: %s\n", what.c_str());
  std::exit(1);
}
void check(const status& st, const char* what) {
  if (!st.is_ok()) die(std::string(what) + ": " + st.to_string());
}

struct options {
  uint64_t records = 4'000'000;
  uint32_t payload = 100;
  uint32_t batch_kib = 256;
  int reps = 5;
  uint64_t keys = 1'000'000;
  uint64_t replay_records = 5'000'000;
  std::string dir = "log_bench-data";
  std::string json;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

// -- append ---------------------------------------------------------------------------------

double raw_append(const options& o, const std::string& path, const std::string& frame) {
  const std::size_t batch_records = o.batch_kib * 1024 / frame.size();
  std::string batch;
  for (std::size_t i = 0; i < batch_records; ++i) batch += frame;
  const uint64_t bytes = o.records * frame.size() + batch.size();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  // Preallocate with real zeros (not fallocate), like a reused segment.
  std::string zeros(1 << 20, '\0');
  for (uint64_t off = 0; off < bytes; off += zeros.size())
    if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0) die("pwrite");
  ::fsync(fd);
  const double t0 = now_seconds();
  uint64_t off = 0;
  for (uint64_t done = 0; done < o.records; done += batch_records) {
    if (::pwrite(fd, batch.data(), batch.size(), static_cast<off_t>(off)) !=
        static_cast<ssize_t>(batch.size()))
      die("pwrite");
    if (::fdatasync(fd) != 0) die("fdatasync");
    off += batch.size();
  }
  const double dt = now_seconds() - t0;
  ::close(fd);
  return static_cast<double>(o.records) / dt;
}

struct append_result {
  double records_per_s;
  double p50_ms;
  double p99_ms;
  uint64_t segments;
};

append_result statefold_append(const options& o, const std::string& log_dir, bool recycled) {
  const std::size_t batch_records = o.batch_kib * 1024 / (o.payload + record_header_size);
  log_options lo;
  lo.max_free_segments = 64;
  log_scan empty;
  if (recycled) {
    // Fill and release enough segments to serve the whole timed run from the free list: the
    // run continues in the last (active) segment, then rolls into recycled ones.
    auto w = log_writer::open(posix_file_system(), log_dir, 0, 1, empty, lo);
    if (!w) die(w.error().to_string());
    std::string payload(o.payload, 'w');
    const uint64_t per_segment = lo.segment_bytes / (o.payload + record_header_size);
    for (uint64_t i = 0; i < o.records + 2 * per_segment; ++i)
      if (!(*w)->append(log_format::record_type::event, payload)) die("append");
    if (!(*w)->sync()) die("sync");
    if (!(*w)->append(log_format::record_type::event, payload) || !(*w)->sync()) die("sync");
    check((*w)->release_before((*w)->next_lsn()), "release");
    w->reset();
  }
  log_scan_options so;
  auto scan = scan_log(posix_file_system(), log_dir, so, nullptr);
  if (!scan) die(scan.error().to_string());
  auto w = log_writer::open(posix_file_system(), log_dir, 0, 1, *scan, lo);
  if (!w) die(w.error().to_string());
  std::string payload(o.payload, 'p');
  std::vector<double> commit_ms;
  const double t0 = now_seconds();
  for (uint64_t i = 0; i < o.records; ++i) {
    store_u64(payload.data(), i);
    if (!(*w)->append(log_format::record_type::event, payload)) die("append");
    if ((i + 1) % batch_records == 0 || i + 1 == o.records) {
      const double c0 = now_seconds();
      auto d = (*w)->sync();
      if (!d) die(d.error().to_string());
      commit_ms.push_back((now_seconds() - c0) * 1e3);
    }
  }
  const double dt = now_seconds() - t0;
  return {static_cast<double>(o.records) / dt, percentile(commit_ms, 0.5),
          percentile(commit_ms, 0.99), (*w)->segment_count()};
}

// -- read -----------------------------------------------------------------------------------

double raw_read_crc(const std::string& path, std::size_t frame) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  std::string buf(1 << 20, '\0');
  const std::size_t per_chunk = buf.size() / frame;
  uint64_t records = 0;
  uint32_t sink = 0;
  const double t0 = now_seconds();
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf.data(), per_chunk * frame, off);
    if (n <= 0) break;
    for (std::size_t p = 0; p + frame <= static_cast<std::size_t>(n); p += frame, ++records)
      sink ^= crc32c::value(buf.data() + p + 4, frame - 4);
    off += n;
  }
  const double dt = now_seconds() - t0;
  ::close(fd);
  if (sink == 0x12345678) std::puts("");  // keep the CRC loop from being optimised away
  return static_cast<double>(records) / dt;
}

double statefold_scan(const std::string& log_dir, uint64_t expect) {
  uint64_t n = 0;
  log_scan_options so;
  const double t0 = now_seconds();
  auto s = scan_log(posix_file_system(), log_dir, so, [&](const log_record&) {
    ++n;
    return status::ok();
  });
  const double dt = now_seconds() - t0;
  if (!s) die(s.error().to_string());
  if (n < expect) die("scan saw fewer records than written");
  return static_cast<double>(n) / dt;
}

// -- replay ---------------------------------------------------------------------------------

counter_model::event make_event(uint64_t i, uint64_t keys, uint32_t payload, std::mt19937_64& rng) {
  counter_model::event e;
  e.id = "e" + std::to_string(i);
  e.key = "k" + std::to_string(rng() % keys);
  e.amount = static_cast<int64_t>(i % 1000);
  // Envelope: flags + id + key (~20 bytes) + 8-byte amount; pad to the payload size.
  const std::size_t used = 1 + 1 + e.id.size() + 1 + e.key.size() + 8;
  e.pad.assign(payload > used ? payload - used : 0, 'x');
  return e;
}

}  // namespace
}  // namespace statefold::bench

int main(int argc, char** argv) {
  using namespace statefold;
  using namespace statefold::bench;
  options o;
  bool quick = false;
  CLI::App app{"statefold log benchmark: append, read and replay against raw I/O loops"};
  app.add_option("--records", o.records, "records per append/read run");
  app.add_option("--payload", o.payload, "payload bytes per record");
  app.add_option("--batch-kib", o.batch_kib, "group-commit batch size in KiB");
  app.add_option("--reps", o.reps, "repetitions (median and spread are reported)");
  app.add_option("--keys", o.keys, "distinct keys for the replay benchmark");
  app.add_option("--replay-records", o.replay_records, "events in the replayed log");
  app.add_option("--dir", o.dir, "scratch directory on the disk under test (removed after)");
  app.add_option("--json", o.json, "also write the results to this JSON file");
  app.add_flag("--quick", quick, "small sizes, 3 repetitions (a smoke run)");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    o.records = 500'000;
    o.replay_records = 500'000;
    o.keys = 100'000;
    o.reps = 3;
  }
  fsys::remove_all(o.dir);
  fsys::create_directories(o.dir);
  const std::size_t frame_size = o.payload + log_format::record_header_size;
  std::string frame(frame_size, 'r');
  store_u32(frame.data(), crc32c::mask(crc32c::value(frame.data() + 4, frame.size() - 4)));

  report r("log_bench: " + std::to_string(o.records) + " records of " + std::to_string(o.payload) +
           " B payload, " + std::to_string(o.batch_kib) + " KiB group-commit batches");
  r.note(std::string("CRC32C ") + (crc32c::hardware_accelerated() ? "SSE4.2" : "portable table"));

  for (int rep = 0; rep < o.reps; ++rep) {
    const std::string raw = o.dir + "/raw.bin";
    r.series("raw pwrite+fdatasync (preallocated file)", "records/s")
        .values.push_back(raw_append(o, raw, frame));
    r.series("raw read+CRC32C", "records/s").values.push_back(raw_read_crc(raw, frame_size));
    fsys::remove(raw);

    const std::string fresh = o.dir + "/fresh";
    auto a = statefold_append(o, fresh, /*recycled=*/false);
    r.series("log_writer append+sync, new segments", "records/s").values.push_back(a.records_per_s);
    r.series("statefold scan_log (read+CRC+framing)", "records/s")
        .values.push_back(statefold_scan(fresh, o.records));
    fsys::remove_all(fresh);

    const std::string reused = o.dir + "/recycled";
    auto b = statefold_append(o, reused, /*recycled=*/true);
    r.series("log_writer append+sync, recycled segments", "records/s").values.push_back(b.records_per_s);
    r.series("  commit latency p50, recycled", "ms").values.push_back(b.p50_ms);
    r.series("  commit latency p99, recycled", "ms").values.push_back(b.p99_ms);
    fsys::remove_all(reused);
  }
  r.ratio("append (recycled) / raw loop", "log_writer append+sync, recycled segments",
          "raw pwrite+fdatasync (preallocated file)");
  r.ratio("append (new segments) / raw loop", "log_writer append+sync, new segments",
          "raw pwrite+fdatasync (preallocated file)");
  r.ratio("scan_log / raw read+CRC", "statefold scan_log (read+CRC+framing)", "raw read+CRC32C");

  // Replay: write a log through partition_state once (the single-thread apply loop), then
  // reopen it `reps` times without a checkpoint: a full replay into `keys` entities.
  {
    partition_options po;
    po.dir = o.dir + "/p-0000";
    po.dedup_window = 1u << 18;
    const std::size_t batch_records = o.batch_kib * 1024 / frame_size;
    {
      auto p = partition_state<counter_model>::open(posix_file_system(), po);
      if (!p) die(p.error().to_string());
      std::mt19937_64 rng(42);
      std::vector<counter_model::event> events;
      events.reserve(batch_records);
      double busy = 0;
      for (uint64_t i = 0; i < o.replay_records;) {
        events.clear();
        for (std::size_t k = 0; k < batch_records && i < o.replay_records; ++k, ++i)
          events.push_back(make_event(i, o.keys, o.payload, rng));
        const double t0 = now_seconds();
        for (const auto& e : events)
          if ((*p)->apply(e).kind != outcome::applied) die("apply");
        if (!(*p)->sync()) die("sync");
        busy += now_seconds() - t0;
      }
      r.series("partition_state apply+sync loop (1 thread)", "events/s")
          .values.push_back(static_cast<double>(o.replay_records) / busy);
    }
    for (int rep = 0; rep < o.reps; ++rep) {
      const double t0 = now_seconds();
      auto p = partition_state<counter_model>::open(posix_file_system(), po);
      const double dt = now_seconds() - t0;
      if (!p) die(p.error().to_string());
      r.series("full replay into partition_state (" + std::to_string(o.keys) + " keys)", "events/s")
          .values.push_back(static_cast<double>((*p)->recovery().events_replayed) / dt);
      r.series("  reopen time, " + std::to_string(o.replay_records) + " events", "s").values.push_back(dt);
    }
  }
  fsys::remove_all(o.dir);
  r.print();
  if (!o.json.empty()) r.write_json(o.json);
  return 0;
}
