#pragma once

// redis_store: a statefold::state_store on a Redis server (hiredis, one blocking connection).
//
// Layout under a prefix P (default "statefold"), every name binary-safe:
//   P:meta                              hash: model, codec (check_model)
//   P:s:<key>                           hash: v (version), d (the Model's encoding of the state)
//   P:e:<key size>:<key><event ID>      string: the event's body digest (processed marker)
//   P:src:<source>                      hash: next, fat, fp (the source's consumed position)
//
// commit() is one EVALSHA of a Lua script: Redis runs it atomically, so the check (versions,
// markers, the source's position) and the writes are one step; with `appendfsync always` the
// reply comes after the AOF is on disk. A batch is read with one pipelined round trip.
// Processed markers never expire unless `processed_ttl_s` says so; the source position makes
// a rerun exact even then (docs/stores.md says where expiry still matters).
//
// A Redis Cluster is not supported (the script's keys are not in one slot). Not thread-safe:
// one redis_store per thread. SIGPIPE is blocked in the calling thread during each call, so a
// server that goes away is an error, not a dead process.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "statefold/state_store.hpp"

namespace statefold::stores {

struct redis_address {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
};

/// Parses "redis://HOST[:PORT][/DB]" (PORT 6379 and DB 0 when left out). A URL with
/// credentials is refused without echoing it (AUTH is not supported yet).
result<redis_address> parse_redis_url(std::string_view url);

/// At most 10 years.
inline constexpr uint64_t max_processed_ttl_s = 10ull * 365 * 24 * 3600;

struct redis_options {
  /// 1 to 64 of A-Z a-z 0-9 _ - . (no ':', so that no prefix's keys look like another's).
  std::string prefix = "statefold";
  /// Seconds a processed-event marker lives; 0: forever (the default).
  uint64_t processed_ttl_s = 0;
  double connect_timeout_s = 5;
  /// Bounds every later read and write: a server that hangs becomes an error.
  double io_timeout_s = 30;
};

/// ok, or what is wrong with the options (prefix characters, TTL range).
status check_redis_options(const redis_options& o);

class redis_store final : public state_store {
 public:
  /// Connects (and selects the DB); an unreachable server is an error naming it.
  static result<std::unique_ptr<redis_store>> connect(const redis_address& a, redis_options o = {});
  static result<std::unique_ptr<redis_store>> connect(std::string_view url, redis_options o = {});
  ~redis_store() override;
  redis_store(const redis_store&) = delete;
  redis_store& operator=(const redis_store&) = delete;

  const std::string& name() const noexcept override { return name_; }
  status check_model(std::string_view model, uint32_t codec_version, bool record = true) override;

  result<stored_state> get_state(std::string_view key) override;
  status save_state(std::string_view key, std::string_view bytes) override;
  result<std::optional<uint64_t>> is_processed(std::string_view key, std::string_view event_id) override;
  status mark_processed(std::string_view key, std::string_view event_id, uint64_t body_digest) override;

  status read(const store_read& what, store_read_reply& out) override;
  using state_store::commit;
  result<commit_reply> commit(std::span<const key_commit> keys, const source_advance* source) override;
  result<source_progress> progress(std::string_view source) override;
  status for_each_state(
      const std::function<status(std::string_view key, const stored_state&)>& f) override;

  /// What an acknowledgement means on this server, from CONFIG GET appendonly/appendfsync:
  /// durable() is true only for "appendonly yes, appendfsync always".
  struct durability_info {
    bool durable = false;
    std::string text;  ///< "appendonly yes, appendfsync always", or why it is less
  };
  result<durability_info> durability();

 private:
  struct impl;
  explicit redis_store(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
  std::string name_;
};

}  // namespace statefold::stores
