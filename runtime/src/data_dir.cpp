#include "statefold/data_dir.hpp"

#include <charconv>
#include <chrono>
#include <thread>
#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <system_error>

#include "statefold/crc32c.hpp"

namespace statefold {

std::string partition_dir_name(uint32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p-%04u", partition);
  return buf;
}

std::string lane_dir_name(uint32_t lane) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "L-%04u", lane);
  return buf;
}

bool is_partition_dir_name(std::string_view name) {
  if (name.size() < 6 || name.substr(0, 2) != "p-") return false;
  for (char c : name.substr(2))
    if (c < '0' || c > '9') return false;
  return true;
}

namespace {

// A Model name goes into a line of text: letters, digits and "._-", at most 64 of them.
bool valid_model_name(std::string_view n) {
  if (n.size() > 64) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

}  // namespace

const char* to_string(partitioner_kind k) noexcept {
  return k == partitioner_kind::source ? "source" : "key_hash";
}

std::string encode_manifest(const manifest& m) {
  std::ostringstream s;
  s << "statefold-manifest\n"
    << "format_version=" << m.format_version << "\n"
    << "partitions=" << m.partitions << "\n"
    << "lanes=" << m.lanes << "\n"
    << "partitioner=" << to_string(m.partitioner) << "\n"
    << "key_groups=" << m.key_groups << "\n"
    << "hash_version=" << m.hash_version << "\n"
    << "dedup_window=" << m.dedup_window << "\n"
    << "model=" << m.model << "\n"
    << "codec_version=" << m.codec_version << "\n"
    << "epoch=" << m.epoch << "\n";
  std::string body = s.str();
  char crc[32];
  std::snprintf(crc, sizeof crc, "crc32c=%08x\n", crc32c::value(body));
  return body + crc;
}

result<manifest> decode_manifest(std::string_view text, const std::string& path) {
  auto bad = [&](const std::string& what) {
    return status{errc::corruption, path + ": " + what};
  };
  auto crc_at = text.rfind("crc32c=");
  if (crc_at == std::string_view::npos) return bad("no crc32c line (truncated MANIFEST?)");
  const std::string_view body = text.substr(0, crc_at);
  const std::string_view crc_line = text.substr(crc_at + 7);
  uint32_t stored = 0;
  auto [end, ec] = std::from_chars(crc_line.data(), crc_line.data() + crc_line.size(), stored, 16);
  if (ec != std::errc() || std::string_view(end, crc_line.data() + crc_line.size()) != "\n")
    return bad("unreadable crc32c line");
  if (stored != crc32c::value(body)) return bad("MANIFEST checksum mismatch");
  if (body.rfind("statefold-manifest\n", 0) != 0) return bad("not a statefold MANIFEST");
  manifest m;
  enum : unsigned { f_format = 1, f_partitions = 2, f_key_groups = 4, f_hash = 8, f_epoch = 16,
                    f_window = 32, f_model = 64, f_codec = 128, f_lanes = 256, f_partitioner = 512 };
  unsigned seen = 0;
  std::string_view rest = body.substr(std::string_view("statefold-manifest\n").size());
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return bad("malformed line '" + std::string(line) + "'");
    const std::string_view key = line.substr(0, eq), val = line.substr(eq + 1);
    if (key == "model") {  // the one text field
      if (!valid_model_name(val)) return bad("invalid model name in '" + std::string(line) + "'");
      m.model = std::string(val);
      seen |= f_model;
      continue;
    }
    if (key == "partitioner") {  // text too
      if (val == "key_hash") m.partitioner = partitioner_kind::key_hash;
      else if (val == "source") m.partitioner = partitioner_kind::source;
      else return bad("unknown partitioner in '" + std::string(line) + "'");
      seen |= f_partitioner;
      continue;
    }
    uint64_t v = 0;
    auto [p, err] = std::from_chars(val.data(), val.data() + val.size(), v);
    if (err != std::errc() || p != val.data() + val.size())
      return bad("not an unsigned number in '" + std::string(line) + "'");
    auto u32 = [&](uint32_t& field, unsigned bit) -> bool {
      if (v > UINT32_MAX) return false;
      field = static_cast<uint32_t>(v);
      seen |= bit;
      return true;
    };
    bool in_range = true;
    if (key == "format_version") in_range = u32(m.format_version, f_format);
    else if (key == "partitions") in_range = u32(m.partitions, f_partitions);
    else if (key == "lanes") in_range = u32(m.lanes, f_lanes);
    else if (key == "key_groups") in_range = u32(m.key_groups, f_key_groups);
    else if (key == "hash_version") in_range = u32(m.hash_version, f_hash);
    else if (key == "codec_version") in_range = u32(m.codec_version, f_codec);
    else if (key == "dedup_window") m.dedup_window = v, seen |= f_window;
    else if (key == "epoch") m.epoch = v, seen |= f_epoch;
    // Unknown keys are tolerated: a newer minor writer may add informational fields.
    if (!in_range) return bad("value out of range in '" + std::string(line) + "'");
  }
  // The version first: an older MANIFEST lacks the newer fields, and is named as older.
  if (!(seen & f_format)) return bad("missing field format_version");
  if (m.format_version != data_format_version)
    return status{errc::unsupported,
                  path + ": data format version " + std::to_string(m.format_version) +
                      ", this build reads version " + std::to_string(data_format_version) +
                      (m.format_version < data_format_version
                           ? ". This build has no upgrade for it: read it with the statefold "
                             "build that wrote it, or start a new data directory"
                           : ". It was written by a newer statefold")};
  const unsigned all = f_format | f_partitions | f_key_groups | f_hash | f_epoch | f_window |
                       f_model | f_codec | f_lanes | f_partitioner;
  if (seen != all) return bad("missing field(s)");
  if (m.lanes == 0 || m.lanes > m.partitions)
    return bad("impossible lane count " + std::to_string(m.lanes) + " for " +
               std::to_string(m.partitions) + " partitions");
  // What this build cannot read yet is refused by name, never misread.
  if (m.partitioner != partitioner_kind::key_hash)
    return status{errc::unsupported, path + ": partitioned by " + to_string(m.partitioner) +
                                         "; this build reads only directories partitioned by key hash"};
  if (!partitioner::check(m.partitions, m.key_groups).is_ok())
    return bad("impossible partition/key-group counts " + std::to_string(m.partitions) + "/" +
               std::to_string(m.key_groups));
  return m;
}

