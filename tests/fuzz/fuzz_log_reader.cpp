// Fuzz target: the log reader (scan_log) and repair (repair_log).
//
// The input is a log directory image: pieces separated by the 8 bytes "SFSEGSEP".
//   pieces 1..3  segment files. A piece that starts with the segment magic and is at least a
//                header long is written as is, named after the base LSN in its header. Any
//                other piece gets a valid 64-byte header prepended (partition 0, epoch 1,
//                base LSN = where the previous piece's records end), so short inputs reach
//                the record parser straight away.
//   piece 4      a recyclable segment, free-1.seg (written as is)
//   piece 5      a stray temp file, <base>.seg.tmp (written as is; the rest of the input)
// The CRC checks pass in this build (STATEFOLD_FUZZING).
//
// Per input, read twice: as the private lane of partition 0 (every record partition 0, pseq =
// LSN) and as lane 0 of 1 shared by 4 partitions (records of partitions 0..3, each numbering its
// own records on without a gap). Each time: scan_log in each recovery mode (read-only) with a
// visitor that reads every payload byte and decodes its envelope; then, on a fresh copy for
// tolerate_torn_tail and for point_in_time, repair_log and a re-scan. Contract checks (a
// failure aborts: a finding):
//   - visited records have consecutive LSNs; records_visited counts them;
//   - private: every visited record is partition 0's with pseq = LSN; shared: its partition is
//     below 4 and its pseq follows that partition's previous one;
//   - what scans clean as a private lane reads the same as a shared one;
//   - absolute never cuts; tolerate_torn_tail cuts only a tail of the last segment;
//   - absolute ok => tolerate ok with the same result; tolerate ok => point_in_time likewise;
//   - after repair_log, the log scans clean in absolute mode with the same next LSN and
//     records, and needs no further repair (repair is idempotent).
// The files live in memory (testing::memory_file_system, a fresh one for each of the three
// images an input writes): an input costs no system call. With STATEFOLD_FUZZ_REAL_FS=1 they
// live on disk instead, through posix_file_system, in a per-process directory under /dev/shm
// (or $STATEFOLD_FUZZ_TMP) emptied for every input: to rule out a memory_fs artefact when
// reproducing a finding (2-3x slower per input).

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fuzz_common.hpp"
#include "statefold/coding.hpp"
#include "statefold/crc32c.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/log_format.hpp"
#include "statefold/log_reader.hpp"
#include "statefold/testing/memory_fs.hpp"

using namespace statefold;
using statefold::fuzz::touch;
namespace stdfs = std::filesystem;

