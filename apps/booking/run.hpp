#pragma once

// statefold-booking run: consume an input (a JSON Lines file, standard input, or the
// generated demo workload) into a data directory, exactly once across reruns.

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "input.hpp"
#include "statefold/stores/redis_store.hpp"

namespace booking {

/// --store: the stateless consumer over an external store instead of the engine.
struct store_options {
  std::string url;                 ///< redis://HOST[:PORT][/DB]; empty: the stateful engine
  std::string prefix = "statefold";
  uint64_t processed_ttl_s = 0;    ///< 0: processed-event markers never expire
  std::size_t batch = 256;         ///< events per commit
};

struct run_options {
  std::string data = "./statefold-data";
  std::optional<uint32_t> partitions;      ///< a new directory's; an existing one keeps its own
  std::optional<uint32_t> lanes;           ///< journal lanes of a new directory (default 1)
  std::string durability = "sync";
  std::string input;                        ///< empty: the demo workload
  std::string source;                       ///< --source: the input's source name
  std::optional<uint64_t> dedup_window;     ///< nullopt: the directory's (262,144 when new)
  bool allow_no_dedup = false;
  std::string ack_log;
  bool strict = false;
  demo_options demo;
  store_options store;
  std::string metrics_listen;          ///< HOST:PORT for /metrics, /healthz, /readyz; empty: none
  bool metrics_per_partition = false;  ///< per-partition series instead of totals
  std::string log_format = "text";     ///< text | json: how stderr's lines are written
};

/// Runs it; returns the exit code (0 ok, 1 error or events not acknowledged, 2 --strict and a
/// malformed line). SIGINT and SIGTERM stop it gracefully: what is in flight is answered and
/// made durable, the directory is checkpointed, the summary printed, and it exits 0; the next
/// run resumes where it stopped.
int run(const run_options& o);

/// A run's input and its --ack-log (closed with it).
struct run_io {
  std::unique_ptr<event_input> input;
  FILE* ack_log = nullptr;
  run_io() = default;
  run_io(const run_io&) = delete;
  run_io& operator=(const run_io&) = delete;
  ~run_io() {
    if (ack_log) std::fclose(ack_log);
  }
};
/// Opens the input (--input FILE|-, or the demo) and the ack log; 0, or the exit code after
/// saying why on stderr. Call after install_stop_handlers(): a read a signal interrupts ends.
int open_run_io(const run_options& o, run_io& io);

/// Connects to the store and checks it holds booking state; `for_writing` records the Model
/// in a store that holds none yet, a reader (get, export) writes nothing and fails then.
statefold::result<std::unique_ptr<statefold::stores::redis_store>> open_store(const store_options& o,
                                                                             bool for_writing);

/// ok, or the usage error in `o` (URL, prefix, TTL), checked before anything is touched.
statefold::status check_store_options(const store_options& o);

/// The same run through statefold::stateless_consumer over `o.store` (run_store.cpp): same
/// inputs, outputs and exit codes; the state lives in the store.
int run_stateless(const run_options& o);

}  // namespace booking
