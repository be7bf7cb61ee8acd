// The README's "Linking statefold into a service" example, compiled and run, so that the
// example cannot drift from the API. Keep the two in step.

#include <gtest/gtest.h>

#include <future>

#include "statefold/engine.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace {

struct counter_model {                                  // describe your domain once
  struct state { int64_t total = 0; };
  struct event { std::string id, key; int64_t amount; };
  static std::string_view key(const event& e) { return e.key; }
  static std::string_view event_id(const event& e) { return e.id; }
  static void apply(state& s, const event& e) { s.total += e.amount; }  // deterministic
  static void encode_event(const event& e, std::string& out) { statefold::put_u64(out, e.amount); }
  static bool decode_event(std::string_view in, const statefold::event_context& c, event& e) {
    uint64_t v; statefold::byte_reader r(in); if (!r.u64(v)) return false;  // ID, key: from c
    e = {std::string(c.event_id), std::string(c.key), static_cast<int64_t>(v)}; return true; }
  static void encode_state(const state& s, std::string& out) { statefold::put_u64(out, s.total); }
  static bool decode_state(std::string_view in, state& s) {
    uint64_t v; statefold::byte_reader r(in); if (!r.u64(v)) return false; s.total = v; return true; }
};

TEST(readme_example_test, TheServiceExampleRuns) {
  statefold::testing::temp_dir t;
  spdlog::set_level(spdlog::level::warn);
  auto e = statefold::engine<counter_model>::open({.dir = t / "data", .partitions = 4});
  ASSERT_TRUE(e) << e.error().to_string();
  std::promise<statefold::submit_result> answered;
  statefold::status sent = (*e)->submit({"evt-1", "booking-7", 250}, [&](const statefold::submit_result& r) {
    answered.set_value(r);
  });
  ASSERT_TRUE(sent.is_ok());
  EXPECT_EQ(answered.get_future().get().kind, statefold::outcome::applied);
  statefold::result<std::optional<counter_model::state>> s = (*e)->get("booking-7");  // error: partition down
  ASSERT_TRUE(s && *s);
  EXPECT_EQ((*s)->total, 250);
  statefold::status closed = (*e)->close();
  EXPECT_TRUE(closed.is_ok());
}

}  // namespace
