#pragma once

// crash_explorer: runs a user's scripted workload with the user's Model against every crash
// point, in both flavours, and checks what recovery gives back.
//
//   auto report = statefold::testing::explore_crashes<my_model>(
//       [](statefold::testing::crash_driver<my_model>& d) {   // the workload, deterministic
//         for (int i = 0; i < 30; ++i) {
//           d.apply(make_event(i));
//           if (i % 5 == 4) d.sync();          // acknowledges everything applied so far
//           if (i % 10 == 9) d.checkpoint();
//         }
//       });
//   EXPECT_TRUE(report.ok()) << report;
//
// How: the workload runs once on a simulated disk (memory_file_system under
// fault_file_system) to count its mutating I/O operations (writes, syncs, segment creation and
// recycling, checkpoint write / sync / rename / directory sync, pruning, releases). Then, for
// every operation n and both flavours, it runs again on a fresh disk that fails at operation n
// (the process dies there):
//   process crash  the kernel keeps what was written (fault_file_system::restart_after_crash)
//   power loss     unsynced writes, creations, renames and removals are undone, a random prefix
//                  of the unsynced writes kept (torn writes; seeded)
// and the first recovery itself is crashed at one of its own operations before a second one
// completes. After each cycle the built-in oracles must hold:
//   - every acknowledged event (applied before a sync that returned) is in the state;
//   - the state equals the fold, computed here with the Model's apply in memory, of a prefix
//     of the applied events: nothing twice, no hole, nothing foreign — so checkpoint + tail
//     replay equals a full replay;
//   - recovering once more gives the same state (recovery is idempotent);
// plus the user's predicate, if any. States are compared with the state's operator== when it
// has one, else by their encoding (Model::encode_state) — which cannot see a field that both
// codecs leave out: give the state an operator== (or a predicate) to catch that.
//
// Every case is deterministic (the disk is in memory, the torn prefixes come from the seed,
// the clock logged with events is fixed): a failure names its case, and
// STATEFOLD_CRASH_CASE=<flavour>:<operation> in the environment runs that case alone, as the
// report's replay line shows.
//
// Single-threaded; the workload runs on partition_state<Model>, the core the engine's actors
// drive.

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "statefold/model.hpp"
#include "statefold/partition_state.hpp"
#include "statefold/testing/fault_fs.hpp"
#include "statefold/testing/memory_fs.hpp"

namespace statefold::testing {

/// What a workload drives: one partition on the simulated disk. After the simulated crash,
/// every call fails and changes nothing (the process is dead); the workload may go on calling.
template <model Model>
class crash_driver {
 public:
  using event_type = typename Model::event;

  /// Applies an event (validate, dedup, Model::apply, log). Not durable until sync().
  apply_result apply(const event_type& e, const event_meta& meta = {}) {
    if (!p_) return {outcome::failed, 0, "crashed"};
    apply_result r = p_->apply(e, meta);
    if (r.kind == outcome::applied) applied_.push_back({r.lsn, e, meta});
    return r;
  }
  /// Makes everything applied durable; true acknowledges it (the oracle holds you to that).
  bool sync() {
    if (!p_) return false;
    auto r = p_->sync();
    if (r) acknowledged_ = std::max(acknowledged_, *r);
    return r.has_value();
  }
  /// Writes a checkpoint (and releases what it replaces).
  bool checkpoint() { return p_ && p_->checkpoint().is_ok(); }
  bool crashed() const noexcept { return !p_ || p_->failure().code() == errc::crashed; }
  /// The partition, for anything else (nullptr once crashed at open).
  partition_state<Model>* partition() noexcept { return p_.get(); }

  struct applied_event {
    uint64_t lsn;
    event_type event;
    event_meta meta;
  };
  const std::vector<applied_event>& applied() const noexcept { return applied_; }
  uint64_t acknowledged() const noexcept { return acknowledged_; }

