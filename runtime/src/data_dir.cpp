#include "statefold/data_dir.hpp"

#include <charconv>
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

std::string encode_manifest(const manifest& m) {
  std::ostringstream s;
  s << "statefold-manifest\n"
    << "format_version=" << m.format_version << "\n"
    << "partitions=" << m.partitions << "\n"
    << "key_groups=" << m.key_groups << "\n"
    << "hash_version=" << m.hash_version << "\n"
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
  int seen = 0;
  std::string_view rest = body.substr(std::string_view("statefold-manifest\n").size());
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return bad("malformed line '" + std::string(line) + "'");
    const std::string_view key = line.substr(0, eq), val = line.substr(eq + 1);
    uint64_t v = 0;
    auto [p, err] = std::from_chars(val.data(), val.data() + val.size(), v);
    if (err != std::errc() || p != val.data() + val.size())
      return bad("not an unsigned number in '" + std::string(line) + "'");
    auto u32 = [&](uint32_t& field, int bit) -> bool {
      if (v > UINT32_MAX) return false;
      field = static_cast<uint32_t>(v);
      seen |= bit;
      return true;
    };
    bool in_range = true;
    if (key == "format_version") in_range = u32(m.format_version, 1);
    else if (key == "partitions") in_range = u32(m.partitions, 2);
    else if (key == "key_groups") in_range = u32(m.key_groups, 4);
    else if (key == "hash_version") in_range = u32(m.hash_version, 8);
    else if (key == "epoch") m.epoch = v, seen |= 16;
    // Unknown keys are tolerated: a newer minor writer may add informational fields.
    if (!in_range) return bad("value out of range in '" + std::string(line) + "'");
  }
  if (seen != 31) return bad("missing field(s)");
  if (m.format_version != data_format_version)
    return status{errc::unsupported, path + ": data format version " +
                                         std::to_string(m.format_version) +
                                         ", this build reads version " +
                                         std::to_string(data_format_version)};
  if (!partitioner::check(m.partitions, m.key_groups).is_ok())
    return bad("impossible partition/key-group counts " + std::to_string(m.partitions) + "/" +
               std::to_string(m.key_groups));
  return m;
}

result<manifest> read_manifest(file_system& fs, const std::string& dir) {
  const std::string path = path_join(dir, "MANIFEST");
  SF_ASSIGN_OR_RETURN(std::string text, fs.read_file(path));
  return decode_manifest(text, path);
}

std::string data_dir::partition_dir(uint32_t partition) const {
  return path_join(path_, partition_dir_name(partition));
}

result<std::unique_ptr<data_dir>> data_dir::open(file_system& fs, std::string path,
                                                 const data_dir_config& config) {
  SF_RETURN_IF_ERROR(partitioner::check(config.partitions, config.key_groups));
  SF_ASSIGN_OR_RETURN(bool present, fs.exists(path));
  if (!present && !config.create_if_missing)
    return status{errc::not_found, path + ": data directory does not exist"};
  SF_RETURN_IF_ERROR(fs.create_dirs(path));
  std::unique_ptr<data_dir> d(new data_dir(fs, path));
  SF_ASSIGN_OR_RETURN(d->lock_, fs.lock(path_join(path, "LOCK")));

  const std::string mpath = path_join(path, "MANIFEST");
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
                        "; open with the recorded counts, or rescale offline"};
    if (m.hash_version != hash_version)
      return status{errc::config_mismatch, mpath + ": key hash version " +
                                               std::to_string(m.hash_version) +
                                               ", this build uses " + std::to_string(hash_version)};
  } else {
    m.partitions = config.partitions;
    m.key_groups = config.key_groups;
  }
  ++m.epoch;
  SF_RETURN_IF_ERROR(fs.write_file_atomic(mpath, encode_manifest(m)));
  d->manifest_ = m;
  return d;
}

status data_dir::check_epoch() const {
  SF_ASSIGN_OR_RETURN(manifest m, read_manifest(fs_, path_));
  if (m.epoch != manifest_.epoch)
    return {errc::fenced, path_join(path_, "MANIFEST") + ": epoch is " + std::to_string(m.epoch) +
                              ", this owner holds epoch " + std::to_string(manifest_.epoch) +
                              "; another owner has taken over, refusing to append"};
  return status::ok();
}

}  // namespace statefold
