#include "statefold/stores/redis_store.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <vector>

#include <hiredis/hiredis.h>

namespace statefold::stores {
namespace {

// KEYS[1]: the source's hash (unused when ARGV[1] is '0'); then, per key, its state hash and
// the processed markers of its events.
// ARGV: has source, from, lowest, next, fingerprint_at, fingerprint, marker TTL, key count;
// then per key: expected version, erase, new state, event count, each event's body digest.
// Reply: {1, ''} committed; {0, what moved} nothing written; an error for a gap.
constexpr std::string_view commit_script = R"lua(
local has_source = ARGV[1] == '1'
local hw = 0
if has_source then
  hw = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
  if hw < tonumber(ARGV[2]) then
    return redis.error_reply('STATEFOLD_GAP the source is consumed up to ' .. hw ..
      ' but the commit starts at ' .. ARGV[2])
  end
  if hw > tonumber(ARGV[3]) then return {0, 'the source position (now ' .. hw .. ')'} end
end
local n = tonumber(ARGV[8])
local k, a = 2, 9
for g = 1, n do
  local events = tonumber(ARGV[a + 3])
  local v = tonumber(redis.call('HGET', KEYS[k], 'v') or '0')
  if v ~= tonumber(ARGV[a]) then return {0, 'the version of ' .. KEYS[k]} end
  for j = 1, events do
    if redis.call('EXISTS', KEYS[k + j]) == 1 then return {0, 'the marker ' .. KEYS[k + j]} end
  end
  k = k + 1 + events
  a = a + 4 + events
end
-- Writes. Redis does not roll a script back: nothing below may fail on what was checked
-- above (no number is formatted by Lua; HINCRBY on a version checked to be an integer).
k, a = 2, 9
for g = 1, n do
  local events = tonumber(ARGV[a + 3])
  if ARGV[a + 1] == '1' then
    redis.call('DEL', KEYS[k])
  else
    redis.call('HINCRBY', KEYS[k], 'v', 1)
    redis.call('HSET', KEYS[k], 'd', ARGV[a + 2])
  end
  for j = 1, events do
    if ARGV[7] ~= '0' then
      redis.call('SET', KEYS[k + j], ARGV[a + 3 + j], 'EX', ARGV[7])
    else
      redis.call('SET', KEYS[k + j], ARGV[a + 3 + j])
    end
  end
  k = k + 1 + events
  a = a + 4 + events
end
if has_source and tonumber(ARGV[4]) > hw then
  redis.call('HSET', KEYS[1], 'next', ARGV[4], 'fat', ARGV[5], 'fp', ARGV[6])
end
return {1, ''}
)lua";

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
struct context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

// hiredis writes with write(2): a server that went away would raise SIGPIPE and kill the
// process. Blocked in this thread for the call, so the write fails with EPIPE; a SIGPIPE left
// pending is consumed before the mask is restored.
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

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

bool parse_hex64(std::string_view s, uint64_t& out) {
  if (s.size() != 16) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

std::string_view text_of(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR)
             ? std::string_view(r->str, r->len)
             : std::string_view{};
}

// Escapes the glob characters of a SCAN MATCH pattern.
std::string glob_escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A command's arguments, kept alive until it is appended.
class args {
 public:
  args& add(std::string_view s) {
    parts_.emplace_back(s);
    return *this;
  }
  args& add(uint64_t v) { return add(std::string_view(std::to_string(v))); }
  int count() const { return static_cast<int>(parts_.size()); }
  void fill(std::vector<const char*>& argv, std::vector<std::size_t>& lens) const {
    argv.clear();
    lens.clear();
    for (const auto& p : parts_) {
      argv.push_back(p.data());
      lens.push_back(p.size());
    }
  }
  const std::string& first() const { return parts_.front(); }

 private:
  std::vector<std::string> parts_;
};

}  // namespace