 private:
  template <model M>
  friend class crash_explorer;
  std::unique_ptr<partition_state<Model>> p_;
  std::vector<applied_event> applied_;
  uint64_t acknowledged_ = 0;
};

struct crash_explorer_options {
  /// The partition's options; `dir` and `clock` are the explorer's. The defaults here make
  /// segments roll and recycle and checkpoints prune within a few dozen events.
  partition_options partition = [] {
    partition_options o;
    o.dedup_window = 64;
    o.log.segment_bytes = 2048;
    o.log.max_record_bytes = 1024;
    o.log.max_free_segments = 1;
    return o;
  }();
  bool process_crash = true;
  bool power_loss = true;
  bool torn_writes = true;     ///< power loss keeps a random prefix of unsynced writes
  bool crash_recovery = true;  ///< also crash the first recovery once, then recover again
  uint64_t seed = 1;
  /// Named in the report's replay line (e.g. the GoogleTest test name).
  std::string name = "crash_explorer";
};

/// What the exploration found.
struct crash_report {
  std::string name;
  uint64_t operations = 0;  ///< mutating I/O operations of one fault-free run
  uint64_t applied = 0;     ///< events that run applied
  uint64_t acknowledged = 0;  ///< the durable LSN its last sync returned
  uint64_t cycles = 0;      ///< crash-and-recover cycles run
  std::vector<std::string> failures;  ///< each: flavour, operation, what broke, replay line
  bool ok() const noexcept { return failures.empty() && cycles > 0; }
  /// "crash points: 131 operations x 2 flavours, 262 cycles, 0 failures" (+ the failures).
  std::string summary() const;
};
std::ostream& operator<<(std::ostream& os, const crash_report& r);

namespace detail {
/// STATEFOLD_CRASH_CASE, parsed: run only this flavour ("power_loss" / "process_crash") and
/// operation. nullopt when unset; an unparsable value aborts with a message.
struct crash_case {
  bool power_loss = true;
  uint64_t operation = 0;
};
std::optional<crash_case> crash_case_from_env();
std::string replay_line(const std::string& name, bool power_loss, uint64_t operation);
}  // namespace detail

/// A user's check of a recovered state: empty when fine, else what is wrong. It gets every
/// recovered (key, state) and the events that were acknowledged, in order.
template <model Model>
using crash_predicate = std::function<std::string(
    const std::map<std::string, typename Model::state>& state,
    const std::vector<typename crash_driver<Model>::applied_event>& acknowledged)>;

template <model Model>
class crash_explorer {
 public:
  using workload = std::function<void(crash_driver<Model>&)>;
  using state_map = std::map<std::string, typename Model::state>;

  explicit crash_explorer(crash_explorer_options o) : o_(std::move(o)) {}

  crash_report run(const workload& w, const crash_predicate<Model>& check = {}) {
    crash_report rep;
    rep.name = o_.name;
    // 1. A fault-free run: how many operations, and the oracles on it (a clean restart).
    {
      memory_file_system mem;
      fault_file_system ffs(mem);
      crash_driver<Model> d;
      open_into(ffs, d);
      if (!d.p_) {
        rep.failures.push_back("the partition does not open on an empty disk");
        return rep;
      }
      w(d);
      rep.operations = ffs.mutating_ops();
      rep.applied = d.applied().size();
      rep.acknowledged = d.acknowledged();
      d.p_.reset();
      if (std::string why = verify(ffs, d, check); !why.empty())
        rep.failures.push_back("without any crash, after a restart: " + why);
    }
    const auto only = detail::crash_case_from_env();
    for (uint64_t n = 1; n <= rep.operations; ++n) {
      for (bool power : {false, true}) {
        if ((power && !o_.power_loss) || (!power && !o_.process_crash)) continue;
        if (only && (only->power_loss != power || only->operation != n)) continue;
        ++rep.cycles;
        if (std::string why = one_cycle(w, check, n, power); !why.empty())
          rep.failures.push_back(std::string(power ? "power loss" : "process crash") + " at operation " +
                                 std::to_string(n) + " of " + std::to_string(rep.operations) + ": " +
                                 why + "\n  replay: " + detail::replay_line(o_.name, power, n));
      }
    }
    return rep;
  }

