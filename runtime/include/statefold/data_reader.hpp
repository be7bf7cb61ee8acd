#pragma once

// data_reader<Model>: read-only access to a data directory, beside a running writer or not.
//
// It takes no lock, writes nothing, bumps no epoch and needs no free disk: `get` and `export`
// of a program, and anything else that only looks. Each read rebuilds what it asks for with
// recovery's own rules (recovery.hpp), minus the repairs: the partition's newest checkpoint the
// log still covers, then the log after it. get() reads one partition and decodes one key's
// state and events; for_each_partition() holds one partition at a time.
//
// Beside a live writer (someone holds LOCK) it reads the log only up to the LSN the writer
// has published as durable (live_progress.hpp): what follows may be a batch being written.
// A segment recycled or released, or a checkpoint pruned, under the reader shows as damage or
// a missing file: the reader reads again (up to `attempts` times) as long as a writer is live.
// With no writer, damage is reported as recovery would report it (a torn tail is skipped,
// never cut). What it returns is durable state: a live writer's applied-but-not-yet-durable
// events are not in it.
//
// Not thread-safe; one reader per thread.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "statefold/checkpoint.hpp"
#include "statefold/data_dir.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/model.hpp"
#include "statefold/partitioner.hpp"
#include "statefold/recovery.hpp"
#include "statefold/status.hpp"

namespace statefold {

namespace detail {
/// How far one attempt may read, and whether a writer was live when it started.
struct read_bound {
  bool live = false;
  uint64_t epoch = 0;               ///< MANIFEST's, when the attempt started
  uint64_t max_lsn = UINT64_MAX;    ///< the live writer's published durable LSN
};
/// Runs `attempt` for a partition of `dir` whose records are in journal lane `lane`, again
/// while it fails and a writer is live (up to `attempts` times, waiting a little longer each
/// time). The Model-independent part.
status read_with_retries(file_system& fs, const std::string& dir, uint32_t lane, int attempts,
                         const std::function<status(const read_bound&)>& attempt);
}  // namespace detail

template <model Model>
class data_reader {
 public:
  using state_type = typename Model::state;
  using entities = std::vector<std::pair<std::string, state_type>>;

  /// Reads MANIFEST (and nothing else yet). not_found: no MANIFEST; corruption or
  /// unsupported: it is damaged, or of another format version, and the error says which.
  static result<data_reader> open(file_system& fs, std::string dir) {
    SF_ASSIGN_OR_RETURN(bool present, fs.exists(path_join(dir, "MANIFEST")));
    if (!present) {
      SF_RETURN_IF_ERROR(detail::check_no_orphan_partitions(fs, dir));
      return status{errc::not_found, dir + ": no statefold data directory here (no MANIFEST)"};
    }
    SF_ASSIGN_OR_RETURN(manifest m, read_manifest(fs, dir));
    if (!m.model.empty() && m.model != model_name_of<Model>())
      return status{errc::config_mismatch, path_join(dir, "MANIFEST") + ": the data was written by model '" +
                                               m.model + "', this program's model is '" +
                                               std::string(model_name_of<Model>()) + "'"};
    if (m.codec_version != codec_version_of<Model>())
      return status{errc::config_mismatch,
                    path_join(dir, "MANIFEST") + ": the data was written with codec version " +
                        std::to_string(m.codec_version) + ", this program has version " +
                        std::to_string(codec_version_of<Model>())};
    return data_reader(fs, std::move(dir), m);
  }

  const manifest& info() const noexcept { return m_; }
  /// How many times a read is retried while a live writer changes files under it.
  void set_attempts(int n) noexcept { attempts_ = n; }

  /// The durable state of `key`, or nullopt for a key its partition does not hold.
  result<std::optional<state_type>> get(std::string_view key) {
    const uint32_t p = partitioner(m_.partitions, m_.key_groups).partition_of(key);
    entities found;
    SF_RETURN_IF_ERROR(read_partition(p, [&](std::string_view k) { return k == key; }, found));
    if (found.empty()) return std::optional<state_type>();
    return std::optional<state_type>(std::move(found.front().second));
  }