result<redis_address> parse_redis_url(std::string_view url) {
  if (url.find('@') != std::string_view::npos)  // never echo a password
    return status(errc::invalid_argument,
                  "store URL: user:password@ is not supported (no AUTH yet); run the consumer next to a "
                  "server without a password on a trusted network");
  const auto bad = [&](const std::string& why) {
    return status(errc::invalid_argument, "store '" + std::string(url) + "': " + why +
                                              " (expected redis://HOST[:PORT][/DB])");
  };
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) return bad("not a redis:// URL");
  std::string_view rest = url.substr(scheme.size());
  redis_address a;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    uint64_t v = 0;
    if (!parse_u64(db, v) || v > 1'000'000) return bad("the database must be a number, 0 or more");
    a.db = static_cast<int>(v);
    rest = rest.substr(0, slash);
  }
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    uint64_t v = 0;
    if (!parse_u64(rest.substr(colon + 1), v) || v == 0 || v > 65535)
      return bad("the port must be a number in 1..65535");
    a.port = static_cast<int>(v);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("no host");
  a.host = std::string(rest);
  return a;
}

struct redis_store::impl {
  context_ptr c;
  redis_options o;
  std::string name;
  std::string sha;
  std::string prefix;  // o.prefix + ':'

  std::string state_key(std::string_view key) const { return prefix + "s:" + std::string(key); }
  std::string marker_key(std::string_view key, std::string_view id) const {
    return prefix + "e:" + std::to_string(key.size()) + ":" + std::string(key) + std::string(id);
  }
  std::string source_key(std::string_view source) const { return prefix + "src:" + std::string(source); }

  status io_error(const std::string& what) const {
    std::string why = c->errstr[0] ? c->errstr : "connection lost";
    if (why.find("Resource temporarily unavailable") != std::string::npos)  // SO_RCVTIMEO
      why = "no answer within " + std::to_string(static_cast<int>(o.io_timeout_s)) + " s (timeout)";
    return status(errc::io_error, name + ": " + what + ": " + why);
  }
  status append(const args& a) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    a.fill(argv, lens);
    if (redisAppendCommandArgv(c.get(), a.count(), argv.data(), lens.data()) != REDIS_OK)
      return io_error("sending " + a.first());
    return status::ok();
  }
  result<reply_ptr> reply(std::string_view what) {
    void* raw = nullptr;
    if (redisGetReply(c.get(), &raw) != REDIS_OK || raw == nullptr)
      return io_error("reading the reply to " + std::string(what));
    reply_ptr r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_ERROR)
      return status(errc::failed, name + ": " + std::string(what) + " answered: " + std::string(text_of(r.get())));
    return r;
  }
  result<reply_ptr> command(const args& a) {
    SF_RETURN_IF_ERROR(append(a));
    return reply(a.first());
  }
  status load_script() {
    SF_ASSIGN_OR_RETURN(auto r, command(args().add("SCRIPT").add("LOAD").add(commit_script)));
    if (r->type != REDIS_REPLY_STRING) return status(errc::failed, name + ": SCRIPT LOAD returned no SHA1");
    sha = std::string(text_of(r.get()));
    return status::ok();
  }
  // A state hash reply (HMGET v d) as a stored_state.
  result<stored_state> state_of(const redisReply& r, std::string_view key) const {
    stored_state s;
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 2)
      return status(errc::failed, name + ": unexpected reply reading key '" + std::string(key) + "'");
    if (r.element[0]->type == REDIS_REPLY_NIL) return s;
    if (!parse_u64(text_of(r.element[0]), s.version) || s.version == 0 ||
        r.element[1]->type != REDIS_REPLY_STRING)
      return status(errc::corruption, name + ": the state hash " + state_key(key) +
                                          " is not statefold's (no valid version or data)");
    s.bytes = std::string(text_of(r.element[1]));
    return s;
  }
  result<std::optional<uint64_t>> marker_of(const redisReply& r, std::string_view key, std::string_view id) const {
    if (r.type == REDIS_REPLY_NIL) return std::optional<uint64_t>{};
    uint64_t d = 0;
    if (r.type != REDIS_REPLY_STRING || !parse_hex64(text_of(&r), d))
      return status(errc::corruption, name + ": the processed marker " + marker_key(key, id) + " is not statefold's");
    return std::optional<uint64_t>(d);
  }
  result<source_progress> progress_of(const redisReply& r, std::string_view source) const {
    source_progress p;
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3)
      return status(errc::failed, name + ": unexpected reply reading source '" + std::string(source) + "'");
    if (r.element[0]->type == REDIS_REPLY_NIL) return p;
    if (!parse_u64(text_of(r.element[0]), p.next) || !parse_u64(text_of(r.element[1]), p.fingerprint_at) ||
        !parse_hex64(text_of(r.element[2]), p.fingerprint))
      return status(errc::corruption, name + ": the source hash " + source_key(source) + " is not statefold's");
    return p;
  }
};

