#pragma once

// statefold-booking run: consume an input (a JSON Lines file, standard input, or the
// generated demo workload) into a data directory, exactly once across reruns.

#include <cstdint>
#include <optional>
#include <string>

#include "input.hpp"

namespace booking {

struct run_options {
  std::string data = "./statefold-data";
  std::optional<uint32_t> partitions;      ///< a new directory's; an existing one keeps its own
  std::string durability = "sync";
  std::string input;                        ///< empty: the demo workload
  std::string source;                       ///< --source: the input's source name
  std::optional<uint64_t> dedup_window;     ///< nullopt: the directory's (262,144 when new)
  bool allow_no_dedup = false;
  std::string ack_log;
  bool strict = false;
  demo_options demo;
};

/// Runs it; returns the exit code (0 ok, 1 error or events not acknowledged, 2 --strict and a
/// malformed line). SIGINT and SIGTERM stop it gracefully: what is in flight is answered and
/// made durable, the directory is checkpointed, the summary printed, and it exits 0; the next
/// run resumes where it stopped.
int run(const run_options& o);

}  // namespace booking