namespace {

constexpr std::string_view separator = "SFSEGSEP";
constexpr std::size_t max_pieces = 5;

// --- where the files live ---------------------------------------------------------------

bool real_fs() {
  static const bool real = [] {
    const char* v = std::getenv("STATEFOLD_FUZZ_REAL_FS");
    return v != nullptr && *v != '\0' && std::string_view(v) != "0";
  }();
  return real;
}

std::string g_root;  // STATEFOLD_FUZZ_REAL_FS: per-process scratch directory

void remove_root() {
  std::error_code ec;
  if (!g_root.empty()) stdfs::remove_all(g_root, ec);
}

const std::string& root() {
  if (g_root.empty()) {
    if (real_fs()) {
      const char* base = std::getenv("STATEFOLD_FUZZ_TMP");
      g_root = std::string(base && *base ? base : "/dev/shm") + "/statefold-fuzz-log-" +
               std::to_string(::getpid());
      stdfs::create_directories(g_root);
      std::atexit(remove_root);
    } else {
      g_root = "/";  // the log directory is "/log": one level to create
    }
  }
  return g_root;
}

// A file system holding nothing under root(): a new memory_file_system, or the POSIX one
// with the scratch directory emptied.
struct scratch_fs {
  std::unique_ptr<testing::memory_file_system> memory;
  scratch_fs() {
    if (!real_fs()) {
      memory = std::make_unique<testing::memory_file_system>();
    } else {
      std::error_code ec;
      stdfs::remove_all(path_join(root(), "log"), ec);
    }
  }
  file_system& fs() { return memory ? *memory : posix_file_system(); }
};

std::string segment_header(uint32_t partition, uint64_t epoch, uint64_t base) {
  using namespace log_format;
  std::string h;
  h.append(segment_magic);
  put_u32(h, version);
  put_u32(h, partition);
  put_u64(h, epoch);
  put_u64(h, base);
  h.append(segment_header_crc_offset - h.size(), '\0');
  put_u32(h, crc32c::mask(crc32c::value(h.data(), segment_header_crc_offset)));
  put_u32(h, 0);
  return h;
}

// Where the records of a segment (header included) end, the way the reader's hot loop
// walks them (the CRC is not looked at: it passes in this build).
uint64_t records_end(std::string_view seg, uint64_t base) {
  using namespace log_format;
  uint64_t lsn = base;
  std::size_t pos = segment_header_size;
  while (pos <= seg.size() && seg.size() - pos >= record_header_size) {
    const uint32_t len = load_u32(seg.data() + pos + 4);
    if (len > max_record_payload || len > seg.size() - pos - record_header_size) break;
    if (load_u64(seg.data() + pos + 8) != lsn) break;
    pos += record_header_size + len;
    ++lsn;
  }
  return lsn;
}

struct image {
  std::vector<std::pair<std::string, std::string>> files;  // name, content
};

image make_image(std::string_view in) {
  std::vector<std::string_view> pieces;
  while (pieces.size() + 1 < max_pieces) {
    const std::size_t at = in.find(separator);
    if (at == std::string_view::npos) break;
    pieces.push_back(in.substr(0, at));
    in.remove_prefix(at + separator.size());
  }
  pieces.push_back(in);

  image img;
  uint64_t next_base = 1;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const std::string_view p = pieces[i];
    if (i == 3) {
      img.files.emplace_back("free-1.seg", std::string(p));
      continue;
    }
    if (i == 4) {
      img.files.emplace_back(log_format::segment_name(next_base) + ".tmp", std::string(p));
      continue;
    }
    std::string content;
    uint64_t base;
    if (p.size() >= log_format::segment_header_size &&
        p.substr(0, log_format::segment_magic.size()) == log_format::segment_magic) {
      content = std::string(p);
      base = load_u64(p.data() + 24);
    } else {
      base = next_base;
      content = segment_header(0, 1, base);
      content.append(p);
    }
    next_base = records_end(content, base);
    std::string name = log_format::segment_name(base);
    bool duplicate = false;
    for (const auto& f : img.files) duplicate = duplicate || f.first == name;
    if (!duplicate) img.files.emplace_back(std::move(name), std::move(content));
  }
  return img;
}

// Writes the image into `dir` (a file of the same name is overwritten).
void write_image(file_system& fs, const std::string& dir, const image& img) {
  if (status st = fs.create_dirs(dir); !st.is_ok())
    fuzz::finding("cannot create " + dir + ": " + st.to_string());
  for (const auto& [name, content] : img.files) {
    const std::string path = path_join(dir, name);
    auto f = fs.open(path, open_mode::create);
    status st = f ? (*f)->truncate(0) : f.to_status();
    if (st.is_ok()) st = (*f)->write_at(0, content);
    if (!st.is_ok()) fuzz::finding("cannot write " + path + ": " + st.to_string());
  }
}

struct scan_outcome {
  result<log_scan> scan;
  uint64_t visited = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
};

constexpr uint32_t shared_partitions = 4;

scan_outcome run_scan(file_system& fs, const std::string& dir, recovery_mode mode, bool shared) {
  uint64_t visited = 0, first = 0, prev = 0;
  uint64_t last_pseq[shared_partitions] = {};
  log_scan_options o;
  o.partition = 0;
  o.single_partition = !shared;
  o.lanes = 1;
  o.partitions = shared_partitions;
  o.max_epoch = 1000;
  o.mode = mode;
  o.from_lsn = 0;  // visit every record (LSN arithmetic below is modulo 2^64, like the reader's)
  auto visit = [&](const log_record& r) -> status {
    if (visited > 0) FUZZ_CHECK(r.lsn == prev + 1, "visited LSNs are not consecutive");
    if (visited == 0) first = r.lsn;
    prev = r.lsn;
    ++visited;
    FUZZ_CHECK(r.type == log_format::record_type::event || r.type == log_format::record_type::position ||
                   r.type == log_format::record_type::noop,
               "visited a record of unknown type");
    FUZZ_CHECK(!r.file.empty(), "record without a file name");
    if (!shared) {
      // The journal of partition 0: nothing of another partition, or out of sequence, is visited.
      FUZZ_CHECK(r.partition == 0 && r.pseq == r.lsn, "visited a record of another partition or sequence");
    } else {
      FUZZ_CHECK(r.partition < shared_partitions, "visited a record of a partition the lane does not hold");
      uint64_t& last = last_pseq[r.partition];
      FUZZ_CHECK(last == 0 || r.pseq == last + 1, "visited a record out of its partition's sequence");
      last = r.pseq;
    }
    touch(r.payload);
    if (r.type == log_format::record_type::position) {
      if (auto pos = decode_position(r.payload)) touch(pos->source);
      return status::ok();
    }
    if (r.type == log_format::record_type::noop) {
      (void)decode_noop(r.payload);
      return status::ok();
    }
    auto env = decode_envelope(r.payload);
    if (env) {
      for (std::string_view s : {env->event_id, env->key, env->session, env->correlation,
                                 env->causation, env->source, env->body})
        touch(s);
    }
    return status::ok();
  };
  scan_outcome out{scan_log(fs, dir, o, visit)};
  out.visited = visited;
  out.first_lsn = first;
  out.last_lsn = prev;
  if (out.scan) {
    const log_scan& s = *out.scan;
    FUZZ_CHECK(s.records_visited == visited, "records_visited disagrees with the visitor");
    if (visited > 0) FUZZ_CHECK(prev + 1 == s.next_lsn, "last visited LSN is not next_lsn - 1");
    if (mode == recovery_mode::absolute)
      FUZZ_CHECK(s.cut_bytes == 0 && s.discard_segments.empty() && s.cut_file.empty(),
                 "absolute mode cut the log");
    if (mode != recovery_mode::point_in_time)
      FUZZ_CHECK(s.discard_segments.empty() && !s.lsn_may_regress,
                 std::string(to_string(mode)) + " discarded segments");
  }
  return out;
}

