// statefold-torture: random kill -9 and power-loss cycles under load, with redelivery, and
// the oracle of RELIABILITY.md after every cycle.
//
//   statefold-torture kill      --dir D [--cycles N | --seconds S] [--workers 2] [--seed S]
//   statefold-torture powerloss --dir D [--cycles N | --seconds S] [--seed S]
//   (both: [--partitions 3] [--lanes 1], the engine's layout: partitions sharing journal lanes;
//    [--rebalance N]: every N batches, wait for the answers, then release one partition
//    (engine::release: checkpoint and seal) and activate it again, as a Kafka rebalance would;
//    the kill or the power loss lands in those too)
//   statefold-torture worker    --dir D --from I --events N     (run by `kill`; not for people)
//
// The workload: event i has ID e<i>, key k<i % 50>, per-key sequence number i / 50 + 1 and
// amount i. A worker submits events [from, events) in order and prints "ack <i>" for each
// event answered applied or duplicate, after the answer (so after the fdatasync). Each new
// worker starts from (highest acknowledged - a random lag), redelivering a tail the way a
// Kafka consumer with a trailing committed offset would: those events must come back
// `duplicate`.
//
// The oracle, after every cycle (the directory reopened by the verifier):
//   - no acknowledged event missing: per key, the applied sequence reaches every acked one;
//   - no duplicates, no holes: per key, sequence numbers 1..n exactly once (ledger_model
//     counts repeats and gaps), count == n and sum == the sum of those events' amounts;
//   - recovery itself succeeds.
// Exit 0 and a summary line when every cycle passes; exit 1 at the first violation.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "statefold/engine.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

extern char** environ;

