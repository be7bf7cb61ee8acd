#include "statefold/engine.hpp"

#include <thread>

namespace statefold {

const char* to_string(durability d) noexcept {
  switch (d) {
    case durability::sync: return "sync";
    case durability::interval: return "interval";
    case durability::none: return "none";
  }
  return "unknown";
}

namespace detail {

void configure_actor_system(caf::actor_system_config& cfg, const engine_options& o) {
  // CAF would start at least 4 workers; on a 2-core machine that only adds contention.
  const std::size_t threads =
      o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", threads);
  // A bounded turn per actor: one busy partition cannot starve the others.
  cfg.set("scheduler.max-throughput", o.max_throughput);
}

}  // namespace detail
}  // namespace statefold