result<manifest> read_manifest(file_system& fs, const std::string& dir) {
  const std::string path = path_join(dir, layout::manifest);
  SF_ASSIGN_OR_RETURN(std::string text, fs.read_file(path));
  return decode_manifest(text, path);
}

std::string data_dir::partition_dir(uint32_t partition) const {
  return path_join(path_, partition_dir_name(partition));
}

std::string lane_dir(const std::string& dir, uint32_t lane) {
  return path_join(path_join(dir, layout::lanes_dir), lane_dir_name(lane));
}

lane_membership manifest::membership(uint32_t lane) const { return {lane, lanes, partitions}; }

result<std::unique_ptr<data_dir>> data_dir::open(file_system& fs, std::string path,
                                                 const data_dir_config& config) {
  SF_RETURN_IF_ERROR(partitioner::check(config.partitions, config.key_groups));
  const uint32_t lanes = config.lanes == 0 ? 1 : config.lanes;
  if (lanes > config.partitions)
    return status{errc::invalid_argument, std::to_string(lanes) + " journal lanes for " +
                                              std::to_string(config.partitions) +
                                              " partitions: at most one lane per partition"};
  if (!valid_model_name(config.model))
    return status{errc::invalid_argument, "model name '" + config.model +
                                              "': at most 64 letters, digits, '.', '_' or '-'"};
  if (config.dedup_window == uint64_t{0} && !config.allow_no_dedup)
    return status{errc::invalid_argument,
                  "a dedup window of 0 turns deduplication by event ID off (a redelivered event "
                  "without a source position is applied again); ask for it explicitly "
                  "(allow_no_dedup) if that is what you want"};
  SF_ASSIGN_OR_RETURN(bool present, fs.exists(path));
  if (!present && !config.create_if_missing)
    return status{errc::not_found, path + ": data directory does not exist"};
  SF_RETURN_IF_ERROR(fs.create_dirs(path));
  std::unique_ptr<data_dir> d(new data_dir(fs, path));
  // A lock may outlive its killed owner by a few milliseconds (seen after kill -9: the kernel
  // drops it after the process is reaped), so a restart tries again briefly before it says
  // `locked`; a live owner still holds it then.
  const auto deadline = std::chrono::steady_clock::now() + config.lock_wait;
  for (;;) {
    auto l = fs.lock(path_join(path, layout::lock));
    if (l) {
      d->lock_ = std::move(l).value();
      break;
    }
    if (l.error().code() != errc::locked || std::chrono::steady_clock::now() >= deadline) return l.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  const std::string mpath = path_join(path, layout::manifest);
  SF_ASSIGN_OR_RETURN(bool has_manifest, fs.exists(mpath));
  manifest m;
  if (has_manifest) {
    SF_ASSIGN_OR_RETURN(m, read_manifest(fs, path));
    if (m.partitions != config.partitions || m.key_groups != config.key_groups)
      return status{errc::config_mismatch,
                    mpath + ": directory has " + std::to_string(m.partitions) + " partitions / " +
                        std::to_string(m.key_groups) + " key groups, configuration asks for " +
                        std::to_string(config.partitions) + " / " +
                        std::to_string(config.key_groups) +
                        "; open with the recorded counts (an offline rescale is not built yet)"};
    if (config.lanes != 0 && m.lanes != config.lanes)
      return status{errc::config_mismatch,
                    mpath + ": directory has " + std::to_string(m.lanes) +
                        " journal lanes, configuration asks for " + std::to_string(config.lanes) +
                        "; open it with the recorded count (lanes are fixed when a directory is made)"};
    if (m.hash_version != hash_version)
      return status{errc::config_mismatch, mpath + ": key hash version " +
                                               std::to_string(m.hash_version) +
                                               ", this build uses " + std::to_string(hash_version)};
    if (!m.model.empty() && m.model != config.model)
      return status{errc::config_mismatch,
                    mpath + ": the data was written by model '" + m.model + "', this program's model is '" +
                        config.model + "'; open it with a program of that model"};
    if (m.codec_version != config.codec_version)
      return status{errc::config_mismatch,
                    mpath + ": the data was written with codec version " +
                        std::to_string(m.codec_version) + " of model '" + m.model +
                        "', this program has codec version " + std::to_string(config.codec_version) +
                        "; open it with the program version that wrote it (a rebuild to a new "
                        "codec version is not built yet)"};
    if (config.dedup_window) {
      const uint64_t want = *config.dedup_window;
      if (want < m.dedup_window && !(want == 0 && m.dedup_window == 0))
        return status{errc::config_mismatch,
                      mpath + ": the directory keeps a dedup window of " +
                          std::to_string(m.dedup_window) +
                          " event IDs per partition; the configuration asks for " +
                          std::to_string(want) +
                          ", which would forget IDs its checkpoints remember. Leave the window "
                          "unset to use the directory's, or ask for at least " +
                          std::to_string(m.dedup_window)};
      if (want > m.dedup_window) {
        d->notes_.push_back("dedup window grown from " + std::to_string(m.dedup_window) + " to " +
                            std::to_string(want) + " event IDs per partition (recorded in " +
                            mpath + ")");
        m.dedup_window = want;
      }
    }
  } else {
    // A partition directory without a MANIFEST is data whose key mapping is lost: refuse to
    // create a new MANIFEST over it (it might say another partition count).
    SF_RETURN_IF_ERROR(detail::check_no_orphan_partitions(fs, path));
    m.partitions = config.partitions;
    m.lanes = lanes;
    m.key_groups = config.key_groups;
    m.dedup_window = config.dedup_window.value_or(default_dedup_window);
    m.model = config.model;
    m.codec_version = config.codec_version;
  }
  ++m.epoch;
  SF_RETURN_IF_ERROR(fs.write_file_atomic(mpath, encode_manifest(m)));
  d->manifest_ = m;
  return d;
}

namespace detail {
status check_no_orphan_partitions(file_system& fs, const std::string& dir) {
  SF_ASSIGN_OR_RETURN(bool present, fs.exists(dir));
  if (!present) return status::ok();
  SF_ASSIGN_OR_RETURN(auto names, fs.list(dir));
  std::vector<std::string> found;
  for (const auto& n : names)
    if (is_partition_dir_name(n) || n == layout::lanes_dir) found.push_back(n);
  if (found.empty()) return status::ok();
  return status{errc::corruption,
                path_join(dir, layout::manifest) + " is missing, but the directory holds partition data (" +
                    found.front() +
                    (found.size() > 1 ? " and " + std::to_string(found.size() - 1) + " more" : "") +
                    "). Refusing to create a new MANIFEST over it, or to read the data without "
                    "one: its partition count decides which keys each partition holds. Restore "
                    "MANIFEST from a backup (a command to rebuild it from the data is not built yet)"};
}
}  // namespace detail

status data_dir::check_epoch() const {
  SF_ASSIGN_OR_RETURN(manifest m, read_manifest(fs_, path_));
  if (m.epoch != manifest_.epoch)
    return {errc::fenced, path_join(path_, layout::manifest) + ": epoch is " + std::to_string(m.epoch) +
                              ", this owner holds epoch " + std::to_string(manifest_.epoch) +
                              "; another owner has taken over, refusing to append"};
  return status::ok();
}

}  // namespace statefold
