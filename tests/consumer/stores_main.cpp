// Downstream smoke test of statefold::stores: links statefold::stores (and the test kit, for a
// private redis-server) from outside and RUNS the seed's stateless consumer: process a batch,
// redeliver it, read the state back.
#include <statefold/stateless_consumer.hpp>
#include <statefold/stores/redis_store.hpp>
#include <statefold/testing/redis_server.hpp>
#include <statefold/testing/temp_dir.hpp>

#include <cstdio>
#include <vector>

namespace {

struct wallet_model {
  struct state {
    int64_t balance = 0;
  };
  struct event {
    std::string id, key;
    int64_t amount = 0;
  };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) { s.balance += e.amount; }
  static void encode_event(const event& e, std::string& out) { statefold::put_u64(out, static_cast<uint64_t>(e.amount)); }
  static bool decode_event(std::string_view in, const statefold::event_context& c, event& e) {
    uint64_t v;
    statefold::byte_reader r(in);
    if (!r.u64(v)) return false;
    e = {std::string(c.event_id), std::string(c.key), static_cast<int64_t>(v)};
    return true;
  }
  static void encode_state(const state& s, std::string& out) { statefold::put_u64(out, static_cast<uint64_t>(s.balance)); }
  static bool decode_state(std::string_view in, state& s) {
    uint64_t v;
    statefold::byte_reader r(in);
    if (!r.u64(v)) return false;
    s.balance = static_cast<int64_t>(v);
    return true;
  }
};

int fail(const char* what, const statefold::status& st) {
  std::fprintf(stderr, "stores consumer: %s: %s\n", what, st.to_string().c_str());
  return 1;
}

}  // namespace

int main() {
  statefold::testing::temp_dir dir;
  auto server = statefold::testing::redis_server::start({.dir = dir.path()});
  if (!server) return fail("starting redis-server", server.error());
  auto store = statefold::stores::redis_store::connect((*server)->url());
  if (!store) return fail("connect", store.error());
  statefold::stateless_consumer<wallet_model, statefold::stores::redis_store> consumer(**store);
  if (auto st = consumer.open(); !st.is_ok()) return fail("open", st);
  const std::vector<wallet_model::event> batch = {{"e1", "alice", 30}, {"e2", "alice", 12}, {"e3", "bob", 5}};
  for (int pass = 0; pass < 2; ++pass) {  // the second pass is a redelivery: all duplicates
    auto rs = consumer.process(batch);
    if (!rs) return fail("process", rs.error());
    for (const auto& r : *rs)
      if (r.kind != (pass == 0 ? statefold::outcome::applied : statefold::outcome::duplicate)) {
        std::fprintf(stderr, "stores consumer: pass %d answered %s\n", pass, statefold::to_string(r.kind));
        return 1;
      }
  }
  auto alice = consumer.get("alice");
  if (!alice || !*alice || (*alice)->balance != 42) {
    std::fprintf(stderr, "stores consumer: alice's balance is not 42\n");
    return 1;
  }
  std::printf("stores consumer: OK (alice 42 after a redelivery, on %s)\n", (*store)->name().c_str());
  return 0;
}
