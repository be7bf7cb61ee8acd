// statefold-booking: the seed's ticket-booking consumer, as a real program on statefold.
//
//   statefold-booking run    [--data DIR] [--partitions N] [--lanes L] [--durability sync|interval|none]
//                            [--input FILE|- [--source NAME]] [--dedup-window N] [--ack-log FILE]
//                            [--strict] [--events N] [--bookings N] [--duplicates RATE] [--seed S]
//   statefold-booking run    --store redis://HOST[:PORT][/DB] [--store-prefix P] [--processed-ttl S]
//                            [--input FILE|- [--source NAME]] [--ack-log FILE] [--strict] [demo flags]
//   statefold-booking get    [--data DIR | --store URL] BOOKING_ID
//   statefold-booking export [--data DIR | --store URL]
//
// --store runs the seed's stateless consumer over an external store (docs/stores.md)
// instead of the stateful engine: same inputs, outputs and exit codes, the state in Redis.
//
// Exit codes: 0 ok; 1 an error (message on stderr), events left unacknowledged, or an
// export that could not read every partition (nothing printed); 2 usage error, or --strict
// and a malformed line.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "booking_model.hpp"
#include "run.hpp"
#include "run_common.hpp"
#include "serve.hpp"
#include "statefold/data_reader.hpp"
#include "statefold/http/server.hpp"
#include "statefold/stateless_consumer.hpp"

namespace {

struct read_options {
  std::string data = "./statefold-data";
  booking::store_options store;
};

// Reads an existing DIR without writing to it, beside a running `run` or not
// (statefold::data_reader): no lock, no epoch bump, no free disk needed.
statefold::result<statefold::data_reader<booking::model>> open_reader(const read_options& o) {
  return statefold::data_reader<booking::model>::open(statefold::posix_file_system(), o.data);
}

int store_get(const read_options& o, const std::string& id) {
  auto store = booking::open_store(o.store, false);
  if (!store) {
    std::fprintf(stderr, "statefold-booking: %s\n", store.error().to_string().c_str());
    return 1;
  }
  statefold::stateless_consumer<booking::model, statefold::stores::redis_store> c(**store);
  auto got = c.get(id);
  if (!got) {
    std::fprintf(stderr, "statefold-booking: get %s: %s\n", booking::printable(id).c_str(),
                 got.error().to_string().c_str());
    return 1;
  }
  if (!*got || (*got)->status == booking::booking_status::unknown) {
    std::fprintf(stderr, "statefold-booking: booking '%s' is unknown in %s\n", booking::printable(id).c_str(),
                 (*store)->name().c_str());
    return 1;
  }
  std::printf("%s\n", booking::to_json(id, **got).dump(2).c_str());
  return 0;
}

int store_export(const read_options& o) {
  auto store = booking::open_store(o.store, false);
  if (!store) {
    std::fprintf(stderr, "statefold-booking: %s\n", store.error().to_string().c_str());
    return 1;
  }
  std::vector<std::pair<std::string, booking::state>> all;
  auto st = (*store)->for_each_state([&](std::string_view key, const statefold::stored_state& s) {
    booking::state b;
    if (!booking::model::decode_state(s.bytes, b))
      return statefold::status(statefold::errc::corruption,
                               (*store)->name() + ": the state of booking '" + booking::printable(key) +
                                   "' (version " + std::to_string(s.version) + ") does not decode");
    all.emplace_back(std::string(key), std::move(b));
    return statefold::status::ok();
  });
  if (!st.is_ok()) {
    std::fprintf(stderr, "statefold-booking: export: %s\n", st.to_string().c_str());
    return 1;
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, s] : all) std::printf("%s\n", booking::to_json(id, s).dump().c_str());
  return 0;
}

int cmd_get(const read_options& o, const std::string& id) {
  if (!o.store.url.empty()) return store_get(o, id);
  auto reader = open_reader(o);
  if (!reader) {
    std::fprintf(stderr, "statefold-booking: %s\n", reader.error().to_string().c_str());
    return 1;
  }
  auto got = reader->get(id);
  if (!got) {
    std::fprintf(stderr, "statefold-booking: get %s: %s\n", booking::printable(id).c_str(),
                 got.error().to_string().c_str());
    return 1;
  }
  const auto& s = *got;
  if (!s || s->status == booking::booking_status::unknown) {
    std::fprintf(stderr, "statefold-booking: booking '%s' is unknown in %s\n", booking::printable(id).c_str(),
                 o.data.c_str());
    return 1;
  }
  std::printf("%s\n", booking::to_json(id, *s).dump(2).c_str());
  return 0;
}