  /// Every partition in turn: `f(partition, its entities sorted by key)`. Stops at the first
  /// error, f's included.
  status for_each_partition(const std::function<status(uint32_t, entities&)>& f) {
    for (uint32_t p = 0; p < m_.partitions; ++p) {
      entities all;
      SF_RETURN_IF_ERROR(read_partition(p, [](std::string_view) { return true; }, all));
      SF_RETURN_IF_ERROR(f(p, all));
    }
    return status::ok();
  }

 private:
  data_reader(file_system& fs, std::string dir, manifest m) : fs_(&fs), dir_(std::move(dir)), m_(std::move(m)) {}

  // Rebuilds the entities of partition p that `want(key)` accepts, sorted by key.
  template <class Want>
  status read_partition(uint32_t p, Want&& want, entities& out) {
    const std::string pdir = path_join(dir_, partition_dir_name(p));
    std::map<std::string, state_type, std::less<>> states;
    auto attempt = [&](const detail::read_bound& b) -> status {
      states.clear();
      auto store = checkpoint_store::open_read_only(*fs_, path_join(pdir, layout::checkpoint_dir), p);
      recovery_hooks hooks;
      hooks.reset = [&] { states.clear(); };
      hooks.load_checkpoint = [&](const loaded_checkpoint& c) -> status {
        states.clear();
        if (c.codec_version != codec_version_of<Model>())
          return {errc::unsupported, c.path + ": written with codec version " +
                                         std::to_string(c.codec_version) + " of the model"};
        for (const auto& [k, bytes] : c.entities) {
          if (!want(k)) continue;
          state_type s{};
          if (!Model::decode_state(bytes, s))
            return {errc::corruption, c.path + ": the model cannot decode the state of key '" +
                                          std::string(k) + "'"};
          states.insert_or_assign(std::string(k), std::move(s));
        }
        return status::ok();
      };
      hooks.replay = [&](const log_record& r) -> status {
        if (r.type != log_format::record_type::event) return status::ok();
        auto env = decode_envelope(r.payload);
        if (!env)
          return {errc::corruption, std::string(r.file) + " at offset " + std::to_string(r.offset) +
                                        " (LSN " + std::to_string(r.lsn) + "): " + env.error().message()};
        if (!want(env->key)) return status::ok();
        const event_context ctx{env->event_id, env->key,    env->session,       env->correlation,
                                env->causation, env->source, env->source_offset, env->time_us};
        typename Model::event e{};
        if (!Model::decode_event(env->body, ctx, e))
          return {errc::corruption, std::string(r.file) + " at offset " + std::to_string(r.offset) +
                                        " (LSN " + std::to_string(r.lsn) +
                                        "): the model cannot decode the logged event"};
        auto it = states.find(env->key);
        if (it == states.end()) it = states.emplace(std::string(env->key), state_type{}).first;
        try {
          if (apply_event<Model>(it->second, e, ctx).erase) states.erase(it);
        } catch (const std::exception& ex) {
          return {errc::failed, std::string(r.file) + " (LSN " + std::to_string(r.lsn) +
                                    "): handler threw on replay (non-deterministic apply?): " + ex.what()};
        }
        return status::ok();
      };
      recovery_options ro;
      ro.partition = p;
      ro.lane = m_.membership(m_.lane_of(p));
      ro.max_epoch = b.epoch;
      ro.repair = false;
      ro.max_lsn = b.max_lsn;
      return recover_partition(*fs_, path_join(lane_dir(dir_, m_.lane_of(p)), layout::log_dir), store, ro,
                               hooks)
          .to_status();
    };
    SF_RETURN_IF_ERROR(detail::read_with_retries(*fs_, dir_, m_.lane_of(p), attempts_, attempt)
                           .with_context("partition " + std::to_string(p)));
    out.clear();
    out.reserve(states.size());
    for (auto& [k, s] : states) out.emplace_back(k, std::move(s));
    return status::ok();
  }

  file_system* fs_;
  std::string dir_;
  manifest m_;
  int attempts_ = 20;
};

}  // namespace statefold
