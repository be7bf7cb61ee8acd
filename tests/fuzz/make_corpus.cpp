// Writes the seed corpus of the fuzz targets with the real runtime:
//   make_corpus <corpus-dir>     (creates <dir>/fuzz_log_reader, fuzz_checkpoint, fuzz_event)
// Logs are written by log_writer, checkpoints by checkpoint_builder, envelopes by
// encode_envelope, booking events and states by the booking model. The seeds are checked in
// (tests/fuzz/corpus); rerun this only when a format changes.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "booking_model.hpp"
#include "statefold/checkpoint.hpp"
#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"
#include "statefold/dedup_window.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/log_writer.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

using namespace statefold;
namespace stdfs = std::filesystem;

namespace {

constexpr std::string_view sep = "SFSEGSEP";  // piece separator of fuzz_log_reader's input

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "make_corpus: %s\n", why.c_str());
  std::exit(1);
}

void put(const stdfs::path& dir, const std::string& name, std::string_view bytes) {
  stdfs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) die("cannot write " + (dir / name).string());
}

std::string slurp(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<booking::event> sample_events() {
  std::vector<booking::event> v;
  booking::event e;
  e.event_id = "e1"; e.booking_id = "b1"; e.type = booking::event_type::created;
  e.show = "hamlet"; e.customer = "ann"; e.seats = 2; e.price_cents = 1500; e.session = "s1";
  v.push_back(e);
  e = {}; e.event_id = "e2"; e.booking_id = "b1"; e.type = booking::event_type::seats_changed;
  e.seats = 3; v.push_back(e);
  e = {}; e.event_id = "e3"; e.booking_id = "b1"; e.type = booking::event_type::payment;
  e.amount_cents = 4500; v.push_back(e);
  e = {}; e.event_id = "e4"; e.booking_id = "b1"; e.type = booking::event_type::confirmed;
  v.push_back(e);
  e = {}; e.event_id = "e5"; e.booking_id = "b2"; e.type = booking::event_type::cancelled;
  e.reason = "changed plans"; v.push_back(e);
  return v;
}

std::string envelope_of(const booking::event& e, bool with_meta) {
  event_meta meta;
  if (with_meta) {
    meta.session = e.session.empty() ? "sess" : e.session;
    meta.correlation = "corr-1";
    meta.causation = "cause-1";
    meta.source = source_position{"bookings/0", 42};
  }
  std::string out;
  encode_envelope(out, 1'700'000'000'000'000, e.event_id, e.booking_id, meta,
                  [&](std::string& o) { booking::model::encode_event(e, o); });
  return out;
}

const char* json_lines[] = {
    R"({"event_id":"e1","booking_id":"b1","type":"created","show":"hamlet","customer":"ann","seats":2,"price_cents":1500,"session":"s1"})",
    R"({"event_id":"e2","booking_id":"b1","type":"seats_changed","seats":3})",
    R"({"event_id":"e3","booking_id":"b1","type":"payment","amount_cents":4500})",
    R"({"event_id":"e4","booking_id":"b1","type":"confirmed"})",
    R"({"event_id":"e5","booking_id":"b2","type":"cancelled","reason":"changed plans"})",
};

// Writes `n` booking envelopes into a fresh log, `append(writer, i, envelope)` putting event i
// in (synced every third), and returns the log's segment files' contents.
template <class Append>
std::vector<std::string> write_log_with(const std::string& dir, int n, log_options o, Append&& append) {
  auto scan = scan_log(posix_file_system(), dir, {}, nullptr);
  if (!scan) die(scan.error().to_string());
  auto w = log_writer::open(posix_file_system(), dir, 0, 1, *scan, o);
  if (!w) die(w.error().to_string());
  auto events = sample_events();
  for (int i = 0; i < n; ++i) {
    booking::event e = events[static_cast<std::size_t>(i) % events.size()];
    e.event_id += "-" + std::to_string(i);
    auto r = append(**w, i, envelope_of(e, i % 2 == 0));
    if (!r) die(r.error().to_string());
    if (i % 3 == 2 && !(*w)->sync()) die("sync failed");
  }
  if (!(*w)->sync()) die("sync failed");
  std::vector<std::string> names;
  for (const auto& entry : stdfs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    uint64_t base;
    if (log_format::parse_segment_name(name, base)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> segs;
  for (const auto& name : names) segs.push_back(slurp(stdfs::path(dir) / name));
  return segs;
}

// A partition's own journal: every record partition 0's, pseq = LSN.
std::vector<std::string> write_log(const std::string& dir, int n, log_options o) {
  return write_log_with(dir, n, o, [](log_writer& w, int, const std::string& envelope) {
    return w.append(log_format::record_type::event, envelope);
  });
}

// A lane shared by partitions 0..3 (fuzz_log_reader's shared lane), interleaved, each numbered
// in its own sequence. With `foreign`, record 5 names partition 6 (not of the lane); with
// `gap`, partition 1 skips a pseq.
std::vector<std::string> write_shared_log(const std::string& dir, int n, log_options o, bool foreign = false,
                                          bool gap = false) {
  uint64_t next[7] = {1, 1, 1, 1, 1, 1, 1};
  return write_log_with(dir, n, o, [&](log_writer& w, int i, const std::string& envelope) {
    uint32_t p = static_cast<uint32_t>((i * 3) % 4);
    if (foreign && i == 5) p = 6;
    if (gap && p == 1 && next[1] == 2) next[1] = 3;
    std::string rec;
    log_format::encode_record(rec, p, next[p]++, log_format::record_type::event,
                              [&](std::string& out) { out += envelope; });
    return w.append_encoded(rec);
  });
}

std::string join(const std::vector<std::string>& pieces) {
  std::string out;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (i) out.append(sep);
    out.append(pieces[i]);
  }
  return out;
}

// Byte surgery on a real segment, keeping its CRCs valid (so that a seed is damaged only
// where intended, in a normal build too).
std::string with_header(std::string seg, std::size_t field, uint64_t value, std::size_t width) {
  if (width == 4) store_u32(seg.data() + field, static_cast<uint32_t>(value));
  else store_u64(seg.data() + field, value);
  store_u32(seg.data() + log_format::segment_header_crc_offset,
            crc32c::mask(crc32c::value(seg.data(), log_format::segment_header_crc_offset)));
  return seg;
}

// Offset of the n-th record (0-based) of a segment.
std::size_t record_at(const std::string& seg, int n) {
  std::size_t pos = log_format::segment_header_size;
  for (int i = 0; i < n; ++i) pos += log_format::record_header_size + load_u32(seg.data() + pos + 4);
  return pos;
}

std::string with_record_byte(std::string seg, int n, std::size_t field, char value) {
  const std::size_t pos = record_at(seg, n);
  seg[pos + field] = value;
  const uint32_t len = load_u32(seg.data() + pos + 4);
  store_u32(seg.data() + pos,
            crc32c::mask(crc32c::value(seg.data() + pos + 4, log_format::record_header_size - 4 + len)));
  return seg;
}

void log_seeds(const stdfs::path& out, const std::string& scratch) {
  log_options small;
  small.preallocate = false;
  small.segment_bytes = 640;
  small.max_record_bytes = 512;
  auto segs = write_log(scratch + "/a", 20, small);
  if (segs.size() < 2) die("expected several segments");
  put(out, "multi_segment", join({segs.begin(), segs.begin() + std::min<std::size_t>(3, segs.size())}));
  put(out, "one_segment", segs[0]);
  std::string torn = segs[0];
  torn.resize(torn.size() - 17);  // the last record cut short
  put(out, "torn_tail", torn);
  put(out, "records_only", segs[0].substr(log_format::segment_header_size));
  put(out, "with_free_and_tmp", join({segs[0], segs[1], "", segs[0], segs[1].substr(0, 100)}));
  // Damage of each kind the reader classifies (header fields: version 8, partition 12,
  // epoch 16, base LSN 24; record fields: LSN 8, type 16).
  const uint64_t base1 = load_u64(segs[1].data() + 24);
  if (segs.size() >= 3) put(out, "gap_between_segments", join({segs[0], segs[2]}));
  put(out, "overlapping_segments", join({segs[0], with_header(segs[1], 24, base1 - 1, 8)}));
  put(out, "epoch_regression", join({with_header(segs[0], 16, 2, 8), segs[1]}));
  put(out, "fenced_epoch", with_header(segs[0], 16, 5000, 8));
  put(out, "other_partition", with_header(segs[0], 12, 7, 4));
  put(out, "newer_version", with_header(segs[0], 8, 2, 4));
  put(out, "damaged_second_header", join({segs[0], with_header(segs[1], 0, 0x21, 4)}));
  put(out, "unknown_record_type", with_record_byte(segs[0], 1, 16, 2));
  put(out, "corruption_before_valid_records", with_record_byte(segs[0], 1, 8, 0x55));
  put(out, "damage_in_first_of_two", join({with_record_byte(segs[0], 2, 9, 0x11), segs[1]}));
  put(out, "recycled_stale_records", with_header(segs[1], 24, 1000, 8));

  log_options prealloc;
  prealloc.preallocate = true;
  prealloc.segment_bytes = 1024;
  prealloc.max_record_bytes = 512;
  // A lane shared by partitions 0..3; one with a record of a partition it does not hold; one
  // with a gap in a partition's sequence.
  auto shared = write_shared_log(scratch + "/s", 20, small);
  put(out, "shared_lane", join({shared.begin(), shared.begin() + std::min<std::size_t>(3, shared.size())}));
  put(out, "shared_lane_foreign_partition", write_shared_log(scratch + "/sf", 8, small, true).at(0));
  put(out, "shared_lane_gap", write_shared_log(scratch + "/sg", 12, small, false, true).at(0));
  auto pre = write_log(scratch + "/b", 3, prealloc);
  put(out, "preallocated_zeros", pre.at(0));
}

std::string checkpoint_image(bool empty) {
  checkpoint_builder b(0, empty ? 0 : 5, 1, booking::model::codec_version, /*lane=*/0, empty ? 1 : 6);
  if (empty) {
    b.add_sources({});
    b.add_dedup(dedup_window(0));
    b.begin_entities(0);
    return std::move(b).finish();
  }
  b.add_sources({{"bookings/0", {43, 43, 0x1234}}, {"bookings/1", {8, 0, 0}}});
  dedup_window w(4);
  for (const char* id : {"e1", "e2", "e3", "e4", "e5"}) w.insert(identity_of("b1", id), 7);  // one evicted
  b.add_dedup(w);
  b.begin_entities(3);
  booking::state s;
  for (const auto& e : sample_events())
    if (e.booking_id == "b1") booking::model::apply(s, e);
  b.add_entity("b1", [&](std::string& o) { booking::model::encode_state(s, o); });
  b.add_entity("b2", [&](std::string& o) { booking::model::encode_state(booking::state{}, o); });
  testing::ledger_state l{3, 120, 3, 0, 0};
  b.add_entity("ledger-key", [&](std::string& o) { testing::ledger_model::encode_state(l, o); });
  return std::move(b).finish();
}

void checkpoint_seeds(const stdfs::path& out) {
  std::string full = checkpoint_image(false);
  std::string empty = checkpoint_image(true);
  for (const auto& img : {full, empty})
    if (!decode_checkpoint(img, "seed.ckpt", 0)) die("seed checkpoint does not decode");
  put(out, "checkpoint_full", full);
  put(out, "checkpoint_empty", empty);
}

void event_seeds(const stdfs::path& out) {
  auto events = sample_events();
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    const std::string t = booking::to_string(e.type);
    put(out, "envelope_" + t, envelope_of(e, i % 2 == 0));
    std::string bin;
    booking::model::encode_event(e, bin);
    put(out, "binary_event_" + t, bin);
    put(out, "json_" + t, json_lines[i]);
  }
  booking::state s;
  for (const auto& e : events)
    if (e.booking_id == "b1") booking::model::apply(s, e);
  std::string st;
  booking::model::encode_state(s, st);
  put(out, "booking_state", st);
  std::string ls;
  testing::ledger_model::encode_state({3, 120, 3, 0, 1}, ls);
  put(out, "ledger_state", ls);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) die("usage: make_corpus <corpus-dir>");
  const stdfs::path out = argv[1];
  const std::string scratch =
      (stdfs::temp_directory_path() / ("statefold-make-corpus-" + std::to_string(::getpid()))).string();
  stdfs::remove_all(scratch);
  log_seeds(out / "fuzz_log_reader", scratch);
  stdfs::remove_all(scratch);
  checkpoint_seeds(out / "fuzz_checkpoint");
  event_seeds(out / "fuzz_event");
  std::printf("seed corpus written to %s\n", out.c_str());
  return 0;
}