namespace {

using namespace statefold;
using statefold::testing::fault_file_system;
using statefold::testing::fs_op;

// Where a new worker may resume: the first event some key has not seen acknowledged, minus a
// lag. Like a consumer's committed offset, it never skips past what a slow partition has not
// made durable; the lag makes part of the tail a redelivery (duplicates).
uint64_t resume_index(const std::vector<uint64_t>& acked_max, uint64_t lag);
using testing::ledger_model;
using ledger_engine = engine<ledger_model>;

constexpr int keys = 50;

testing::ledger_event event_at(uint64_t i) {
  return {"e" + std::to_string(i), "k" + std::to_string(i % keys), i / keys + 1, static_cast<int64_t>(i)};
}

// The layout under test (--partitions, --lanes), the same in every process of a run.
uint32_t layout_partitions = 3;
uint32_t layout_lanes = 1;
uint64_t rebalance_every = 0;  // --rebalance: batches between a release + activate; 0: never

// Every `rebalance_every` batches (after waiting for the answers): release partition
// `(n / rebalance_every) % partitions` and activate it again. An error (a crash landed in
// it) is the caller's to report; the oracle judges what was acknowledged either way.
status maybe_rebalance(engine<testing::ledger_model>& e, uint64_t n, const std::function<void()>& drain,
                       std::chrono::milliseconds wait_for_restart = std::chrono::seconds(30)) {
  if (rebalance_every == 0 || n == 0 || n % rebalance_every != 0) return status::ok();
  drain();
  const uint32_t p = static_cast<uint32_t>((n / rebalance_every) % layout_partitions);
  SF_RETURN_IF_ERROR(e.release(p, wait_for_restart));
  return e.activate(p);
}

engine_options engine_opts(const std::string& dir, file_system* fs) {
  engine_options o;
  o.dir = dir;
  o.partitions = layout_partitions;
  o.lanes = layout_lanes;
  o.threads = 1;
  o.fs = fs;
  o.log.segment_bytes = 256 << 10;  // rolls and recycling happen within a cycle
  o.log.max_record_bytes = 4096;
  o.checkpoint_every_events = 2000;  // checkpoints and segment releases happen too
  o.checkpoint_every = std::chrono::seconds(0);
  // The engine's default window (2^18 IDs per partition, 3 partitions): a redelivered tail
  // spans at most the 400,000 events of a kill workload, and a few thousand in power-loss
  // cycles. (It was 2^20: 144 MiB of tables zeroed at every open, twice per cycle.)
  return o;
}

struct cycle_stats {
  std::atomic<uint64_t> cycles{0};  // read by the progress line while workers run
  uint64_t killed_mid_run = 0, acked = 0, redelivered = 0;
};

// Reopens the directory and checks the oracle. `acked_max[k]` is the highest sequence number
// acknowledged for key k.
bool verify(const std::string& dir, const std::vector<uint64_t>& acked_max, std::string& why,
            file_system* fs = nullptr) {
  auto o = engine_opts(dir, fs);
  o.checkpoint_on_close = false;
  auto e = ledger_engine::open(o);
  if (!e) {
    why = "recovery failed: " + e.error().to_string();
    return false;
  }
  auto all = (*e)->export_all();
  if (!all) {
    why = all.error().to_string();
    return false;
  }
  std::vector<testing::ledger_state> by_key(keys);
  for (auto& [k, s] : *all) by_key[std::stoul(k.substr(1))] = s;
  for (int k = 0; k < keys; ++k) {
    const auto& s = by_key[k];
    if (s.last_seq < acked_max[k]) {
      why = "acknowledged event lost: key k" + std::to_string(k) + " acked up to seq " +
            std::to_string(acked_max[k]) + ", state has " + std::to_string(s.last_seq);
      return false;
    }
    if (s.gaps != 0 || s.repeats != 0 || s.count != s.last_seq) {
      why = "key k" + std::to_string(k) + ": " + std::to_string(s.repeats) + " duplicates, " +
            std::to_string(s.gaps) + " holes, count " + std::to_string(s.count) + " for seq " +
            std::to_string(s.last_seq);
      return false;
    }
    int64_t sum = 0;
    for (uint64_t seq = 1; seq <= s.last_seq; ++seq) sum += static_cast<int64_t>((seq - 1) * keys + k);
    if (s.sum != sum) {
      why = "key k" + std::to_string(k) + ": sum " + std::to_string(s.sum) + ", expected " + std::to_string(sum);
      return false;
    }
  }
  return (*e)->close().is_ok() || (why = "close failed", false);
}

uint64_t resume_index(const std::vector<uint64_t>& acked_max, uint64_t lag) {
  uint64_t first_unacked = UINT64_MAX;
  for (int k = 0; k < keys; ++k)  // key k's next event: sequence acked_max[k] + 1
    first_unacked = std::min<uint64_t>(first_unacked, acked_max[k] * keys + k);
  return first_unacked - std::min(first_unacked, lag);
}

// -- worker (a child process of `kill`) ----------------------------------------------------------

int run_worker(const std::string& dir, uint64_t from, uint64_t events) {
  spdlog::set_level(spdlog::level::err);
  auto e = ledger_engine::open(engine_opts(dir, nullptr));
  // The driver's other thread may be spawning a process at this moment: until that child
  // execs, it holds a copy of every descriptor of the driver, the LOCK our verifier just
  // released included (O_CLOEXEC acts only at exec). That lock goes away within
  // milliseconds; a service that spawns processes while reopening an engine would retry too.
  for (int attempt = 0; !e && e.error().code() == errc::locked && attempt < 100; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    e = ledger_engine::open(engine_opts(dir, nullptr));
  }
  if (!e) {
    std::fprintf(stderr, "worker: %s\n", e.error().to_string().c_str());
    return 1;
  }
  std::mutex out_mu;
  std::atomic<uint64_t> answered{0};
  uint64_t sent = 0;
  auto drain = [&] {
    while (answered.load() < sent) std::this_thread::sleep_for(std::chrono::microseconds(200));
  };
  for (uint64_t i = from, n = 0; i < events; i += 64, ++n) {
    if (status st = maybe_rebalance(**e, n, drain); !st.is_ok()) {
      std::fprintf(stderr, "worker: rebalance: %s\n", st.to_string().c_str());
      return 1;
    }
    std::vector<testing::ledger_event> batch;
    for (uint64_t j = i; j < std::min(events, i + 64); ++j) batch.push_back(event_at(j));
    sent += batch.size();
    const uint64_t first = i;
    status st = (*e)->submit_batch(std::move(batch), [&, first](std::vector<submit_result>& rs) {
      std::lock_guard lock(out_mu);
      for (std::size_t k = 0; k < rs.size(); ++k)
        if (rs[k].kind == outcome::applied || rs[k].kind == outcome::duplicate)
          std::printf("ack %llu %c\n", static_cast<unsigned long long>(first + k),
                      rs[k].kind == outcome::duplicate ? 'd' : 'a');
      std::fflush(stdout);
      answered += rs.size();
    });
    if (!st.is_ok()) return 1;
  }
  while (answered.load() < sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::printf("done\n");
  std::fflush(stdout);
  return (*e)->close().is_ok() ? 0 : 1;
}

// -- kill ------------------------------------------------------------------------------------

bool kill_loop(const std::string& self, const std::string& dir, uint64_t seed, uint64_t cycles,
               double seconds, cycle_stats& st, std::string& why) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> acked_max(keys, 0);
  uint64_t high = 0;  // highest acknowledged event index + 1
  const uint64_t events = 400'000;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t c = 0; cycles ? c < cycles : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds; ++c) {
    const uint64_t from = resume_index(acked_max, rng() % 3000);
    int fds[2];
    if (::pipe(fds) != 0) return why = "pipe failed", false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<std::string> args = {self, "worker", "--dir", dir, "--partitions", std::to_string(layout_partitions),
                                     "--lanes", std::to_string(layout_lanes), "--rebalance", std::to_string(rebalance_every),
                                     "--from", std::to_string(from),
                                     "--events", std::to_string(events)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) return why = "spawn failed", false;
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    // Kill at a random moment: sometimes during recovery, mostly under load.
    std::thread killer([pid, delay = 20 + rng() % 250] {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      ::kill(pid, SIGKILL);
    });
    FILE* in = ::fdopen(fds[0], "r");
    char line[128];
    bool done = false;
    while (std::fgets(line, sizeof line, in)) {
      unsigned long long i;
      char kind;
      if (std::sscanf(line, "ack %llu %c", &i, &kind) == 2) {
        const auto e = event_at(i);
        auto& m = acked_max[i % keys];
        m = std::max<uint64_t>(m, e.seq);
        high = std::max<uint64_t>(high, i + 1);
        ++st.acked;
        st.redelivered += kind == 'd';
      } else if (std::strncmp(line, "done", 4) == 0) {
        done = true;
      }
    }
    std::fclose(in);
    killer.join();
    int ws;
    ::waitpid(pid, &ws, 0);
    st.killed_mid_run += WIFSIGNALED(ws) && !done;
    ++st.cycles;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0) {  // it failed on its own: its stderr says why
      why = "cycle " + std::to_string(c) + ": the worker exited with status " + std::to_string(WEXITSTATUS(ws));
      return false;
    }
    if (!verify(dir, acked_max, why)) {
      why = "cycle " + std::to_string(c) + ": " + why;
      return false;
    }
    if (done) {  // finished the whole workload: start over on a fresh directory
      std::filesystem::remove_all(dir);
      std::fill(acked_max.begin(), acked_max.end(), 0);
      high = 0;
    }
  }
  return true;
}

