// The embedded-store design (Kafka Streams, kspp): each consumer reads a key's state from a
// local RocksDB, applies the event, and writes the new state together with the event's ID in
// one WriteBatch per group. The WAL is the durability point: WriteOptions::sync for `sync`;
// a SyncWAL every 5 ms that the group waits for, for `interval`.

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../harness.hpp"
#include "baseline_run.hpp"
#include "baselines.hpp"

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;

constexpr auto sync_period = std::chrono::milliseconds(5);

status rocks_error(const std::string& what, const rocksdb::Status& s) {
  return status(s.IsIOError() ? errc::io_error : errc::failed, "rocksdb: " + what + ": " + s.ToString());
}

/// `interval` durability: SyncWAL every 5 ms on its own thread. A writer calls wait_covering()
/// after its Write returns and is released by the first SyncWAL that started after that call,
/// which therefore covers the write.
class wal_syncer {
 public:
  explicit wal_syncer(rocksdb::DB* db) : db_(db), thread_([this] { loop(); }) {}
  ~wal_syncer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  wal_syncer(const wal_syncer&) = delete;
  wal_syncer& operator=(const wal_syncer&) = delete;

  status wait_covering() {
    std::unique_lock lock(mu_);
    const uint64_t needed = started_ + 1;
    cv_.wait(lock, [&] { return completed_ >= needed || !error_.is_ok() || stop_; });
    if (!error_.is_ok()) return error_;
    if (completed_ < needed) return status(errc::failed, "rocksdb: the WAL syncer stopped");
    return status::ok();
  }

  uint64_t syncs() const {
    std::lock_guard lock(mu_);
    return completed_;
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      const uint64_t gen = ++started_;
      lock.unlock();
      const rocksdb::Status s = db_->SyncWAL();
      lock.lock();
      completed_ = gen;
      if (!s.ok() && error_.is_ok()) error_ = rocks_error("SyncWAL", s);
      cv_.notify_all();
      cv_.wait_for(lock, sync_period, [&] { return stop_; });
    }
  }

  rocksdb::DB* db_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t started_ = 0;    // SyncWAL calls begun
  uint64_t completed_ = 0;  // the latest begun call that has returned
  status error_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

void encode_state(const counter_model::state& s, std::string& out) {
  out.clear();
  counter_model::encode_state(s, out);  // count, sum: 2 x u64 little-endian
}

void run_client(rocksdb::DB* db, int client, const std::vector<event_ref>& events,
                const baseline_options& o, const group_pacer& pacer, wal_syncer* syncer,
                client_tally& out, first_error& err) {
  rocksdb::WriteOptions wo;
  wo.sync = o.durability == store_durability::sync;
  const rocksdb::ReadOptions ro;
  std::unordered_set<std::string_view> seen_ids;
  std::unordered_map<std::string_view, counter_model::state> pending;
  rocksdb::WriteBatch batch;
  std::string id_key, state_key, value, encoded;
  out.latencies_ms.reserve(events.size() / o.group + 1);
  auto fail = [&](status st) {
    err.set(st.with_context("rocksdb client " + std::to_string(client)));
  };
  for (std::size_t begin = 0, n = 0; begin < events.size() && !err.failed(); begin += o.group, ++n) {
    const std::size_t count = std::min(o.group, events.size() - begin);
    const double intended = pacer.intended_send(n);
    seen_ids.clear();
    pending.clear();
    batch.Clear();
    for (std::size_t j = 0; j < count; ++j) {
      const auto& e = *events[begin + j];
      if (!seen_ids.insert(e.id).second) {
        ++out.duplicates;
        continue;
      }
      id_key.assign("id:").append(e.id);
      rocksdb::Status s = db->Get(ro, id_key, &value);
      if (s.ok()) {
        ++out.duplicates;
        continue;
      }
      if (!s.IsNotFound()) return fail(rocks_error("Get " + id_key, s));
      state_key.assign("s:").append(e.key);
      auto it = pending.find(e.key);
      if (it == pending.end()) {
        counter_model::state st;
        s = db->Get(ro, state_key, &value);
        if (s.ok()) {
          if (!counter_model::decode_state(value, st))
            return fail(status(errc::corruption, "state of " + state_key + " is not 16 bytes"));
        } else if (!s.IsNotFound()) {
          return fail(rocks_error("Get " + state_key, s));
        }
        it = pending.emplace(e.key, st).first;
      }
      counter_model::apply(it->second, e);
      ++out.applied;
      encode_state(it->second, encoded);
      if (!(s = batch.Put(state_key, encoded)).ok() || !(s = batch.Put(id_key, "")).ok())
        return fail(rocks_error("WriteBatch::Put", s));
    }
    if (batch.Count() > 0) {
      const rocksdb::Status s = db->Write(wo, &batch);
      if (!s.ok()) return fail(rocks_error("Write of a batch of " + std::to_string(batch.Count()), s));
      if (syncer) {
        if (status st = syncer->wait_covering(); !st.is_ok()) return fail(std::move(st));
      }
    }
    out.latencies_ms.push_back((now_seconds() - intended) * 1e3);
  }
}

