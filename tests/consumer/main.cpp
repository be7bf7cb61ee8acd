// Downstream smoke test: compiles against statefold's public headers, links statefold::actors
// (and through it statefold::runtime) and RUNS a small engine program: open a data directory,
// submit, read back, close, reopen, read again. See CMakeLists.txt beside this file.
#include <statefold/engine.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

struct counter_model {
  struct state {
    int64_t total = 0;
  };
  struct event {
    std::string id, key;
    int64_t amount = 0;
  };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) { s.total += e.amount; }
  static void encode_event(const event& e, std::string& out) { statefold::put_u64(out, static_cast<uint64_t>(e.amount)); }
  static bool decode_event(std::string_view in, const statefold::event_context& c, event& e) {
    uint64_t v;
    statefold::byte_reader r(in);
    if (!r.u64(v)) return false;
    e = {std::string(c.event_id), std::string(c.key), static_cast<int64_t>(v)};
    return true;
  }
  static void encode_state(const state& s, std::string& out) { statefold::put_u64(out, static_cast<uint64_t>(s.total)); }
  static bool decode_state(std::string_view in, state& s) {
    uint64_t v;
    statefold::byte_reader r(in);
    if (!r.u64(v)) return false;
    s.total = static_cast<int64_t>(v);
    return true;
  }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "statefold_consumer: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/statefold-consumer-data.XXXXXX";
  if (!::mkdtemp(tmpl)) return fail("mkdtemp failed");
  const std::string dir = std::string(tmpl) + "/data";
  struct cleanup {
    std::string path;
    ~cleanup() { std::filesystem::remove_all(path); }
  } remove_later{tmpl};
  spdlog::set_level(spdlog::level::warn);
  {
    auto e = statefold::engine<counter_model>::open({.dir = dir, .partitions = 2});
    if (!e) return fail("open: " + e.error().to_string());
    auto r = (*e)->submit({"e1", "booking-7", 250}).get();
    if (r.kind != statefold::outcome::applied) return fail("submit: " + r.reason);
    if ((*e)->submit({"e1", "booking-7", 250}).get().kind != statefold::outcome::duplicate)
      return fail("the resend was not a duplicate");
    auto s = (*e)->get("booking-7");
    if (!s || !*s || (*s)->total != 250) return fail("get after submit");
    if (!(*e)->close().is_ok()) return fail("close");
  }
  auto again = statefold::engine<counter_model>::open({.dir = dir, .partitions = 2});
  if (!again) return fail("reopen: " + again.error().to_string());
  auto s = (*again)->get("booking-7");
  if (!s || !*s || (*s)->total != 250) return fail("get after reopen");
  std::printf("statefold_consumer: engine open, submit, get, close, reopen: ok\n");
  return (*again)->close().is_ok() ? 0 : 1;
}
