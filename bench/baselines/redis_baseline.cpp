// The "seed" design: a stateless consumer that keeps each key's state and the set of processed
// event IDs in Redis. One Lua script call per event makes "seen? else mark and apply" atomic;
// each client pipelines a group of calls and treats the group as acknowledged when the last
// reply arrives. With appendfsync always, Redis fsyncs the AOF before it sends the replies of
// an event-loop iteration, so a reply means the write is on disk.

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
#include "baseline_run.hpp"
#include "baselines.hpp"

extern char** environ;

namespace statefold::bench {
namespace {

namespace fsys = std::filesystem;

// KEYS[1] = "id:" + event id, KEYS[2] = "s:" + key, ARGV[1] = amount. 1: applied, 0: duplicate.
constexpr std::string_view dedup_apply_script =
    "if redis.call('SET', KEYS[1], '1', 'NX') then "
    "redis.call('HINCRBY', KEYS[2], 'c', 1); redis.call('HINCRBY', KEYS[2], 's', ARGV[1]); "
    "return 1 end; return 0";

constexpr int start_attempts = 3;
constexpr double ready_timeout_s = 10;
constexpr double stop_timeout_s = 10;

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
struct context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

std::string errno_text(int err) { return std::strerror(err); }

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

// Binds 127.0.0.1:0 and returns the port the kernel chose. Another process may take it before
// redis-server binds it; start() retries on that.
result<int> free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return status(errc::io_error, "redis: socket(): " + errno_text(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return status(errc::io_error, "redis: picking a free port on 127.0.0.1: " + errno_text(err));
  }
  ::close(fd);
  return static_cast<int>(ntohs(a.sin_port));
}

std::string aof_fsync_policy(store_durability d) {
  switch (d) {
    case store_durability::sync: return "always";
    case store_durability::interval: return "everysec";
    case store_durability::none: return "no";
  }
  return "always";
}

/// A private redis-server child. Owns the process: the destructor shuts it down (SHUTDOWN
/// NOSAVE, then SIGKILL after 10 s) and reaps it, whatever happened before.
class redis_server {
 public:
  static result<std::unique_ptr<redis_server>> start(const baseline_options& o);

