#include "statefold/checkpoint.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "statefold/crc32c.hpp"

namespace statefold {

namespace checkpoint_format {
std::string file_name(uint64_t lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 ".ckpt", lsn);
  return buf;
}
bool parse_file_name(std::string_view name, uint64_t& lsn) {
  return parse_lsn_name(name, ".ckpt", lsn);
}}  // namespace checkpoint_format

using namespace checkpoint_format;

namespace {
constexpr std::size_t dedup_entry_size = 24;  // identity hi, lo; tag (key group, body digest)
}  // namespace

checkpoint_builder::checkpoint_builder(uint32_t partition, uint64_t lsn, uint64_t epoch,
                                       uint32_t codec_version, uint32_t lane, uint64_t position)
    : lsn_(lsn) {
  buf_.append(magic);
  put_u32(buf_, version);
  put_u32(buf_, partition);
  put_u64(buf_, lsn);
  put_u64(buf_, epoch);
  put_u64(buf_, 0);  // body length, patched by finish()
  put_u32(buf_, codec_version);
  put_u32(buf_, lane);
  put_u64(buf_, position);
}

void checkpoint_builder::add_sources(const std::vector<std::pair<std::string, source_progress>>& s) {
  put_u32(buf_, static_cast<uint32_t>(s.size()));
  for (const auto& [name, p] : s) {
    put_bytes(buf_, name);
    put_u64(buf_, p.next);
    put_u64(buf_, p.fingerprint_at);
    put_u64(buf_, p.fingerprint);
  }
}

void checkpoint_builder::add_dedup(const dedup_window& w) {
  put_u64(buf_, w.evictions());
  put_u32(buf_, static_cast<uint32_t>(w.size()));
  // 6 MB at the default window, on the partition's thread: one allocation, plain stores.
  std::size_t at = buf_.size();
  buf_.resize(at + dedup_entry_size * w.size());
  w.for_each([&](const dedup_entry& e) {
    store_u64(buf_.data() + at, e.id.hi);
    store_u64(buf_.data() + at + 8, e.id.lo);
    store_u64(buf_.data() + at + 16, e.tag);
    at += dedup_entry_size;
  });
}

void checkpoint_builder::begin_entities(uint64_t count) { put_u64(buf_, count); }

std::string checkpoint_builder::finish() && {
  store_u64(buf_.data() + 32, buf_.size() - header_size);
  put_u32(buf_, crc32c::mask(crc32c::value(buf_.data(), buf_.size())));
  return std::move(buf_);
}

result<loaded_checkpoint> decode_checkpoint(std::string bytes, const std::string& path,
                                            uint32_t partition) {
  auto bad = [&](const std::string& what, std::size_t offset) {
    return status{errc::corruption, path + " at offset " + std::to_string(offset) + ": " + what};
  };
  if (bytes.size() < header_size + 4)
    return bad("checkpoint is " + std::to_string(bytes.size()) + " bytes, shorter than its header",
               0);
  if (std::string_view(bytes.data(), 8) != magic) return bad("bad checkpoint magic", 0);
  uint64_t body_len = load_u64(bytes.data() + 32);
  if (body_len != bytes.size() - header_size - 4)
    return bad("body length " + std::to_string(body_len) + " disagrees with the file size " +
                   std::to_string(bytes.size()) + " (truncated or extended file)",
               32);
  uint32_t stored = crc32c::unmask(load_u32(bytes.data() + bytes.size() - 4));
  uint32_t actual = crc32c::value(bytes.data(), bytes.size() - 4);
  if (!crc32c::crc_matches(stored, actual)) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "checkpoint CRC mismatch: stored 0x%08x, computed 0x%08x",
                  stored, actual);
    return bad(msg, bytes.size() - 4);
  }
  uint32_t ver = load_u32(bytes.data() + 8);
  if (ver != version)
    return status{errc::unsupported, path + ": checkpoint format version " + std::to_string(ver) +
                                         ", this build reads version " + std::to_string(version)};
  loaded_checkpoint c;
  c.path = path;
  uint32_t part = load_u32(bytes.data() + 12);
  if (part != partition)
    return bad("checkpoint of partition " + std::to_string(part) + " in the directory of partition " +
                   std::to_string(partition),
               12);
  c.lsn = load_u64(bytes.data() + 16);
  c.epoch = load_u64(bytes.data() + 24);
  c.bytes = std::move(bytes);

  const std::string_view all(c.bytes);
  byte_reader r(all.substr(header_size, body_len));
  auto at = [&] { return header_size + body_len - r.remaining(); };

  if (!r.u32(c.codec_version) || !r.u32(c.lane) || !r.u64(c.position))
    return bad("codec version, lane or position truncated", at());
  if (c.position == 0) return bad("lane position 0 (positions start at 1)", at());
  uint32_t nsources;
  if (!r.u32(nsources) || nsources > r.remaining() / 25) return bad("bad source count", at());
  for (uint32_t i = 0; i < nsources; ++i) {
    std::string_view name;
    source_progress p;
    if (!r.bytes(name) || !r.u64(p.next) || !r.u64(p.fingerprint_at) || !r.u64(p.fingerprint))
      return bad("source entry truncated", at());
    if (name.empty()) return bad("source entry with an empty name", at());
    c.sources.emplace_back(std::string(name), p);
  }
  uint32_t ndedup;
  if (!r.u64(c.dedup_evictions) || !r.u32(ndedup) || ndedup > r.remaining() / dedup_entry_size)
    return bad("bad dedup window count", at());
  c.dedup.reserve(ndedup);
  for (uint32_t i = 0; i < ndedup; ++i) {
    dedup_entry e;
    if (!r.u64(e.id.hi) || !r.u64(e.id.lo) || !r.u64(e.tag)) return bad("dedup entry truncated", at());
    c.dedup.push_back(e);
  }
  uint64_t nentities;
  // Each entity takes at least 5 bytes (empty key: 1-byte length; 4-byte state length).
  if (!r.u64(nentities) || nentities > r.remaining() / 5) return bad("bad entity count", at());
  c.entities.reserve(static_cast<std::size_t>(nentities));
  for (uint64_t i = 0; i < nentities; ++i) {
    std::string_view key, state;
    uint32_t len;
    if (!r.bytes(key) || !r.u32(len) || !r.raw(len, state))
      return bad("entity " + std::to_string(i) + " of " + std::to_string(nentities) + " truncated",
                 at());
    c.entities.emplace_back(key, state);
  }
  if (!r.empty())
    return bad(std::to_string(r.remaining()) + " unexpected bytes after the last entity", at());
  return c;
}

