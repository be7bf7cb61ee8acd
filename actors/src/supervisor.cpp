#include "statefold/detail/supervisor.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include "statefold/log.hpp"

namespace statefold::detail {

namespace {

/// What the supervisor knows of one partition.
struct watch {
  bool down = false;
  bool failed = false;
  bool stop_sent = false;  // stopped by us, its lane having failed
  caf::error reason;       // why the partition actor stopped
  std::chrono::milliseconds backoff{0};
  std::chrono::steady_clock::time_point up_since = std::chrono::steady_clock::now();
};

struct supervisor_state {
  static inline const char* name = "statefold.supervisor";
  supervised_engine* engine = nullptr;
  const engine_options* options = nullptr;
  spdlog::logger* log = nullptr;
  std::map<uint32_t, watch> watches;
  std::map<caf::actor_addr, uint32_t> by_addr;       // partition actors
  std::map<caf::actor_addr, uint32_t> flusher_addr;  // lane flushers
  std::map<uint32_t, caf::actor> current;            // what track() saw last
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void track(supervisor_actor* self, uint32_t p, const caf::actor& a) {
  auto& st = self->state;
  self->monitor(a);
  st.by_addr[a.address()] = p;
  st.current[p] = a;
  auto& w = st.watches[p];
  w.down = w.failed = w.stop_sent = false;
  w.up_since = std::chrono::steady_clock::now();
}

void track_flusher(supervisor_actor* self, uint32_t l, const caf::actor& f) {
  if (!f) return;
  self->monitor(f);
  self->state.flusher_addr[f.address()] = l;
}

// Every partition of lane `l` still up is stopped, to restart over the lane reopened from
// disk: its failure is theirs, whether they have noticed yet or not (an idle one would only
// at its next event).
void stop_lane(supervisor_actor* self, uint32_t l, uint32_t except) {
  auto& st = self->state;
  for (uint32_t q = l; q < st.engine->partition_count(); q += st.engine->lane_count()) {
    auto& wq = st.watches[q];
    if (q == except || wq.down || wq.stop_sent) continue;
    wq.stop_sent = true;
    log_with(*st.log, spdlog::level::warn, {.partition = q}, "partition {}: stopping it, its journal lane {} failed", q,
             l);
    caf::anon_send_exit(st.current[q], caf::exit_reason::user_shutdown);
  }
}

void on_down(supervisor_actor* self, const caf::down_msg& dm) {
  auto& st = self->state;
  supervised_engine& e = *st.engine;
  if (auto f = st.flusher_addr.find(dm.source); f != st.flusher_addr.end()) {
    const uint32_t l = f->second;
    st.flusher_addr.erase(f);
    if (e.closing()) return;
    if (e.flusher_stopped(l, dm.source)) {
      log_with(*st.log, spdlog::level::err, {}, "journal lane {}: its flusher stopped ({})", l,
               caf::to_string(dm.reason));
      stop_lane(self, l, UINT32_MAX);
    }
    return;
  }
  auto it = st.by_addr.find(dm.source);
  if (it == st.by_addr.end()) return;
  const uint32_t p = it->second;
  st.by_addr.erase(it);
  // An actor of an earlier life of p (released, then activated again before its down message
  // arrived) says nothing about the actor running p now.
  if (const auto& now = st.current[p]; now && now.address() != dm.source) return;
  auto& w = st.watches[p];
  w.down = true;
  if (!dm.reason || e.closing()) return;
  w.failed = true;
  w.reason = dm.reason;
  const uint32_t lane = p % e.lane_count();
  if (e.lane_failed(lane)) stop_lane(self, lane, p);
  // A partition that stayed up for a healthy stretch starts again from the first delay.
  const engine_options& o = *st.options;
  if (std::chrono::steady_clock::now() - w.up_since >= o.restart_backoff_reset_after)
    w.backoff = std::chrono::milliseconds(0);
  w.backoff = w.backoff.count() == 0 ? o.restart_backoff : std::min(w.backoff * 2, o.restart_backoff_max);
  log_with(*st.log, spdlog::level::warn, {.partition = p}, "partition {} stopped ({}); restarting in {} ms", p,
           caf::to_string(w.reason), w.backoff.count());
  self->delayed_send(self, w.backoff, restart_atom::value, p);
}

// Recovers partition p and starts it; the lane's flusher is watched anew if recovery reopened
// the lane.
result<caf::actor> start(supervisor_actor* self, uint32_t p, bool activate) {
  supervised_engine& e = *self->state.engine;
  const uint32_t l = p % e.lane_count();
  const caf::actor before = e.flusher_of(l);
  auto a = e.start_partition(p, activate);
  if (const caf::actor now = e.flusher_of(l); now != before) track_flusher(self, l, now);  // lane reopened
  return a;
}

void on_restart(supervisor_actor* self, uint32_t p) {
  auto& st = self->state;
  supervised_engine& e = *st.engine;
  if (e.closing()) return;
  // Released while it was down (a release that failed half-way): it stays released, unsealed;
  // its lane keeps its records until activate() recovers it. Activated meanwhile (up again):
  // this restart is stale.
  if (e.released(p) || !st.watches[p].down) return;
  // The old partition's writes (a flush, a checkpoint in slices) must be done before its
  // directory is recovered: wait for its lane's flusher to finish them.
  if (e.lane_work_pending(p)) {
    self->delayed_send(self, std::chrono::milliseconds(5), restart_atom::value, p);
    return;
  }
  auto a = start(self, p, /*activate=*/false);
  if (!a) {
    if (e.closing()) return;  // close() began while we recovered
    log_with(*st.log, spdlog::level::err, {.partition = p}, "partition {}: recovery failed: {}; retrying", p,
             a.error().to_string());
    e.recovery_failed(p, a.error());
    auto& w = st.watches[p];
    w.backoff = std::min(w.backoff * 2, st.options->restart_backoff_max);
    self->delayed_send(self, w.backoff, restart_atom::value, p);
    return;
  }
  e.restarted(p);
  track(self, p, *a);
  log_with(*st.log, spdlog::level::info, {.partition = p}, "partition {} restarted", p);
}

void on_activate(supervisor_actor* self, work_ptr w) {
  auto& st = self->state;
  supervised_engine& e = *st.engine;
  auto a = work_cast<activate_work>(w);
  const uint32_t p = a->partition;
  if (e.closing()) return a->done({errc::failed, "activate: the engine is closed"});
  // Writes of its last life (a checkpoint in slices) must be done before it recovers.
  if (e.lane_work_pending(p)) {
    self->delayed_send(self, std::chrono::milliseconds(5), activate_atom::value, std::move(w));
    return;
  }
  auto actor = start(self, p, /*activate=*/true);
  if (!actor) return a->done(actor.error());
  track(self, p, *actor);
  log_with(*st.log, spdlog::level::info, {.partition = p}, "partition {} activated", p);
  a->done(status::ok());
}

}  // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, supervised_engine& engine, const engine_options& options,
                            spdlog::logger& log, std::vector<caf::actor> partitions,
                            std::vector<caf::actor> flushers) {
  return sys.spawn<caf::detached>(
      [&engine, &options, &log, partitions = std::move(partitions),
       flushers = std::move(flushers)](supervisor_actor* self) -> caf::behavior {
        auto& st = self->state;
        st.engine = &engine;
        st.options = &options;
        st.log = &log;
        for (uint32_t p = 0; p < partitions.size(); ++p) {
          if (partitions[p]) track(self, p, partitions[p]);
          else st.watches[p].down = true;  // released
        }
        for (uint32_t l = 0; l < flushers.size(); ++l) track_flusher(self, l, flushers[l]);
        self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
        return {
            [self](restart_atom, uint32_t p) { on_restart(self, p); },
            [self](activate_atom, work_ptr w) { on_activate(self, std::move(w)); },
        };
      });
}

}  // namespace statefold::detail