// -- power loss ----------------------------------------------------------------------------------

bool powerloss_loop(const std::string& dir, uint64_t seed, uint64_t cycles, double seconds,
                    cycle_stats& st, std::string& why) {
  spdlog::set_level(spdlog::level::off);
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> acked_max(keys, 0);
  uint64_t high = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t c = 0; cycles ? c < cycles : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds; ++c) {
    fault_file_system ffs(posix_file_system());  // a fresh machine each cycle
    {
      // Declared before the engine: its close (at the end of this block) still runs callbacks.
      std::mutex mu;
      std::atomic<uint64_t> sent{0}, answered{0};
      auto e = ledger_engine::open(engine_opts(dir, &ffs));
      if (!e) return why = "cycle " + std::to_string(c) + ": open: " + e.error().to_string(), false;
      const uint64_t from = resume_index(acked_max, rng() % 2000);
      const uint64_t batches = 20 + rng() % 60;
      std::atomic<bool> crashed{false};
      std::thread crasher([&, delay = rng() % 40] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        ffs.crash_at(1);
        crashed = true;
      });
      auto drain = [&] {
        while (answered.load() < sent.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
      };
      for (uint64_t b = 0; b < batches && !crashed; ++b) {
        // A crash in it fails it: the oracle judges what was acknowledged all the same.
        // After the crash nothing comes back up: do not wait for it.
        ignore(maybe_rebalance(**e, b, drain, std::chrono::milliseconds(50)));
        std::vector<testing::ledger_event> batch;
        const uint64_t first = from + b * 64;
        sent += 64;
        for (uint64_t j = first; j < first + 64; ++j) batch.push_back(event_at(j));
        ignore((*e)->submit_batch(std::move(batch), [&, first](std::vector<submit_result>& rs) {
          std::lock_guard lock(mu);
          for (std::size_t k = 0; k < rs.size(); ++k) {
            if (rs[k].kind != outcome::applied && rs[k].kind != outcome::duplicate) continue;
            const uint64_t i = first + k;
            acked_max[i % keys] = std::max<uint64_t>(acked_max[i % keys], event_at(i).seq);
            high = std::max<uint64_t>(high, i + 1);
            ++st.acked;
            st.redelivered += rs[k].kind == outcome::duplicate;
          }
          answered += rs.size();
        }));
      }
      crasher.join();
    }  // close(): everything in flight is answered (failed) first; the acked set is final
    status pl = ffs.power_loss({/*torn=*/true, seed + c});
    if (!pl.is_ok()) return why = "power loss simulation: " + pl.to_string(), false;
    ++st.cycles;
    if (!verify(dir, acked_max, why)) {
      why = "cycle " + std::to_string(c) + ": " + why;
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  uint64_t cycles = 0, seed = 1, from = 0, events = 0;
  double seconds = 0;
  int workers = 2;
  CLI::App app{"statefold-torture: kill -9 and power-loss cycles with the RELIABILITY.md oracle"};
  app.require_subcommand(1);
  auto* kill = app.add_subcommand("kill", "random kill -9 of worker processes under load");
  auto* power = app.add_subcommand("powerloss", "simulated power loss (fault-injecting file system)");
  auto* worker = app.add_subcommand("worker", "internal: the process `kill` kills");
  for (auto* c : {kill, power, worker}) {
    c->add_option("--dir", dir, "working directory")->required();
    c->add_option("--partitions", layout_partitions, "partitions")->capture_default_str()->check(CLI::Range(1, 4096));
    c->add_option("--lanes", layout_lanes, "journal lanes they share")->capture_default_str()->check(CLI::Range(1, 4096));
    c->add_option("--rebalance", rebalance_every, "every N batches, release a partition and activate it again (0: never)")
        ->capture_default_str();
  }
  for (auto* c : {kill, power}) {
    c->add_option("--cycles", cycles, "number of cycles (or use --seconds)");
    c->add_option("--seconds", seconds, "run cycles for this long");
    c->add_option("--seed", seed, "seed");
  }
  for (auto* c : {kill, power})
    c->add_option("--workers", workers, "parallel workers, each on its own directory (one per core)");
  worker->add_option("--from", from)->required();
  worker->add_option("--events", events)->required();
  CLI11_PARSE(app, argc, argv);
  if (layout_lanes > layout_partitions) {
    std::fprintf(stderr, "--lanes %u: at most one lane per partition (--partitions %u)\n", layout_lanes,
                 layout_partitions);
    return 2;
  }
  if (*worker) return run_worker(dir, from, events);
  if (cycles == 0 && seconds <= 0) cycles = 20;
  spdlog::set_level(spdlog::level::warn);  // the verifier reopens the directory every cycle

  std::filesystem::create_directories(dir);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<cycle_stats> stats(static_cast<std::size_t>(std::max(1, workers)));
  std::vector<std::string> errors(stats.size());
  std::vector<std::thread> ts;
  std::atomic<bool> ok{true};
  for (std::size_t w = 0; w < stats.size(); ++w) {
    ts.emplace_back([&, w] {
      const std::string wdir = dir + "/w" + std::to_string(w);
      std::filesystem::remove_all(wdir);
      const bool good = *kill ? kill_loop(argv[0], wdir, seed + w, cycles, seconds, stats[w], errors[w])
                              : powerloss_loop(wdir, seed + w, cycles, seconds, stats[w], errors[w]);
      if (!good) ok = false;
    });
  }
  // A progress line every 30 s on stderr: long runs (scripts/torture.sh) are not silent.
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  bool finished = false;
  std::thread progress([&] {
    std::unique_lock lock(progress_mu);
    while (!progress_cv.wait_for(lock, std::chrono::seconds(30), [&] { return finished; })) {
      uint64_t n = 0;
      for (const auto& s : stats) n += s.cycles.load();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "statefold-torture %s: %llu cycles in %.0f s (%.1f/s), %s\n",
                   *kill ? "kill" : "powerloss", static_cast<unsigned long long>(n), secs, n / secs,
                   ok ? "all passed so far" : "FAILED (details at the end)");
    }
  });
  for (auto& t : ts) t.join();
  {
    std::lock_guard lock(progress_mu);
    finished = true;
  }
  progress_cv.notify_one();
  progress.join();
  cycle_stats total;
  for (const auto& s : stats) {
    total.cycles += s.cycles.load();
    total.killed_mid_run += s.killed_mid_run;
    total.acked += s.acked;
    total.redelivered += s.redelivered;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s cycles: %llu in %.0f s (%llu killed mid-run), %llu acknowledgements (%llu redelivered duplicates); "
              "acknowledged lost 0, duplicates applied 0, holes 0, failed recoveries 0%s\n",
              *kill ? "kill -9" : "power-loss", static_cast<unsigned long long>(total.cycles.load()), secs,
              static_cast<unsigned long long>(total.killed_mid_run), static_cast<unsigned long long>(total.acked),
              static_cast<unsigned long long>(total.redelivered), ok ? "" : " — NOT TRUE, see below");
  for (const auto& e : errors)
    if (!e.empty()) std::printf("FAILED: %s\n", e.c_str());
  return ok ? 0 : 1;
}