result<checkpoint_store> checkpoint_store::open(file_system& fs, std::string dir,
                                                uint32_t partition) {
  SF_RETURN_IF_ERROR(fs.create_dirs(dir));
  checkpoint_store s(fs, std::move(dir), partition);
  SF_ASSIGN_OR_RETURN(auto names, fs.list(s.dir_));
  for (const auto& n : names) {
    uint64_t lsn;
    if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp" &&
        (parse_file_name(std::string_view(n).substr(0, n.size() - 4), lsn) ||
         std::string_view(n).substr(0, n.size() - 4) == sealed_name)) {
      std::string p = path_join(s.dir_, n);
      SF_RETURN_IF_ERROR(fs.remove(p));
      s.removed_.push_back(p);
    }
  }
  if (!s.removed_.empty()) SF_RETURN_IF_ERROR(fs.sync_dir(s.dir_));
  return s;
}

checkpoint_store checkpoint_store::open_read_only(file_system& fs, std::string dir,
                                                  uint32_t partition) {
  return checkpoint_store(fs, std::move(dir), partition);
}

std::string checkpoint_store::path_of(uint64_t lsn) const { return path_join(dir_, file_name(lsn)); }

result<std::vector<uint64_t>> checkpoint_store::list() const {
  SF_ASSIGN_OR_RETURN(bool present, fs_->exists(dir_));
  if (!present) return std::vector<uint64_t>{};
  SF_ASSIGN_OR_RETURN(auto names, fs_->list(dir_));
  std::vector<uint64_t> lsns;
  for (const auto& n : names) {
    uint64_t lsn;
    if (parse_file_name(n, lsn)) lsns.push_back(lsn);
  }
  std::sort(lsns.rbegin(), lsns.rend());
  return lsns;
}

result<loaded_checkpoint> checkpoint_store::load(uint64_t lsn) const {
  const std::string path = path_of(lsn);
  SF_ASSIGN_OR_RETURN(std::string bytes, fs_->read_file(path));
  SF_ASSIGN_OR_RETURN(auto c, decode_checkpoint(std::move(bytes), path, partition_));
  if (c.lsn != lsn)
    return status{errc::corruption, path + ": header says LSN " + std::to_string(c.lsn) +
                                        " but the file name says " + std::to_string(lsn)};
  return c;
}

