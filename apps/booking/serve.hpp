#pragma once

// statefold-booking serve: the booking service over HTTP (serve.cpp has the API).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace booking {

struct serve_options {
  std::string listen = "127.0.0.1:8080";
  std::string data = "./statefold-data";
  std::optional<uint32_t> partitions;
  std::optional<uint32_t> lanes;  ///< journal lanes of a new directory (default 1)
  std::string durability = "sync";
  std::optional<uint64_t> dedup_window;
  std::size_t max_connections = 512;
  std::size_t max_body_bytes = 32u << 20;
  bool metrics_per_partition = false;
  std::string log_format = "text";  ///< text | json: how stderr's lines are written
};

/// Serves until SIGTERM or SIGINT, then drains, syncs, checkpoints; returns the exit code.
int serve(const serve_options& o);

}  // namespace booking
