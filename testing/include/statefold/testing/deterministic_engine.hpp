#pragma once

// deterministic_engine<Model>: the engine's own partition actors and flushers (the code in
// statefold/detail/partition_actor.hpp that engine<Model> runs), scheduled by CAF's test
// coordinator on the calling thread, one message at a time, in an order drawn from a seed; on
// a simulated disk (memory_file_system under fault_file_system) that a test can crash or cut
// the power of between any two steps. Same seed, same calls: the same trace, message for
// message, and the same answers.
//
//   statefold::testing::deterministic_engine<my_model>::options o;
//   o.seed = 42;
//   auto e = statefold::testing::deterministic_engine<my_model>::open(o);
//   auto t = e->submit({ev1, ev2});            // routed by key, like engine::submit_batch
//   while (e->step()) {}                       // or: e->run_until_idle()
//   EXPECT_EQ(e->answers(t)[0].kind, statefold::outcome::applied);
//   e->crash(/*power_loss=*/true);             // everything not synced is gone; recovered
//
// What it leaves out of engine<Model>: threads (a flusher is a scheduled actor here, detached
// in production), journal lanes shared by partitions (each partition journals alone, in its
// own private lane with its own flusher), the supervisor (crash() restarts every partition from disk at once), and
// backpressure (nothing waits: events are queued). Timers (checkpoint_every, durability
// `interval`) fire when the test calls advance_time().
//
// Single-threaded: call it from one thread.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "statefold/data_dir.hpp"
#include "statefold/detail/flusher_actor.hpp"
#include "statefold/detail/partition_actor.hpp"
#include "statefold/engine_options.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/partitioner.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/memory_fs.hpp"

namespace caf {
class actor_system;
class actor_system_config;
namespace scheduler {
class test_coordinator;
}
}  // namespace caf

namespace statefold::testing {

namespace detail {
/// The Model-independent part: a CAF system on the test coordinator, and the seeded choice of
/// which actor runs next.
class deterministic_scheduler {
 public:
  explicit deterministic_scheduler(uint64_t seed);
  ~deterministic_scheduler();
  caf::actor_system& system();
  /// Runs one message of an actor chosen by the seed among those with mail; the actor, or
  /// nullptr when none has any.
  const caf::abstract_actor* step();
  bool idle();
  /// Moves the coordinator's clock on, firing the timers due (ticks, delayed messages).
  void advance_time(std::chrono::milliseconds d);

 private:
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::mt19937_64 rng_;
};
}  // namespace detail

template <model Model>
class deterministic_engine {
 public:
  using event_type = typename Model::event;
  using state_type = typename Model::state;
  using ticket = std::size_t;

  struct options {
    uint32_t partitions = 2;
    uint64_t seed = 1;
    /// The engine's settings that apply here: mode, dedup_window, log, checkpoint_every_events.
    engine_options engine = [] {
      engine_options o;
      o.dedup_window = 1024;
      o.log.segment_bytes = 16 << 10;
      o.log.max_record_bytes = 4 << 10;
      o.checkpoint_every_events = 0;
      o.checkpoint_every = std::chrono::seconds(0);
      o.checkpoint_on_close = false;
      return o;
    }();
  };

  /// Opens (creating) the data directory "/data" on its own simulated disk.
  static result<std::unique_ptr<deterministic_engine>> open(options o) {
    std::unique_ptr<deterministic_engine> e(new deterministic_engine(std::move(o)));
    SF_RETURN_IF_ERROR(e->start());
    return e;
  }

  ~deterministic_engine() { stop_actors(); }

  /// Queues events, as engine::submit_batch routes them: one message per partition. Their
  /// answers are known once every one is answered (answered(t)).
  ticket submit(std::vector<event_type> events, std::vector<event_meta> metas = {}) {
    const ticket t = tickets_.size();
    tickets_.push_back(std::make_shared<batch>());
    auto& b = *tickets_.back();
    b.results.resize(events.size());
    std::vector<std::vector<std::size_t>> where(router_.partitions());
    for (std::size_t i = 0; i < events.size(); ++i) where[router_.partition_of(Model::key(events[i]))].push_back(i);
    for (uint32_t p = 0; p < router_.partitions(); ++p) {
      if (where[p].empty()) continue;
      auto w = std::make_shared<statefold::detail::submit_work<Model>>();
      for (std::size_t i : where[p]) {
        w->events.push_back(events[i]);
        if (!metas.empty()) w->metas.push_back(metas[i]);
      }
      auto c = std::make_shared<statefold::detail::batch_completion>();
      c->results.resize(where[p].size());
      for (auto& r : c->results) r.partition = p;
      c->metas = &w->metas;
      c->fences = fences_[p].get();
      ++b.parts_left;
      std::weak_ptr<batch> wb = tickets_.back();
      c->on_batch = [wb, idx = where[p]](std::vector<submit_result>& rs) {
        auto bp = wb.lock();
        if (!bp) return;
        for (std::size_t k = 0; k < idx.size(); ++k) bp->results[idx[k]] = rs[k];
        --bp->parts_left;
      };
      c->flight = flight_[p].get();
      flight_[p]->n += static_cast<int64_t>(where[p].size());
      w->done = std::move(c);
      caf::anon_send(actors_[p].partition, statefold::detail::submit_atom::value,
                     statefold::detail::work_ptr(std::move(w)));
    }
    return t;
  }

