// The "seed" design: a stateless consumer that keeps each key's state and the processed event
// IDs in Redis. Since the stores issue this is not a copy of that design but its users' code:
// statefold::stateless_consumer<counter_model> over statefold::stores::redis_store, one per
// client thread (its own connection), a group of events per process() call: one pipelined
// read round trip and one atomic commit (a Lua script) per group. The server is the test
// kit's private redis-server (statefold::testing::redis_server). With appendfsync always,
// Redis fsyncs the AOF before it sends the replies of an event-loop iteration, so a reply
// means the write is on disk.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "../harness.hpp"
#include "statefold/stateless_consumer.hpp"
#include "statefold/stores/redis_store.hpp"
#include "statefold/testing/redis_server.hpp"
#include "baseline_run.hpp"
#include "baselines.hpp"

extern char** environ;

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
struct context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

// hiredis writes with write(2): a server that went away would raise SIGPIPE and kill the
// benchmark. Block it in this thread, so the write fails with EPIPE and becomes an error; a
// SIGPIPE left pending is consumed before the mask is restored.
class sigpipe_blocked {
 public:
  sigpipe_blocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~sigpipe_blocked() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_blocked(const sigpipe_blocked&) = delete;
  sigpipe_blocked& operator=(const sigpipe_blocked&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
};

timeval to_timeval(double s) {
  const auto us = static_cast<long>(s * 1e6);
  return timeval{us / 1'000'000, us % 1'000'000};
}

// A blocking connection. `io_timeout_s` bounds every later read and write, so a hung server
// becomes an error instead of a hung benchmark.
result<context_ptr> connect(int port, double connect_timeout_s, double io_timeout_s = 60) {
  context_ptr c(redisConnectWithTimeout("127.0.0.1", port, to_timeval(connect_timeout_s)));
  if (!c) return status(errc::io_error, "redis: cannot allocate a hiredis context");
  if (c->err || redisSetTimeout(c.get(), to_timeval(io_timeout_s)) != REDIS_OK)
    return status(errc::io_error,
                  "redis: connect to 127.0.0.1:" + std::to_string(port) + ": " + c->errstr);
  return c;
}

// One command, waited for. A Redis error reply becomes an error naming the command.
result<reply_ptr> command(redisContext* c, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  const std::string name(*args.begin());
  reply_ptr r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (!r) return status(errc::io_error, "redis: " + name + ": " + c->errstr);
  if (r->type == REDIS_REPLY_ERROR)
    return status(errc::failed, "redis: " + name + " replied: " + std::string(r->str, r->len));
  return r;
}

// The value of "field:" in an INFO reply ("" when absent).
std::string info_field(const redisReply& r, std::string_view field) {
  if (r.type != REDIS_REPLY_STRING && r.type != REDIS_REPLY_STATUS) return "";
  const std::string_view text(r.str, r.len);
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > field.size() && line.substr(0, field.size()) == field && line[field.size()] == ':')
      return std::string(line.substr(field.size() + 1));
    at = end + 1;
  }
  return "";
}

uint64_t to_u64(const std::string& s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string aof_fsync_policy(store_durability d) {
  switch (d) {
    case store_durability::sync: return "always";
    case store_durability::interval: return "everysec";
    case store_durability::none: return "no";
  }
  return "always";
}

// One consumer thread: its own connection, a stateless_consumer, a group per process() call.
void run_client(const std::string& url, int client, const std::vector<event_ref>& events,
                const baseline_options& o, const group_pacer& pacer, client_tally& out, first_error& err) {
  auto fail = [&](const status& st) {
    err.set(st.with_context("redis client " + std::to_string(client)));
  };
  auto store = stores::redis_store::connect(url);
  if (!store) return fail(store.error());
  stateless_consumer<counter_model, stores::redis_store> consumer(**store);
  if (auto st = consumer.open(); !st.is_ok()) return fail(st);
  const std::size_t g = o.group;
  std::vector<counter_model::event> group;
  group.reserve(g);
  out.latencies_ms.reserve(events.size() / g + 1);
  for (std::size_t begin = 0, n = 0; begin < events.size() && !err.failed(); begin += g, ++n) {
    const std::size_t count = std::min(g, events.size() - begin);
    const double intended = pacer.intended_send(n);
    group.clear();
    for (std::size_t j = 0; j < count; ++j) group.push_back(*events[begin + j]);
    auto rs = consumer.process(group);
    if (!rs) return fail(rs.error());
    for (const auto& r : *rs) {
      if (r.kind == outcome::applied) ++out.applied;
      else if (r.kind == outcome::duplicate) ++out.duplicates;
      else return fail(status(errc::failed, std::string("event answered ") + to_string(r.kind) + ": " + r.reason));
    }
    out.latencies_ms.push_back((now_seconds() - intended) * 1e3);
  }
  out.retries = consumer.stats().retries;
}

struct server_sample {
  uint64_t used_memory = 0;
  std::optional<uint64_t> write_bytes;
  uint64_t aof_bytes = 0;
};

result<server_sample> sample(redisContext* admin, const testing::redis_server& s, const std::string& dir) {
  SF_ASSIGN_OR_RETURN(auto info, command(admin, {"INFO", "memory"}));
  server_sample out;
  out.used_memory = to_u64(info_field(*info, "used_memory"));
  out.write_bytes = proc_field("/proc/" + std::to_string(s.pid()) + "/io", "write_bytes");
  // Redis 7 keeps a multi-part AOF under appenddirname; older versions one file in `dir`.
  out.aof_bytes = dir_bytes(dir + "/appendonlydir");
  std::error_code ec;
  const auto legacy = fsys::file_size(dir + "/appendonly.aof", ec);
  if (!ec) out.aof_bytes += legacy;
  return out;
}

}  // namespace

