// engine_bench: durable events/s through engine<Model> against the number of partitions,
// next to the single-thread storage core on the same events in the same run.
//
//   closed loop   producers keep batches in flight (bounded by backpressure): peak events/s
//   open loop     producers send at a fixed rate (half of the closed-loop peak); latency is
//                 measured from each batch's intended send time, so queueing is not hidden
//   tight loop    one thread: the same dedup + apply + encode + CRC + group commit,
//                 no actors — what one core does alone
//
// Usage: engine_bench [--events N] [--keys K] [--partitions 1,2,4,16] [--dup 0.05]
//                     [--payload 100] [--batch 256] [--producers 2] [--dir D] [--json F]

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "counter_model.hpp"
#include "harness.hpp"
#include "statefold/coding.hpp"
#include "statefold/engine.hpp"

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;

using event = counter_model::event;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "engine_bench: %s\n", what.c_str());
  std::exit(1);
}

struct options {
  uint64_t events = 2'000'000;
  uint64_t keys = 1'000'000;
  std::vector<uint32_t> partitions = {1, 2, 4, 16};
  double dup = 0.05;
  uint32_t payload = 100;
  std::size_t batch = 256;
  int producers = 2;
  std::string dir = "engine_bench-data";
  std::string json;
  bool preallocate = true;
};

// The workload: `dup` of the events reuse the ID (and key) of an earlier one.
std::vector<event> make_events(const options& o) {
  std::mt19937_64 rng(42);
  std::vector<event> v;
  v.reserve(o.events);
  for (uint64_t i = 0; i < o.events; ++i) {
    if (i > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < o.dup) {
      v.push_back(v[rng() % i]);
      continue;
    }
    event e;
    e.id = "e" + std::to_string(i);
    e.key = "k" + std::to_string(rng() % o.keys);
    e.amount = static_cast<int64_t>(i % 1000);
    const std::size_t used = 1 + 1 + e.id.size() + 1 + e.key.size() + 8;  // envelope + amount
    e.pad.assign(o.payload > used ? o.payload - used : 0, 'x');
    v.push_back(std::move(e));
  }
  return v;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

struct run_result {
  double events_per_s = 0;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
  uint64_t applied = 0, duplicates = 0, syncs = 0;
};

// Tight loop: one thread, partition_state directly, a group commit per batch-bytes.
run_result tight_loop(const options& o, const std::vector<event>& events) {
  fsys::remove_all(o.dir);
  partition_options po;
  po.dir = o.dir + "/tight";
  po.log.max_free_segments = 0;
  auto p = partition_state<counter_model>::open(posix_file_system(), po);
  if (!p) die(p.error().to_string());
  const std::size_t group = 256 * 1024 / (o.payload + 20);
  run_result r;
  const double t0 = now_seconds();
  std::size_t in_group = 0;
  for (const auto& e : events) {
    auto a = (*p)->apply(e);
    r.applied += a.kind == outcome::applied;
    r.duplicates += a.kind == outcome::duplicate;
    if (++in_group == group) {
      if (!(*p)->sync()) die("sync");
      ++r.syncs;
      in_group = 0;
    }
  }
  if (!(*p)->sync()) die("sync");
  r.events_per_s = static_cast<double>(events.size()) / (now_seconds() - t0);
  return r;
}

// Engine run. rate_per_s == 0: closed loop; else each producer paces its batches.
run_result engine_run(const options& o, uint32_t partitions, const std::vector<event>& events,
                      double rate_per_s) {
  fsys::remove_all(o.dir);
  engine_options eo;
  eo.dir = o.dir + "/engine";
  eo.partitions = partitions;
  eo.checkpoint_every_events = 0;
  eo.checkpoint_every = std::chrono::seconds(0);
  eo.checkpoint_on_close = false;
  eo.max_in_flight = 64 * o.batch;
  eo.expected_entities = o.keys;
  eo.log.max_free_segments = 0;
  eo.log.preallocate = o.preallocate;
  auto logger = spdlog::default_logger();
  logger->set_level(spdlog::level::warn);
  auto opened = engine<counter_model>::open(eo);
  if (!opened) die(opened.error().to_string());
  auto& e = *opened.value();

  // Latencies are recorded by callbacks on CAF threads, possibly after their producer thread
  // has finished sending: the storage lives until every event is answered.
  std::mutex mu;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(events.size() / o.batch + o.producers);
  std::atomic<uint64_t> applied{0}, duplicates{0}, answered{0};
  const std::size_t per_producer = events.size() / o.producers;
  // Batches are built before the clock starts and moved in: the timed region measures the
  // engine, not the producers' string copies (which compete for the same 2 cores).
  std::vector<std::vector<std::vector<event>>> prebuilt(o.producers);
  for (int t = 0; t < o.producers; ++t) {
    const std::size_t begin = t * per_producer;
    const std::size_t end = t + 1 == o.producers ? events.size() : begin + per_producer;
    for (std::size_t i = begin; i < end; i += o.batch)
      prebuilt[t].emplace_back(events.begin() + i, events.begin() + std::min(end, i + o.batch));
  }
  const double t0 = now_seconds();
  std::vector<std::thread> producers;
  for (int t = 0; t < o.producers; ++t) {
    producers.emplace_back([&, t] {
      const double interval = rate_per_s > 0 ? o.batch * o.producers / rate_per_s : 0;
      for (std::size_t n = 0; n < prebuilt[t].size(); ++n) {
        const double intended = rate_per_s > 0 ? t0 + n * interval : now_seconds();
        // Sleep, not spin: on 2 cores a spinning producer takes a core from the engine. A late
        // wake-up is charged to the batch (latency counts from `intended`).
        if (rate_per_s > 0 && now_seconds() < intended)
          std::this_thread::sleep_for(std::chrono::duration<double>(intended - now_seconds()));
        std::vector<event> batch = std::move(prebuilt[t][n]);
        status st = e.submit_batch(std::move(batch), [&, intended](std::vector<submit_result>& rs) {
          const double ms = (now_seconds() - intended) * 1e3;
          uint64_t a = 0, d = 0;
          for (auto& r : rs) {
            a += r.kind == outcome::applied;
            d += r.kind == outcome::duplicate;
          }
          applied += a;
          duplicates += d;
          {
            std::lock_guard lock(mu);
            latencies_ms.push_back(ms);
          }
          answered += rs.size();
        });
        if (!st.is_ok()) die(st.to_string());
      }
    });
  }
  for (auto& p : producers) p.join();
  while (answered.load() < events.size()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  const double dt = now_seconds() - t0;
  run_result r;
  for (const auto& s : e.stats()) r.syncs += s.syncs;
  if (!e.close().is_ok()) die("close");
  r.events_per_s = static_cast<double>(events.size()) / dt;
  r.applied = applied;
  r.duplicates = duplicates;
  r.p50_ms = percentile(latencies_ms, 0.50);
  r.p99_ms = percentile(latencies_ms, 0.99);
  r.p999_ms = percentile(latencies_ms, 0.999);
  return r;
}

}  // namespace
}  // namespace statefold::bench