int cmd_export(const read_options& o) {
  if (!o.store.url.empty()) return store_export(o);
  auto reader = open_reader(o);
  if (!reader) {
    std::fprintf(stderr, "statefold-booking: %s\n", reader.error().to_string().c_str());
    return 1;
  }
  // All or nothing: a partition that cannot be read fails the export before any line is
  // printed, so stdout never holds a partial export.
  std::vector<std::pair<std::string, booking::state>> all;
  auto st = reader->for_each_partition([&](uint32_t, auto& part) {
    std::move(part.begin(), part.end(), std::back_inserter(all));
    return statefold::status::ok();
  });
  if (!st.is_ok()) {
    std::fprintf(stderr, "statefold-booking: export: %s\n", st.to_string().c_str());
    return 1;
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, s] : all) std::printf("%s\n", booking::to_json(id, s).dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  booking::run_options ro;
  read_options o;
  std::string booking_id;
  CLI::App app{"statefold-booking: the ticket-booking consumer on statefold"};
  app.set_version_flag("--version", std::string("statefold-booking ") + STATEFOLD_VERSION);
  app.require_subcommand(1);
  auto* run = app.add_subcommand("run", "consume events until the input ends, then checkpoint and exit");
  run->add_option("--data", ro.data, "data directory")->capture_default_str();
  run->add_option("--partitions", ro.partitions, "partitions of a new directory (default 4; an existing one keeps its own)")
      ->check(CLI::Range(1, 4096));
  run->add_option("--lanes", ro.lanes,
                  "journal lanes the partitions of a new directory share (default 1; an existing one keeps its own)")
      ->check(CLI::Range(1, 4096));
  run->add_option("--durability", ro.durability, "sync | interval | none")
      ->capture_default_str()
      ->check(CLI::IsMember({"sync", "interval", "none"}));
  run->add_option("--input", ro.input, "JSON Lines file, or - for stdin (default: a generated demo workload)");
  run->add_option("--source", ro.source,
                  "the input's source name, which a rerun resumes by (default: the file's canonical path; required for stdin)");
  run->add_option("--dedup-window", ro.dedup_window,
                  "event IDs remembered per partition (default: the directory's; 262144 for a new one; it can only grow)");
  run->add_flag("--unsafe-no-dedup", ro.allow_no_dedup,
                "allow --dedup-window 0: a redelivered event without a source position is then applied twice");
  run->add_option("--ack-log", ro.ack_log, "append each acknowledged event_id to this file");
  run->add_flag("--strict", ro.strict, "stop at the first malformed line (exit 2)");
  run->add_option("--events", ro.demo.events, "demo workload: events")->capture_default_str();
  run->add_option("--bookings", ro.demo.bookings, "demo workload: bookings")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  run->add_option("--duplicates", ro.demo.duplicates, "demo workload: fraction of events re-sent, 0..1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  run->add_option("--seed", ro.demo.seed, "demo workload: seed")->capture_default_str();
  // The stateless consumer over an external store.
  const auto add_store_options = [](CLI::App* cmd, booking::store_options& so, bool writes) {
    auto* store = cmd->add_option("--store", so.url,
                                  "redis://HOST[:PORT][/DB]: the state lives in this Redis, consumed "
                                  "by the stateless consumer, instead of a data directory");
    cmd->add_option("--store-prefix", so.prefix, "key prefix in the store")->capture_default_str()->needs(store);
    if (writes)
      cmd->add_option("--processed-ttl", so.processed_ttl_s,
                      "seconds a processed-event ID is remembered (default: forever); the source "
                      "position keeps reruns exact anyway (docs/stores.md)")
          ->check(CLI::Range(uint64_t{1}, statefold::stores::max_processed_ttl_s))
          ->needs(store);
    return store;
  };
  run->add_option("--metrics-listen", ro.metrics_listen,
                  "HOST:PORT: serve /metrics (Prometheus), /healthz and /readyz while running (port 0: any free one)");
  run->add_flag("--metrics-per-partition", ro.metrics_per_partition,
                "per-partition series on /metrics instead of totals");
  const char* log_format_help =
      "text | json: stderr as lines for a person, or one JSON object per line (time, level, msg, and "
      "partition, lsn, session, source, line where a line is about them) for a log collector";
  run->add_option("--log-format", ro.log_format, log_format_help)
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  auto* run_store = add_store_options(run, ro.store, true);
  for (const char* engine_only : {"--data", "--partitions", "--lanes", "--durability", "--dedup-window", "--unsafe-no-dedup"})
    run_store->excludes(run->get_option(engine_only));
  booking::serve_options so;
  auto* srv = app.add_subcommand("serve", "the booking service over HTTP, until SIGTERM (docs: apps/booking/README.md)");
  srv->add_option("--listen", so.listen, "HOST:PORT (port 0: any free one, printed on stderr)")->capture_default_str();
  srv->add_option("--data", so.data, "data directory")->capture_default_str();
  srv->add_option("--partitions", so.partitions, "partitions of a new directory")->check(CLI::Range(1, 4096));
  srv->add_option("--lanes", so.lanes, "journal lanes of a new directory (default 1)")->check(CLI::Range(1, 4096));
  srv->add_option("--durability", so.durability, "sync | interval | none")
      ->capture_default_str()
      ->check(CLI::IsMember({"sync", "interval", "none"}));
  srv->add_option("--dedup-window", so.dedup_window, "event IDs remembered per partition (grow-only)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  srv->add_option("--max-connections", so.max_connections, "open connections at most (more get 503)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  srv->add_option("--max-body", so.max_body_bytes, "request body bytes at most (more get 413)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  srv->add_flag("--metrics-per-partition", so.metrics_per_partition, "per-partition series on /metrics");
  srv->add_option("--log-format", so.log_format, log_format_help)
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  auto* get = app.add_subcommand("get", "print one booking's state as JSON");
  auto* get_data = get->add_option("--data", o.data, "data directory")->capture_default_str();
  add_store_options(get, o.store, false)->excludes(get_data);
  get->add_option("BOOKING_ID", booking_id)->required();
  auto* exp = app.add_subcommand("export", "print every booking as JSON Lines, sorted by booking_id");
  auto* exp_data = exp->add_option("--data", o.data, "data directory")->capture_default_str();
  add_store_options(exp, o.store, false)->excludes(exp_data);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*run) {
    booking::setup_logging(ro.log_format);  // the usage errors below in the chosen format too
    if (ro.input == "-" && ro.source.empty()) {
      booking::say(spdlog::level::err, {},
                   "statefold-booking: --input - (standard input) needs --source NAME: a pipe has no "
                   "name that stays the same between runs, and the name is what a rerun resumes by");
      return 2;
    }
    if (ro.input.empty() && !ro.source.empty()) {
      booking::say(spdlog::level::err, {}, "statefold-booking: --source names an --input; the demo workload names itself");
      return 2;
    }
    if (!ro.metrics_listen.empty()) {
      if (auto a = statefold::http::parse_listen_address(ro.metrics_listen); !a) {
        booking::say(spdlog::level::err, {}, "statefold-booking: --metrics-listen: %s", a.error().message().c_str());
        return 2;
      }
    }
    if (!ro.store.url.empty()) {
      if (auto st = booking::check_store_options(ro.store); !st.is_ok()) {
        booking::say(spdlog::level::err, {}, "statefold-booking: %s", st.message().c_str());
        return 2;
      }
      return booking::run_stateless(ro);
    }
    return booking::run(ro);
  }
  if (*srv) {
    booking::setup_logging(so.log_format);
    if (auto a = statefold::http::parse_listen_address(so.listen); !a) {
      booking::say(spdlog::level::err, {}, "statefold-booking: --listen: %s", a.error().message().c_str());
      return 2;
    }
    return booking::serve(so);
  }
  if (!o.store.url.empty()) {
    if (auto st = booking::check_store_options(o.store); !st.is_ok()) {
      std::fprintf(stderr, "statefold-booking: %s\n", st.message().c_str());
      return 2;
    }
  }
  if (*get) return cmd_get(o, booking_id);
  return cmd_export(o);
}