redis_store::redis_store(std::unique_ptr<impl> i) : impl_(std::move(i)), name_(impl_->name) {}
redis_store::~redis_store() = default;

result<std::unique_ptr<redis_store>> redis_store::connect(std::string_view url, redis_options o) {
  SF_ASSIGN_OR_RETURN(auto a, parse_redis_url(url));
  return connect(a, std::move(o));
}

status check_redis_options(const redis_options& o) {
  if (o.prefix.empty() || o.prefix.size() > 64 ||
      !std::all_of(o.prefix.begin(), o.prefix.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      }))
    return status(errc::invalid_argument,
                  "store prefix '" + o.prefix + "': 1 to 64 of A-Z a-z 0-9 _ - . (a ':' would let one "
                  "prefix's keys look like another's)");
  if (o.processed_ttl_s > max_processed_ttl_s)
    return status(errc::invalid_argument, "processed TTL " + std::to_string(o.processed_ttl_s) +
                                              " s: at most " + std::to_string(max_processed_ttl_s) + " (10 years)");
  return status::ok();
}

result<std::unique_ptr<redis_store>> redis_store::connect(const redis_address& a, redis_options o) {
  SF_RETURN_IF_ERROR(check_redis_options(o));
  sigpipe_blocked guard;
  auto i = std::make_unique<impl>();
  i->name = "redis://" + a.host + ":" + std::to_string(a.port) + "/" + std::to_string(a.db);
  i->o = o;
  i->prefix = o.prefix + ":";
  i->c.reset(redisConnectWithTimeout(a.host.c_str(), a.port, to_timeval(o.connect_timeout_s)));
  if (!i->c) return status(errc::io_error, i->name + ": cannot allocate a hiredis context");
  if (i->c->err)
    return status(errc::io_error, i->name + ": cannot connect: " + i->c->errstr +
                                      " (is redis-server running there?)");
  if (redisSetTimeout(i->c.get(), to_timeval(o.io_timeout_s)) != REDIS_OK)
    return i->io_error("setting the timeout");
  if (a.db != 0) SF_RETURN_IF_ERROR(i->command(args().add("SELECT").add(uint64_t(a.db))).to_status());
  SF_RETURN_IF_ERROR(i->load_script());
  return std::unique_ptr<redis_store>(new redis_store(std::move(i)));
}

status redis_store::check_model(std::string_view model, uint32_t codec_version, bool record) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  const std::string meta = i.prefix + "meta";
  const std::string codec = std::to_string(codec_version);
  if (record) {
    SF_RETURN_IF_ERROR(i.append(args().add("HSETNX").add(meta).add("model").add(model)));
    SF_RETURN_IF_ERROR(i.append(args().add("HSETNX").add(meta).add("codec").add(codec)));
  }
  SF_RETURN_IF_ERROR(i.append(args().add("HMGET").add(meta).add("model").add("codec")));
  if (record) {
    SF_RETURN_IF_ERROR(i.reply("HSETNX").to_status());
    SF_RETURN_IF_ERROR(i.reply("HSETNX").to_status());
  }
  SF_ASSIGN_OR_RETURN(auto r, i.reply("HMGET"));
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
    return status(errc::failed, name_ + ": unexpected reply reading " + meta);
  if (r->element[0]->type == REDIS_REPLY_NIL)
    return status(errc::not_found, name_ + ": no statefold state under prefix '" + i.o.prefix +
                                       "' (nothing was consumed into this database with this prefix)");
  const std::string_view have_model = text_of(r->element[0]), have_codec = text_of(r->element[1]);
  if (have_model != model || have_codec != codec)
    return status(errc::config_mismatch,
                  name_ + ": prefix '" + i.o.prefix + "' holds state of model '" + std::string(have_model) +
                      "' codec version " + std::string(have_codec) + "; this program's model is '" +
                      std::string(model) + "' codec version " + codec +
                      " (another prefix or database keeps them apart)");
  return status::ok();
}

result<stored_state> redis_store::get_state(std::string_view key) {
  sigpipe_blocked guard;
  SF_ASSIGN_OR_RETURN(auto r, impl_->command(args().add("HMGET").add(impl_->state_key(key)).add("v").add("d")));
  return impl_->state_of(*r, key);
}