  ~redis_server() { ignore(stop()); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  std::string log_path() const { return dir_ + "/redis.log"; }

  /// Stops and reaps the server; idempotent. An error says the server had to be killed.
  status stop();

 private:
  redis_server(pid_t pid, int port, std::string dir) : pid_(pid), port_(port), dir_(std::move(dir)) {}

  static result<std::unique_ptr<redis_server>> start_once(const baseline_options& o, int port);
  status wait_ready();
  // True (and the pid forgotten) once the child has exited; `ws` gets its wait status.
  bool reaped(int& ws);
  bool wait_exit(double timeout_s);
  std::string tail() const;

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

result<std::unique_ptr<redis_server>> redis_server::start(const baseline_options& o) {
  status last;
  for (int attempt = 1; attempt <= start_attempts; ++attempt) {
    SF_ASSIGN_OR_RETURN(const int port, free_loopback_port());
    auto s = start_once(o, port);
    if (s) return s;
    last = std::move(s).take_error();
  }
  return last.with_context("redis: starting redis-server failed " +
                           std::to_string(start_attempts) + " times; the last attempt");
}

result<std::unique_ptr<redis_server>> redis_server::start_once(const baseline_options& o, int port) {
  const std::string port_s = std::to_string(port);
  const std::string log = o.dir + "/redis.log";
  const std::string out = o.dir + "/redis.stdout";
  std::vector<std::string> args = {"redis-server",
                                   "--port", port_s,
                                   "--bind", "127.0.0.1",
                                   "--dir", o.dir,
                                   "--appendonly", "yes",
                                   "--appendfsync", aof_fsync_policy(o.durability),
                                   "--save", "",
                                   "--daemonize", "no",
                                   "--protected-mode", "no",
                                   "--logfile", log,
                                   "--appendfilename", "appendonly.aof"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // stdin from /dev/null; stdout and stderr (argument errors, before the log file is open) to
  // redis.stdout.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "redis-server", &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return status(errc::io_error, "redis: posix_spawnp(redis-server) failed: " + errno_text(rc) +
                                      " (is redis-server on PATH? apt-get install redis-server)");

  std::unique_ptr<redis_server> s(new redis_server(pid, port, o.dir));
  SF_RETURN_IF_ERROR(s->wait_ready());
  return s;
}

status redis_server::wait_ready() {
  const double deadline = now_seconds() + ready_timeout_s;
  std::string last = "no attempt";
  while (now_seconds() < deadline) {
    int ws = 0;
    if (reaped(ws)) {
      const std::string how = WIFEXITED(ws) ? "exited with status " + std::to_string(WEXITSTATUS(ws))
                                            : "was killed by signal " + std::to_string(WTERMSIG(ws));
      return status(errc::io_error, "redis-server on port " + std::to_string(port_) + " " + how +
                                        " before answering PING; " + tail());
    }
    auto c = connect(port_, 0.2, 1.0);
    if (c) {
      auto r = command(c->get(), {"PING"});
      if (r && (*r)->type == REDIS_REPLY_STATUS && std::string_view((*r)->str) == "PONG")
        return status::ok();
      last = r ? "PING answered something else" : r.error().message();
    } else {
      last = c.error().message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status(errc::io_error, "redis-server on port " + std::to_string(port_) +
                                    " did not answer PING within 10 s (" + last + "); " + tail());
}

bool redis_server::reaped(int& ws) {
  if (pid_ <= 0) return true;
  const pid_t r = ::waitpid(pid_, &ws, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = -1;
    return true;
  }
  return false;
}

bool redis_server::wait_exit(double timeout_s) {
  const double deadline = now_seconds() + timeout_s;
  int ws = 0;
  while (!reaped(ws)) {
    if (now_seconds() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

status redis_server::stop() {
  if (pid_ <= 0) return status::ok();
  sigpipe_blocked guard;
  bool asked = false;
  if (auto c = connect(port_, 1.0, stop_timeout_s)) {
    // On success the server closes the connection without a reply; an error reply (for
    // instance a failed AOF fsync) means it is still running.
    auto r = command(c->get(), {"SHUTDOWN", "NOSAVE"});
    asked = !r || (*r)->type != REDIS_REPLY_ERROR;
  }
  if (!asked) ::kill(pid_, SIGTERM);
  if (wait_exit(stop_timeout_s)) return status::ok();
  ::kill(pid_, SIGKILL);
  int ws = 0;
  ::waitpid(pid_, &ws, 0);
  pid_ = -1;
  return status(errc::failed, "redis-server on port " + std::to_string(port_) +
                                  " did not exit within 10 s of SHUTDOWN NOSAVE / SIGTERM and was "
                                  "killed; " + tail());
}

std::string redis_server::tail() const {
  std::string t = file_tail(log_path(), 1500);
  std::string o = file_tail(dir_ + "/redis.stdout", 500);
  std::string msg = "tail of " + log_path() + ":\n" + (t.empty() ? "(empty)\n" : t);
  if (!o.empty()) msg += "tail of " + dir_ + "/redis.stdout:\n" + o;
  return msg;
}

// One consumer: for each group, append an EVALSHA per event, then read every reply.
void run_client(redisContext* c, int client, const std::string& sha,
                const std::vector<event_ref>& events, const baseline_options& o,
                const group_pacer& pacer, client_tally& out, first_error& err) {
  sigpipe_blocked guard;
  const std::size_t g = o.group;
  // redisAppendCommandArgv copies the arguments into the output buffer at once, so one set of
  // argument buffers serves the whole group.
  std::string id_key, state_key;
  std::array<char, 24> amount;
  out.latencies_ms.reserve(events.size() / g + 1);
  auto fail = [&](const std::string& what) {
    err.set(status(errc::io_error, "redis client " + std::to_string(client) + ": " + what));
  };
  for (std::size_t begin = 0, n = 0; begin < events.size() && !err.failed(); begin += g, ++n) {
    const std::size_t count = std::min(g, events.size() - begin);
    const double intended = pacer.intended_send(n);
    for (std::size_t j = 0; j < count; ++j) {
      const auto& e = *events[begin + j];
      id_key.assign("id:").append(e.id);
      state_key.assign("s:").append(e.key);
      const char* end = std::to_chars(amount.data(), amount.data() + amount.size(), e.amount).ptr;
      const std::string_view args[6] = {
          "EVALSHA", sha, "2", id_key, state_key,
          std::string_view(amount.data(), static_cast<std::size_t>(end - amount.data()))};
      const char* argv[6];
      std::size_t lens[6];
      for (int k = 0; k < 6; ++k) {
        argv[k] = args[k].data();
        lens[k] = args[k].size();
      }
      if (redisAppendCommandArgv(c, 6, argv, lens) != REDIS_OK)
        return fail(std::string("appending EVALSHA: ") + c->errstr);
    }
    for (std::size_t j = 0; j < count; ++j) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr)
        return fail(std::string("reading the reply to EVALSHA: ") + c->errstr);
      reply_ptr r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_ERROR)
        return fail("EVALSHA for event " + events[begin + j]->id + " replied: " +
                    std::string(r->str, r->len));
      if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return fail("EVALSHA for event " + events[begin + j]->id +
                    " replied with an unexpected type " + std::to_string(r->type));
      out.applied += r->integer == 1;
      out.duplicates += r->integer == 0;
    }
    out.latencies_ms.push_back((now_seconds() - intended) * 1e3);
  }
}

struct server_sample {
  uint64_t used_memory = 0;
  std::optional<uint64_t> write_bytes;
  uint64_t aof_bytes = 0;
};

result<server_sample> sample(redisContext* admin, const redis_server& s, const std::string& dir) {
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
  SF_ASSIGN_OR_RETURN(auto server, redis_server::start(opts));
  SF_ASSIGN_OR_RETURN(auto admin, connect(server->port(), 2.0));
  SF_ASSIGN_OR_RETURN(auto loaded, command(admin.get(), {"SCRIPT", "LOAD", dedup_apply_script}));
  if (loaded->type != REDIS_REPLY_STRING)
    return status(errc::failed, "redis: SCRIPT LOAD did not return a SHA1");
  const std::string sha(loaded->str, loaded->len);
  SF_ASSIGN_OR_RETURN(auto server_info, command(admin.get(), {"INFO", "server"}));
  const std::string version = info_field(*server_info, "redis_version");
  SF_ASSIGN_OR_RETURN(auto fsync_cfg, command(admin.get(), {"CONFIG", "GET", "appendfsync"}));
  std::string fsync_policy = "?";
  if (fsync_cfg->type == REDIS_REPLY_ARRAY && fsync_cfg->elements == 2)
    fsync_policy.assign(fsync_cfg->element[1]->str, fsync_cfg->element[1]->len);

  std::vector<context_ptr> conns;
  for (int t = 0; t < o.clients; ++t) {
    SF_ASSIGN_OR_RETURN(auto c, connect(server->port(), 2.0));
    conns.push_back(std::move(c));
  }
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
    clients.emplace_back(run_client, conns[t].get(), t, std::cref(sha), std::cref(parts[t]),
                         std::cref(o), std::cref(pacers[t]), std::ref(tallies[t]), std::ref(err));
  for (auto& c : clients) c.join();
  r.seconds = now_seconds() - t0;
  if (err.failed()) return err.get();

  conns.clear();
  SF_ASSIGN_OR_RETURN(const auto after, sample(admin.get(), *server, dir));
  const auto hwm_kb = proc_field("/proc/" + std::to_string(server->pid()) + "/status", "VmHWM");
  admin.reset();
  SF_RETURN_IF_ERROR(server->stop());

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
           std::to_string(o.clients) + " clients, EVALSHA pipelined by " + std::to_string(o.group) +
           "; written: " + written_from + "; memory: INFO used_memory delta incl. the never-expired "
           "id: keys, per distinct key";
  return r;
}

}  // namespace statefold::bench