result<baseline_result> run_redis_baseline(const baseline_options& o,
                                           const std::vector<counter_model::event>& events) {
  if (o.clients < 1 || o.group < 1 || o.dir.empty() || events.empty())
    return status(errc::invalid_argument,
                  "redis baseline: needs clients >= 1, group >= 1, a dir and at least one event");
  std::error_code ec;
  fsys::create_directories(o.dir, ec);
  if (ec) return status(errc::io_error, "redis baseline: creating " + o.dir + ": " + ec.message());
  const std::string dir = fsys::absolute(o.dir).lexically_normal().string();
  baseline_options opts = o;
  opts.dir = dir;

  sigpipe_blocked guard;
  testing::redis_server_options so;
  so.dir = dir;
  so.appendfsync = aof_fsync_policy(o.durability);
  SF_ASSIGN_OR_RETURN(auto server, testing::redis_server::start(so));
  SF_ASSIGN_OR_RETURN(auto admin, connect(server->port(), 2.0));
  SF_ASSIGN_OR_RETURN(auto server_info, command(admin.get(), {"INFO", "server"}));
  const std::string version = info_field(*server_info, "redis_version");
  SF_ASSIGN_OR_RETURN(auto fsync_cfg, command(admin.get(), {"CONFIG", "GET", "appendfsync"}));
  std::string fsync_policy = "?";
  if (fsync_cfg->type == REDIS_REPLY_ARRAY && fsync_cfg->elements == 2)
    fsync_policy.assign(fsync_cfg->element[1]->str, fsync_cfg->element[1]->len);

  baseline_result r;
  r.distinct_keys = distinct_keys(events);
  const auto parts = split_by_key(events, o.clients);
  std::vector<client_tally> tallies(static_cast<std::size_t>(o.clients));
  first_error err;

  SF_ASSIGN_OR_RETURN(const auto before, sample(admin.get(), *server, dir));
  const double t0 = now_seconds();
  std::vector<group_pacer> pacers;
  for (int t = 0; t < o.clients; ++t) pacers.emplace_back(o, parts[t].size(), events.size(), t0);
  std::vector<std::thread> clients;
  for (int t = 0; t < o.clients; ++t)
    clients.emplace_back(run_client, server->url(), t, std::cref(parts[t]), std::cref(o),
                         std::cref(pacers[t]), std::ref(tallies[t]), std::ref(err));
  for (auto& c : clients) c.join();
  r.seconds = now_seconds() - t0;
  if (err.failed()) return err.get();

  SF_ASSIGN_OR_RETURN(const auto after, sample(admin.get(), *server, dir));
  const auto hwm_kb = proc_field("/proc/" + std::to_string(server->pid()) + "/status", "VmHWM");
  admin.reset();
  if (o.measure_recovery) {
    // The stateless design's recovery: the server killed and restarted (it loads its AOF),
    // a consumer connected and its model checked, ready to read its source's position.
    server->kill();
    const double k0 = now_seconds();
    SF_RETURN_IF_ERROR(server->restart());
    SF_ASSIGN_OR_RETURN(auto store, stores::redis_store::connect(server->url()));
    stateless_consumer<counter_model, stores::redis_store> consumer(*store);
    SF_RETURN_IF_ERROR(consumer.open());
    SF_RETURN_IF_ERROR(store->progress("bench").to_status());
    r.recovery_seconds = now_seconds() - k0;
  }
  SF_RETURN_IF_ERROR(server->stop());

  uint64_t retries = 0;
  for (const auto& t : tallies) retries += t.retries;
  SF_RETURN_IF_ERROR(add_up("redis baseline", tallies, events.size(), r));
  const double n = static_cast<double>(events.size());
  // An AOF rewrite during a long run shrinks the files: growth is then a lower bound.
  r.file_growth_per_event =
      static_cast<double>(after.aof_bytes > before.aof_bytes ? after.aof_bytes - before.aof_bytes : 0) / n;
  std::string written_from;
  if (before.write_bytes && after.write_bytes && *after.write_bytes > *before.write_bytes) {
    r.bytes_written_per_event = static_cast<double>(*after.write_bytes - *before.write_bytes) / n;
    written_from = "/proc/<redis pid>/io write_bytes";
  } else {
    r.bytes_written_per_event = r.file_growth_per_event;
    written_from = "AOF size growth (/proc/<pid>/io unreadable)";
  }
  const uint64_t grown =
      after.used_memory > before.used_memory ? after.used_memory - before.used_memory : 0;
  r.bytes_per_entity = static_cast<double>(grown) / static_cast<double>(r.distinct_keys);
  r.peak_rss_bytes = hwm_kb ? *hwm_kb * 1024 : 0;
  r.note = "redis " + version + ", appendonly yes, appendfsync " + fsync_policy + ", " +
           std::to_string(o.clients) + " clients (stateless_consumer over redis_store: a read round trip and "
           "one atomic EVALSHA per group of " + std::to_string(o.group) + "; " + std::to_string(retries) +
           " groups redone on contention)" +
           "; written: " + written_from + "; memory: INFO used_memory delta incl. the never-expiring "
           "processed markers, per distinct key";
  return r;
}

}  // namespace statefold::bench