 private:
  partition_options options() const {
    partition_options po = o_.partition;
    po.dir = "/data/p-0000";
    po.clock = [] { return uint64_t{1'700'000'000'000'000}; };  // fixed: the fold must agree
    return po;
  }

  void open_into(file_system& fs, crash_driver<Model>& d) {
    auto p = partition_state<Model>::open(fs, options());
    if (p) d.p_ = std::move(p).value();
  }

  // How two states compare: operator== if the state has one, else their encodings.
  static bool same_state(const typename Model::state& a, const typename Model::state& b) {
    if constexpr (std::equality_comparable<typename Model::state>) {
      return a == b;
    } else {
      std::string ea, eb;
      Model::encode_state(a, ea);
      Model::encode_state(b, eb);
      return ea == eb;
    }
  }
  // Empty when equal, else the first key that differs (and how), for the report.
  static std::string difference(const state_map& got, const state_map& want) {
    for (const auto& [k, w] : want) {
      auto it = got.find(k);
      if (it == got.end()) return "key '" + k + "' is missing";
      if (!same_state(it->second, w)) return "key '" + k + "' has another state";
    }
    for (const auto& [k, g] : got)
      if (!want.count(k)) return "key '" + k + "' should not exist";
    return {};
  }

  static state_map fold(const std::vector<typename crash_driver<Model>::applied_event>& events, uint64_t upto) {
    state_map out;
    for (const auto& a : events) {
      if (a.lsn > upto) break;
      const std::string key(Model::key(a.event));
      const event_context ctx{Model::event_id(a.event),
                              key,
                              a.meta.session,
                              a.meta.correlation,
                              a.meta.causation,
                              a.meta.source ? std::string_view(a.meta.source->source) : std::string_view{},
                              a.meta.source ? a.meta.source->offset : 0,
                              uint64_t{1'700'000'000'000'000}};
      if (apply_event<Model>(out[key], a.event, ctx).erase) out.erase(key);
    }
    return out;
  }

  static state_map snapshot(const partition_state<Model>& p) {
    state_map out;
    p.for_each([&](std::string_view k, const typename Model::state& s) { out.emplace(std::string(k), s); });
    return out;
  }

  std::string one_cycle(const workload& w, const crash_predicate<Model>& check, uint64_t n, bool power) {
    memory_file_system mem;
    fault_file_system ffs(mem);
    crash_driver<Model> d;
    ffs.crash_at(n);
    open_into(ffs, d);
    if (d.p_) w(d);
    d.p_.reset();  // the process is gone
    if (power) {
      if (status st = ffs.power_loss({o_.torn_writes, o_.seed * 1'000'003 + n}); !st.is_ok())
        return "the simulated power loss failed: " + st.to_string();
    } else {
      ffs.restart_after_crash();
    }
    if (o_.crash_recovery) {  // a first recovery dies at one of its own operations
      ffs.crash_at(1 + n % 7);
      { auto p = partition_state<Model>::open(ffs, options()); }
      if (power) {
        if (status st = ffs.power_loss({o_.torn_writes, o_.seed * 7 + n}); !st.is_ok())
          return "the simulated power loss during recovery failed: " + st.to_string();
      } else {
        ffs.restart_after_crash();
      }
    }
    ffs.clear_faults();
    return verify(ffs, d, check);
  }

  // Recovers from `fs` and checks the oracles against what the workload did.
  std::string verify(file_system& ffs, const crash_driver<Model>& d, const crash_predicate<Model>& check) {
    auto p = partition_state<Model>::open(ffs, options());
    if (!p) return "recovery failed: " + p.error().to_string();
    const uint64_t recovered = (*p)->next_lsn() - 1;
    const state_map got = snapshot(**p);
    if (recovered < d.acknowledged())
      return "acknowledged events lost: a sync returned LSN " + std::to_string(d.acknowledged()) +
             ", recovery ends at LSN " + std::to_string(recovered);
    if (recovered > (d.applied().empty() ? 0 : d.applied().back().lsn))
      return "recovery ends at LSN " + std::to_string(recovered) + ", after the last event applied";
    if (std::string diff = difference(got, fold(d.applied(), recovered)); !diff.empty())
      return "the recovered state is not the fold of the first " + std::to_string(recovered) +
             " events applied: " + diff +
             " (an event missing, doubled or foreign; or encode and decode of the state or the "
             "event disagree; or apply is not deterministic)";
    if (check) {
      std::vector<typename crash_driver<Model>::applied_event> acked;
      for (const auto& a : d.applied())
        if (a.lsn <= d.acknowledged()) acked.push_back(a);
      if (std::string why = check(got, acked); !why.empty()) return "the predicate says: " + why;
    }
    p->reset();
    auto again = partition_state<Model>::open(ffs, options());
    if (!again) return "a second recovery failed: " + again.error().to_string();
    if (std::string diff = difference(snapshot(**again), got); !diff.empty())
      return "a second recovery gave another state: " + diff;
    return {};
  }

  crash_explorer_options o_;
};

/// explore_crashes<Model>(workload[, predicate][, options]): crash_explorer in one call.
template <model Model>
crash_report explore_crashes(const typename crash_explorer<Model>::workload& w,
                             const crash_predicate<Model>& check = {},
                             crash_explorer_options o = {}) {
  return crash_explorer<Model>(std::move(o)).run(w, check);
}
template <model Model>
crash_report explore_crashes(const typename crash_explorer<Model>::workload& w,
                             crash_explorer_options o) {
  return crash_explorer<Model>(std::move(o)).run(w, {});
}

}  // namespace statefold::testing