int main(int argc, char** argv) {
  using namespace statefold::bench;
  options o;
  int reps = 3;
  bool quick = false;
  std::string parts = "1,2,4,16";
  CLI::App app{"statefold engine benchmark: durable events/s against partitions"};
  app.add_option("--events", o.events, "events per run");
  app.add_option("--keys", o.keys, "distinct keys (uniform)");
  app.add_option("--partitions", parts, "comma-separated partition counts");
  app.add_option("--dup", o.dup, "fraction of duplicate events");
  app.add_option("--payload", o.payload, "logged bytes per event (approx.)");
  app.add_option("--batch", o.batch, "events per submit_batch");
  app.add_option("--producers", o.producers, "producer threads");
  app.add_option("--reps", reps, "repetitions");
  app.add_option("--dir", o.dir, "scratch directory on the disk under test (removed after)");
  app.add_option("--json", o.json, "also write results to this JSON file");
  app.add_flag("--quick", quick, "small run (smoke)");
  app.add_option("--preallocate", o.preallocate, "zero-fill new segments (1) or let them grow (0)");
  CLI11_PARSE(app, argc, argv);
  o.partitions.clear();
  for (std::size_t pos = 0; pos < parts.size();) {
    auto comma = parts.find(',', pos);
    o.partitions.push_back(static_cast<uint32_t>(std::stoul(parts.substr(pos, comma - pos))));
    pos = comma == std::string::npos ? parts.size() : comma + 1;
  }
  if (quick) {
    o.events = 200'000;
    o.keys = 50'000;
    reps = 1;
  }
  const auto events = make_events(o);
  report r("engine_bench: " + std::to_string(o.events) + " events of ~" + std::to_string(o.payload) +
           " B, " + std::to_string(o.keys) + " keys, " + std::to_string(int(o.dup * 100)) +
           "% duplicates, durability sync, batches of " + std::to_string(o.batch) + ", " +
           std::to_string(o.producers) + " producers");
  for (int rep = 0; rep < reps; ++rep) {
    auto t = tight_loop(o, events);
    r.series("tight loop (1 thread, no actors)", "events/s").values.push_back(t.events_per_s);
    for (uint32_t p : o.partitions) {
      const std::string name = "engine, " + std::to_string(p) + " partition" + (p > 1 ? "s" : "");
      auto c = engine_run(o, p, events, 0);
      r.series(name + ", closed loop", "events/s").values.push_back(c.events_per_s);
      r.series(name + ", closed loop ack p99", "ms").values.push_back(c.p99_ms);
      auto h = engine_run(o, p, events, c.events_per_s / 2);
      r.series(name + ", half load: ack p50", "ms").values.push_back(h.p50_ms);
      r.series(name + ", half load: ack p99", "ms").values.push_back(h.p99_ms);
      r.series(name + ", half load: ack p999", "ms").values.push_back(h.p999_ms);
      r.series(name + ", events per sync", "events").values.push_back(
          c.syncs ? static_cast<double>(o.events) / c.syncs : 0);
    }
  }
  for (uint32_t p : o.partitions) {
    const std::string name = "engine, " + std::to_string(p) + " partition" + (p > 1 ? "s" : "");
    r.ratio(name + " / tight loop", name + ", closed loop", "tight loop (1 thread, no actors)");
  }
  std::filesystem::remove_all(o.dir);
  r.print();
  if (!o.json.empty()) r.write_json(o.json);
  return 0;
}