// SST + WAL + memtables: what the store holds for the data, approximately (the WAL also holds
// every overwritten state until the memtable is flushed).
result<uint64_t> footprint(rocksdb::DB* db) {
  uint64_t sst = 0, mem = 0;
  db->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
  db->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
  rocksdb::VectorLogPtr wals;
  const rocksdb::Status s = db->GetSortedWalFiles(wals);
  if (!s.ok()) return rocks_error("GetSortedWalFiles", s);
  uint64_t wal = 0;
  for (const auto& f : wals) wal += f->SizeFileBytes();
  return sst + mem + wal;
}

}  // namespace

result<baseline_result> run_rocksdb_baseline(const baseline_options& o,
                                             const std::vector<counter_model::event>& events) {
  if (o.clients < 1 || o.group < 1 || o.dir.empty() || events.empty())
    return status(errc::invalid_argument,
                  "rocksdb baseline: needs clients >= 1, group >= 1, a dir and at least one event");
  const std::string path = o.dir + "/rocksdb";
  std::error_code ec;
  fsys::create_directories(o.dir, ec);
  if (ec) return status(errc::io_error, "rocksdb baseline: creating " + o.dir + ": " + ec.message());

  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.error_if_exists = true;  // a leftover DB would turn every event into a duplicate
  opts.write_buffer_size = 64 << 20;
  opts.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened = rocksdb::DB::Open(opts, path, &raw);
  if (!opened.ok()) return rocks_error("open " + path, opened);
  std::unique_ptr<rocksdb::DB> db(raw);

  baseline_result r;
  r.distinct_keys = distinct_keys(events);
  const auto parts = split_by_key(events, o.clients);
  std::vector<client_tally> tallies(static_cast<std::size_t>(o.clients));
  first_error err;
  uint64_t syncs = 0;

  const auto wb_before = proc_field("/proc/self/io", "write_bytes");
  const uint64_t dir_before = dir_bytes(path);
  const double t0 = now_seconds();
  {
    std::unique_ptr<wal_syncer> syncer;
    if (o.durability == store_durability::interval) syncer = std::make_unique<wal_syncer>(db.get());
    std::vector<group_pacer> pacers;
    for (int t = 0; t < o.clients; ++t) pacers.emplace_back(o, parts[t].size(), events.size(), t0);
    std::vector<std::thread> clients;
    for (int t = 0; t < o.clients; ++t)
      clients.emplace_back(run_client, db.get(), t, std::cref(parts[t]), std::cref(o),
                           std::cref(pacers[t]), syncer.get(), std::ref(tallies[t]), std::ref(err));
    for (auto& c : clients) c.join();
    r.seconds = now_seconds() - t0;
    if (syncer) syncs = syncer->syncs();
  }
  const auto wb_after = proc_field("/proc/self/io", "write_bytes");
  const uint64_t dir_after = dir_bytes(path);
  if (err.failed()) return err.get();
  SF_ASSIGN_OR_RETURN(const uint64_t bytes, footprint(db.get()));

  const rocksdb::Status closed = db->Close();
  if (!closed.ok()) return rocks_error("close " + path, closed);
  db.reset();

  SF_RETURN_IF_ERROR(add_up("rocksdb baseline", tallies, events.size(), r));
  const double n = static_cast<double>(events.size());
  r.file_growth_per_event =
      static_cast<double>(dir_after > dir_before ? dir_after - dir_before : 0) / n;
  std::string written_from;
  if (wb_before && wb_after && *wb_after > *wb_before) {
    r.bytes_written_per_event = static_cast<double>(*wb_after - *wb_before) / n;
    written_from = "/proc/self/io write_bytes over the timed region";
  } else {
    r.bytes_written_per_event = r.file_growth_per_event;
    written_from = "DB dir size growth (/proc/self/io write_bytes unavailable)";
  }
  r.bytes_per_entity = static_cast<double>(bytes) / static_cast<double>(r.distinct_keys);
  r.peak_rss_bytes = 0;
  std::string durability;
  switch (o.durability) {
    case store_durability::sync: durability = "WriteOptions.sync=true"; break;
    case store_durability::interval:
      durability = "sync=false + SyncWAL every 5 ms (" + std::to_string(syncs) + " syncs), group waits for it";
      break;
    case store_durability::none: durability = "sync=false, no SyncWAL"; break;
  }
  r.note = "rocksdb " + std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." +
           std::to_string(ROCKSDB_PATCH) + ", WAL on, " + durability +
           ", write_buffer_size 64 MiB, max_background_jobs 2, " + std::to_string(o.clients) +
           " clients, WriteBatch per " + std::to_string(o.group) + "; written: " + written_from +
           "; footprint: SST+WAL+memtable incl. id: keys, per distinct key (approximate)";
  return r;
}

}  // namespace statefold::bench
