#include "baseline_run.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "../harness.hpp"
#include "statefold/partitioner.hpp"

namespace statefold::bench {

const char* to_string(store_durability d) noexcept {
  switch (d) {
    case store_durability::sync: return "sync";
    case store_durability::interval: return "interval";
    case store_durability::none: return "none";
  }
  return "?";
}

std::vector<std::vector<event_ref>> split_by_key(const std::vector<counter_model::event>& events,
                                                 int clients) {
  std::vector<std::vector<event_ref>> out(static_cast<std::size_t>(clients));
  for (auto& v : out) v.reserve(events.size() / clients + 1);
  for (const auto& e : events) out[key_hash(e.key) % static_cast<uint64_t>(clients)].push_back(&e);
  return out;
}

uint64_t distinct_keys(const std::vector<counter_model::event>& events) {
  std::unordered_set<std::string_view> keys;
  keys.reserve(events.size());
  for (const auto& e : events) keys.insert(e.key);
  return keys.size();
}

group_pacer::group_pacer(const baseline_options& o, std::size_t client_events,
                         std::size_t total_events, double t0)
    : t0_(t0) {
  if (o.rate_per_s > 0 && client_events > 0) {
    const double share = static_cast<double>(client_events) / static_cast<double>(total_events);
    interval_s_ = static_cast<double>(o.group) / (o.rate_per_s * share);
  }
}

double group_pacer::intended_send(std::size_t n) const {
  if (interval_s_ == 0) return now_seconds();
  const double intended = t0_ + static_cast<double>(n) * interval_s_;
  // Sleep most of the way, then yield: a spinning client would take a core from the store.
  for (double left = intended - now_seconds(); left > 0; left = intended - now_seconds()) {
    if (left > 300e-6)
      std::this_thread::sleep_for(std::chrono::duration<double>(left - 200e-6));
    else
      std::this_thread::yield();
  }
  return intended;
}

void first_error::set(status st) {
  std::lock_guard lock(mu_);
  if (!failed_.load(std::memory_order_relaxed)) {
    st_ = std::move(st);
    failed_.store(true, std::memory_order_relaxed);
  }
}

status first_error::get() const {
  std::lock_guard lock(mu_);
  return st_;
}

void fill_percentiles(std::vector<double>& ms, baseline_result& r) {
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
  r.p50_ms = at(0.50);
  r.p99_ms = at(0.99);
  r.p999_ms = at(0.999);
  r.groups = ms.size();
}

std::optional<uint64_t> proc_field(const std::string& path, std::string_view name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= name.size() || line.compare(0, name.size(), name) != 0 ||
        line[name.size()] != ':')
      continue;
    std::size_t i = name.size() + 1;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(line.data() + i, line.data() + line.size(), v);
    if (ec != std::errc{}) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

uint64_t dir_bytes(const std::string& dir) {
  namespace fsys = std::filesystem;
  std::error_code ec;
  uint64_t total = 0;
  for (fsys::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) {
      const auto n = it->file_size(ec2);
      if (!ec2) total += n;
    }
  }
  return total;
}

std::string file_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s.erase(0, s.size() - max_bytes);
  return s;
}

status add_up(const char* who, std::vector<client_tally>& tallies, std::size_t events,
              baseline_result& r) {
  std::vector<double> latencies;
  for (auto& t : tallies) {
    r.applied += t.applied;
    r.duplicates += t.duplicates;
    latencies.insert(latencies.end(), t.latencies_ms.begin(), t.latencies_ms.end());
  }
  if (r.applied + r.duplicates != events)
    return status(errc::failed, std::string(who) + ": " + std::to_string(r.applied) + " applied + " +
                                    std::to_string(r.duplicates) + " duplicates != " +
                                    std::to_string(events) + " events sent");
  fill_percentiles(latencies, r);
  r.events_per_s = static_cast<double>(events) / r.seconds;
  return status::ok();
}

}  // namespace statefold::bench