status redis_store::save_state(std::string_view key, std::string_view bytes) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  const std::string k = i.state_key(key);
  SF_RETURN_IF_ERROR(i.append(args().add("HINCRBY").add(k).add("v").add("1")));
  SF_RETURN_IF_ERROR(i.append(args().add("HSET").add(k).add("d").add(bytes)));
  SF_RETURN_IF_ERROR(i.reply("HINCRBY").to_status());
  return i.reply("HSET").to_status();
}

result<std::optional<uint64_t>> redis_store::is_processed(std::string_view key, std::string_view event_id) {
  sigpipe_blocked guard;
  SF_ASSIGN_OR_RETURN(auto r, impl_->command(args().add("GET").add(impl_->marker_key(key, event_id))));
  return impl_->marker_of(*r, key, event_id);
}

status redis_store::mark_processed(std::string_view key, std::string_view event_id, uint64_t body_digest) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  args a;
  a.add("SET").add(i.marker_key(key, event_id)).add(hex64(body_digest));
  if (i.o.processed_ttl_s > 0) a.add("EX").add(i.o.processed_ttl_s);
  return i.command(a).to_status();
}

status redis_store::read(const store_read& what, store_read_reply& out) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  for (auto k : what.keys) SF_RETURN_IF_ERROR(i.append(args().add("HMGET").add(i.state_key(k)).add("v").add("d")));
  for (const auto& e : what.events) SF_RETURN_IF_ERROR(i.append(args().add("GET").add(i.marker_key(e.key, e.event_id))));
  if (!what.source.empty())
    SF_RETURN_IF_ERROR(i.append(args().add("HMGET").add(i.source_key(what.source)).add("next").add("fat").add("fp")));
  out.states.clear();
  out.processed.clear();
  out.source = {};
  // Every reply is read, even after a bad one, so the connection stays in step.
  status first;
  for (auto k : what.keys) {
    auto r = i.reply("HMGET");
    if (!r) return std::move(r).take_error();  // the connection is gone
    auto s = i.state_of(**r, k);
    if (!s && first.is_ok()) first = s.error();
    out.states.push_back(s ? std::move(*s) : stored_state{});
  }
  for (const auto& e : what.events) {
    auto r = i.reply("GET");
    if (!r) return std::move(r).take_error();
    auto m = i.marker_of(**r, e.key, e.event_id);
    if (!m && first.is_ok()) first = m.error();
    out.processed.push_back(m ? *m : std::nullopt);
  }
  if (!what.source.empty()) {
    SF_ASSIGN_OR_RETURN(auto r, i.reply("HMGET"));
    auto p = i.progress_of(*r, what.source);
    if (!p && first.is_ok()) first = p.error();
    if (p) out.source = *p;
  }
  return first;
}

result<commit_reply> redis_store::commit(std::span<const key_commit> keys, const source_advance* source) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  std::vector<std::string> key_names, argv;
  key_names.push_back(source ? i.source_key(source->source) : i.prefix + "src:");
  argv.push_back(source ? "1" : "0");
  argv.push_back(std::to_string(source ? source->from : 0));
  argv.push_back(std::to_string(source ? source->lowest : 0));
  argv.push_back(std::to_string(source ? source->to.next : 0));
  argv.push_back(std::to_string(source ? source->to.fingerprint_at : 0));
  argv.push_back(hex64(source ? source->to.fingerprint : 0));
  argv.push_back(std::to_string(i.o.processed_ttl_s));
  argv.push_back(std::to_string(keys.size()));
  for (const auto& k : keys) {
    key_names.push_back(i.state_key(k.key));
    argv.push_back(std::to_string(k.expected_version));
    argv.push_back(k.erase ? "1" : "0");
    argv.emplace_back(k.erase ? std::string_view{} : k.new_state);
    argv.push_back(std::to_string(k.events.size()));
    for (const auto& e : k.events) {
      key_names.push_back(i.marker_key(k.key, e.event_id));
      argv.push_back(hex64(e.body_digest));
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    args a;
    a.add("EVALSHA").add(i.sha).add(uint64_t(key_names.size()));
    for (const auto& k : key_names) a.add(k);
    for (const auto& v : argv) a.add(v);
    SF_RETURN_IF_ERROR(i.append(a));
    void* raw = nullptr;
    if (redisGetReply(i.c.get(), &raw) != REDIS_OK || raw == nullptr)
      return i.io_error("reading the reply to a commit (its outcome is unknown)");
    reply_ptr r(static_cast<redisReply*>(raw));
    const std::string_view text = text_of(r.get());
    if (r->type == REDIS_REPLY_ERROR && text.substr(0, 8) == "NOSCRIPT") {
      SF_RETURN_IF_ERROR(i.load_script());  // the server restarted: scripts are not persisted
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      if (text.find("STATEFOLD_GAP") != std::string_view::npos)
        return status(errc::failed, name_ + ": source '" + std::string(source ? source->source : "") +
                                        "': " + std::string(text.substr(text.find("STATEFOLD_GAP") + 14)) +
                                        ": positions between were never committed");
      return status(errc::failed, name_ + ": commit answered: " + std::string(text));
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER)
      return status(errc::failed, name_ + ": unexpected reply to a commit");
    commit_reply out;
    out.committed = r->element[0]->integer == 1;
    out.moved = std::string(text_of(r->element[1]));
    return out;
  }
  return status(errc::failed, name_ + ": the commit script vanished twice (SCRIPT FLUSH in a loop?)");
}