  /// Runs one message; false when nothing is left to run.
  bool step() {
    const caf::abstract_actor* a = sched_.step();
    if (!a) return false;
    trace_.push_back(name_of(a));
    return true;
  }
  void run_until_idle() {
    while (step()) {
    }
  }
  void advance_time(std::chrono::milliseconds d) { sched_.advance_time(d); }

  bool answered(ticket t) const { return tickets_.at(t)->parts_left == 0; }
  /// The answers of submit `t`, in submission order (meaningful once answered(t)).
  const std::vector<submit_result>& answers(ticket t) const { return tickets_.at(t)->results; }
  /// One line per message run: "p0" (partition 0's actor) or "f0" (its flusher).
  const std::vector<std::string>& trace() const noexcept { return trace_; }
  /// The key's current state (applied events, durable or not), read from its partition.
  std::optional<state_type> get(std::string_view key) const {
    const auto* s = actors_[router_.partition_of(key)].state->find(key);
    return s ? std::optional<state_type>(*s) : std::nullopt;
  }
  const partitioner& router() const noexcept { return router_; }
  fault_file_system& disk() noexcept { return ffs_; }

  /// The process dies now: every actor and message is dropped unanswered (their submitters
  /// are answered `failed`), then, with `power_loss`, the disk loses what was not synced
  /// (a random prefix of unsynced writes kept, from the seed). Then every partition recovers
  /// from the disk, and the engine runs on.
  status crash(bool power_loss) {
    ffs_.crash_at(1);  // nothing more reaches the disk
    stop_actors();
    if (power_loss) {
      SF_RETURN_IF_ERROR(ffs_.power_loss({true, o_.seed * 31 + ++crashes_}));
    } else {
      ffs_.restart_after_crash();
    }
    ffs_.clear_faults();
    return start();
  }

 private:
  struct batch {
    std::vector<submit_result> results;
    std::size_t parts_left = 0;
  };
  struct slot {
    std::shared_ptr<partition_state<Model>> state;
    caf::actor partition, flusher;
  };

  explicit deterministic_engine(options o)
      : o_(std::move(o)), ffs_(mem_), router_(o_.partitions, o_.engine.key_groups), sched_(o_.seed) {
    for (uint32_t p = 0; p < o_.partitions; ++p) {
      flight_.push_back(std::make_unique<statefold::detail::flight_counter>());
      restarts_.push_back(std::make_unique<std::atomic<uint64_t>>(0));
      fences_.push_back(std::make_unique<statefold::detail::source_fences>());
    }
  }

  status start() {
    actors_.clear();
    for (uint32_t p = 0; p < o_.partitions; ++p) {
      partition_options po;
      po.dir = "/data/" + partition_dir_name(p);
      po.partition = p;
      po.dedup_window = o_.engine.dedup_window.value_or(1024);
      po.key_groups = o_.engine.key_groups;
      po.log = o_.engine.log;
      if (po.log.segment_bytes == 0) po.log.segment_bytes = 16 << 10;
      po.inline_rebuild = false;  // as in the engine: the actor persists, then reloads
      po.clock = [] { return uint64_t{1'700'000'000'000'000}; };
      auto ps = partition_state<Model>::open(ffs_, std::move(po));
      if (!ps) return ps.error().with_context("partition " + std::to_string(p));
      slot s;
      s.state = std::shared_ptr<partition_state<Model>>(std::move(ps).value());
      statefold::detail::partition_context ctx{p, &o_.engine, log_.get(), flight_[p].get(),
                                               restarts_[p].get(), fences_[p].get()};
      // Scheduled, not detached: the test coordinator runs it like every other actor.
      s.flusher = sched_.system().spawn(statefold::detail::flusher_actor<Model>);
      s.partition = sched_.system().spawn(statefold::detail::partition_actor<Model>, s.state, s.flusher, ctx);
      names_[caf::actor_cast<caf::abstract_actor*>(s.partition)] = "p" + std::to_string(p);
      names_[caf::actor_cast<caf::abstract_actor*>(s.flusher)] = "f" + std::to_string(p);
      actors_.push_back(std::move(s));
    }
    while (!sched_.idle()) sched_.step();  // the actors' own start-up
    return status::ok();
  }

  void stop_actors() {
    for (auto& s : actors_) {
      caf::anon_send_exit(s.partition, caf::exit_reason::kill);
      caf::anon_send_exit(s.flusher, caf::exit_reason::kill);
    }
    while (sched_.step()) {
    }
    actors_.clear();
    names_.clear();
  }

  std::string name_of(const caf::abstract_actor* a) const {
    auto it = names_.find(a);
    return it == names_.end() ? "?" : it->second;
  }

  options o_;
  memory_file_system mem_;
  fault_file_system ffs_;
  partitioner router_;
  std::shared_ptr<spdlog::logger> log_ = spdlog::default_logger();
  std::vector<std::unique_ptr<statefold::detail::flight_counter>> flight_;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> restarts_;
  std::vector<std::unique_ptr<statefold::detail::source_fences>> fences_;
  detail::deterministic_scheduler sched_;
  std::vector<slot> actors_;
  std::map<const caf::abstract_actor*, std::string> names_;
  std::vector<std::shared_ptr<batch>> tickets_;
  std::vector<std::string> trace_;
  uint64_t crashes_ = 0;
};

}  // namespace statefold::testing