bool same_result(const scan_outcome& a, const scan_outcome& b) {
  return a.visited == b.visited && a.first_lsn == b.first_lsn && a.last_lsn == b.last_lsn &&
         a.scan->next_lsn == b.scan->next_lsn && a.scan->first_lsn == b.scan->first_lsn;
}

void repair_and_rescan(const std::string& dir, const image& img, recovery_mode mode, bool shared) {
  scratch_fs scratch;
  file_system& fs = scratch.fs();
  write_image(fs, dir, img);
  scan_outcome before = run_scan(fs, dir, mode, shared);
  if (!before.scan) return;
  status st = repair_log(fs, dir, *before.scan);
  FUZZ_CHECK(st.is_ok(), std::string("repair_log failed: ") + st.to_string());
  scan_outcome after = run_scan(fs, dir, recovery_mode::absolute, shared);
  FUZZ_CHECK(after.scan.has_value(),
             std::string("log does not scan clean (absolute) after a ") + to_string(mode) +
                 " repair: " + after.scan.to_status().to_string());
  FUZZ_CHECK(same_result(before, after),
             std::string("re-scan after a ") + to_string(mode) + " repair differs");
  FUZZ_CHECK(!after.scan->needs_repair(),
             std::string("log still needs repair after a ") + to_string(mode) + " repair");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const image img = make_image(in);
  const std::string dir = path_join(root(), "log");

  for (const bool shared : {false, true}) {
    {
      scratch_fs scratch;
      file_system& fs = scratch.fs();
      write_image(fs, dir, img);
      const scan_outcome absolute = run_scan(fs, dir, recovery_mode::absolute, shared);
      const scan_outcome tolerate = run_scan(fs, dir, recovery_mode::tolerate_torn_tail, shared);
      const scan_outcome pitr = run_scan(fs, dir, recovery_mode::point_in_time, shared);
      for (const scan_outcome* o : {&absolute, &tolerate, &pitr})
        if (!o->scan)
          FUZZ_CHECK(o->scan.error().code() != errc::io_error && !o->scan.error().message().empty(),
                     "scan_log: " + o->scan.error().to_string());
      if (absolute.scan)
        FUZZ_CHECK(tolerate.scan && same_result(absolute, tolerate),
                   "absolute scan succeeded but tolerate_torn_tail differs");
      if (tolerate.scan)
        FUZZ_CHECK(pitr.scan && same_result(tolerate, pitr),
                   "tolerate_torn_tail scan succeeded but point_in_time differs");
      if (!shared && absolute.scan) {
        // Partition 0 alone, numbered by LSN, is a valid shared lane too, read the same.
        const scan_outcome as_shared = run_scan(fs, dir, recovery_mode::absolute, true);
        FUZZ_CHECK(as_shared.scan && same_result(absolute, as_shared),
                   "a private lane that scans clean reads differently as a shared one");
      }
    }
    repair_and_rescan(dir, img, recovery_mode::tolerate_torn_tail, shared);
    repair_and_rescan(dir, img, recovery_mode::point_in_time, shared);
  }

  if (real_fs()) {
    std::error_code ec;
    stdfs::remove_all(dir, ec);
  }
  return 0;
}