result<source_progress> redis_store::progress(std::string_view source) {
  sigpipe_blocked guard;
  SF_ASSIGN_OR_RETURN(auto r, impl_->command(args().add("HMGET").add(impl_->source_key(source)).add("next").add("fat").add("fp")));
  return impl_->progress_of(*r, source);
}

status redis_store::for_each_state(const std::function<status(std::string_view, const stored_state&)>& f) {
  sigpipe_blocked guard;
  auto& i = *impl_;
  const std::string state_prefix = i.prefix + "s:";
  const std::string pattern = glob_escaped(state_prefix) + "*";
  std::string cursor = "0";
  std::unordered_set<std::string> seen;  // SCAN may return a key twice
  do {
    SF_ASSIGN_OR_RETURN(auto r, i.command(args().add("SCAN").add(cursor).add("MATCH").add(pattern).add("COUNT").add("1000")));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY)
      return status(errc::failed, name_ + ": unexpected reply to SCAN");
    cursor = std::string(text_of(r->element[0]));
    const redisReply& page = *r->element[1];
    for (std::size_t k = 0; k < page.elements; ++k)
      SF_RETURN_IF_ERROR(i.append(args().add("HMGET").add(text_of(page.element[k])).add("v").add("d")));
    for (std::size_t k = 0; k < page.elements; ++k) {
      SF_ASSIGN_OR_RETURN(auto s, i.reply("HMGET"));
      const std::string_view key = text_of(page.element[k]).substr(state_prefix.size());
      SF_ASSIGN_OR_RETURN(auto st, i.state_of(*s, key));
      if (st.version == 0) continue;  // removed since the SCAN saw it
      if (!seen.emplace(key).second) continue;
      SF_RETURN_IF_ERROR(f(key, st));
    }
  } while (cursor != "0");
  return status::ok();
}

result<redis_store::durability_info> redis_store::durability() {
  sigpipe_blocked guard;
  auto& i = *impl_;
  auto ao = i.command(args().add("CONFIG").add("GET").add("appendonly"));
  auto af = i.command(args().add("CONFIG").add("GET").add("appendfsync"));
  durability_info d;
  if (!ao || !af) {
    d.text = "unknown: CONFIG GET is not allowed on this server; an acknowledgement is durable only if it "
             "runs with appendonly yes and appendfsync always";
    return d;
  }
  const auto value = [](const redisReply& r) {
    return r.type == REDIS_REPLY_ARRAY && r.elements == 2 ? std::string(text_of(r.element[1])) : std::string("?");
  };
  const std::string appendonly = value(**ao), appendfsync = value(**af);
  d.durable = appendonly == "yes" && appendfsync == "always";
  d.text = "appendonly " + appendonly + (appendonly == "yes" ? ", appendfsync " + appendfsync : "");
  if (!d.durable)
    d.text += appendonly != "yes"
                  ? ": acknowledged events live in Redis's memory (and its snapshots) only; a server crash loses them"
                  : ": the last second of acknowledged events is lost if the server's machine crashes";
  return d;
}

}  // namespace statefold::stores