result<uint64_t> checkpoint_store::read_position(uint64_t lsn) const {
  const std::string path = path_of(lsn);
  SF_ASSIGN_OR_RETURN(auto f, fs_->open(path, open_mode::read));
  std::string head(position_end, '\0');
  SF_ASSIGN_OR_RETURN(std::size_t got, f->read_at(0, head.data(), head.size()));
  if (got < head.size() || std::string_view(head.data(), 8) != magic ||
      load_u32(head.data() + 8) != version || load_u32(head.data() + 12) != partition_ ||
      load_u64(head.data() + 16) != lsn || load_u64(head.data() + 48) == 0)
    return status{errc::corruption, path + ": not a readable checkpoint header of partition " +
                                        std::to_string(partition_) + " at LSN " + std::to_string(lsn)};
  return load_u64(head.data() + 48);
}

status checkpoint_store::write(uint64_t lsn, std::string_view image) {
  SF_ASSIGN_OR_RETURN(auto w, begin_write(lsn, std::string(image)));
  SF_RETURN_IF_ERROR(w.step(SIZE_MAX).to_status());
  return w.finish();
}

result<checkpoint_store::staged_write> checkpoint_store::begin_write(uint64_t lsn, std::string image) {
  staged_write w;
  w.store_ = this;
  w.lsn_ = lsn;
  w.image_ = std::move(image);
  SF_ASSIGN_OR_RETURN(w.f_, fs_->open(path_of(lsn) + ".tmp", open_mode::create));
  SF_RETURN_IF_ERROR(w.f_->truncate(0));
  return w;
}

result<bool> checkpoint_store::staged_write::step(std::size_t bytes) {
  constexpr std::size_t slice = 2u << 20;
  while (written_ < image_.size() && bytes > 0) {
    const std::size_t n = std::min({slice, bytes, image_.size() - written_});
    SF_RETURN_IF_ERROR(f_->write_at(written_, std::string_view(image_).substr(written_, n)));
    SF_RETURN_IF_ERROR(f_->write_back(written_, n));
    written_ += n;
    bytes -= n;
  }
  return written_ == image_.size();
}

status checkpoint_store::staged_write::finish() {
  SF_RETURN_IF_ERROR(f_->sync());
  f_.reset();
  const std::string path = store_->path_of(lsn_);
  SF_RETURN_IF_ERROR(store_->fs_->rename(path + ".tmp", path));
  return store_->fs_->sync_dir(store_->dir_);
}

status checkpoint_store::prune(std::size_t keep) {
  keep = std::max<std::size_t>(keep, 1);
  SF_ASSIGN_OR_RETURN(auto lsns, list());
  if (lsns.size() <= keep) return status::ok();
  for (std::size_t i = keep; i < lsns.size(); ++i) SF_RETURN_IF_ERROR(fs_->remove(path_of(lsns[i])));
  return fs_->sync_dir(dir_);
}

status checkpoint_store::remove_from(uint64_t lsn) {
  SF_ASSIGN_OR_RETURN(auto lsns, list());
  bool removed = false;
  for (uint64_t l : lsns) {
    if (l < lsn) continue;
    SF_RETURN_IF_ERROR(fs_->remove(path_of(l)));
    removed = true;
  }
  return removed ? fs_->sync_dir(dir_) : status::ok();
}

status checkpoint_store::seal(uint64_t lsn) {
  SF_ASSIGN_OR_RETURN(bool present, fs_->exists(path_of(lsn)));
  if (!present) return status{errc::invalid_argument, "seal: no checkpoint at LSN " + std::to_string(lsn)};
  std::string b(sealed_magic);
  put_u64(b, lsn);
  put_u32(b, crc32c::mask(crc32c::value(b.data(), b.size())));
  return fs_->write_file_atomic(sealed_path(), b);
}

std::string checkpoint_store::sealed_path() const { return path_join(dir_, sealed_name); }

result<std::optional<uint64_t>> checkpoint_store::sealed() const {
  const std::string path = sealed_path();
  SF_ASSIGN_OR_RETURN(bool present, fs_->exists(path));
  if (!present) return std::optional<uint64_t>();
  SF_ASSIGN_OR_RETURN(std::string b, fs_->read_file(path));
  if (b.size() != sealed_size || std::string_view(b.data(), 8) != sealed_magic ||
      load_u32(b.data() + 16) != crc32c::mask(crc32c::value(b.data(), 16)))
    return status{errc::corruption, path + ": damaged seal (" + std::to_string(b.size()) +
                                        " bytes; want magic SFSEAL01, an LSN and its CRC in 20)"};
  return std::optional<uint64_t>(load_u64(b.data() + 8));
}

status checkpoint_store::unseal() {
  const std::string path = sealed_path();
  SF_ASSIGN_OR_RETURN(bool present, fs_->exists(path));
  if (!present) return status::ok();
  SF_RETURN_IF_ERROR(fs_->remove(path));
  return fs_->sync_dir(dir_);
}

}  // namespace statefold
