#pragma once

// Checkpoints: one file per checkpoint, the whole state of a partition as of an LSN.
//
//   DIR/p-NNNN/ckpt/<lsn, 20 digits>.ckpt
//
//   +------------------------------ header, 40 bytes ------------------------------+
//   | magic "SFCKPT01" | version u32 | partition u32 | LSN u64 | epoch u64 | body length u64 |
//   +-------------------------------------------------------------------------------+
//   | body: codec     u32 the Model's codec version (model.hpp)                      |
//   |       lane      u32 the journal lane the partition's records go to              |
//   |       position  u64 the lane LSN replay starts from (every record of the       |
//   |                 partition after this checkpoint's LSN is at or after it)        |
//   |       sources   u32 count, then (name bytes, next u64, fingerprint_at u64,      |
//   |                 fingerprint u64) each                                          |
//   |       dedup     u64 evictions, u32 count, then 24-byte entries (identity 16 B,  |
//   |                 tag 8 B: key group and body digest), oldest first             |
//   |       entities  u64 count, then (key bytes, state u32 len + bytes)               |
//   +-------------------------------------------------------------------------------+
//   | masked CRC32C of everything above, u32                                         |
//
// "LSN" is the partition's sequence number (pseq) of the last record the state includes (0:
// none); recovery replays the partition's records from pseq LSN + 1 on, reading its lane from
// `position`. A partition alone in its lane numbers its records by lane LSN, so there the two
// coincide. The position is the lane's durable LSN + 1 when the image was taken: the lane held
// that much durably, so a lane that now ends before it has lost acknowledged records.
//
// Lifecycle: a checkpoint is written to <name>.tmp, fdatasynced, renamed to its final name,
// and the directory is fsynced; only then does it exist, and only then may log segments it
// replaces be released. Leftover .tmp files of an interrupted write are removed at open. At
// least the two newest checkpoints are kept so that a damaged newest one can fall back.
// Loading verifies the CRC first (so a damaged version field reads as damage, not as a
// newer format), then bounds-checks every count and length against the file before using
// it: a forged count fails the load, it never allocates or reads past the end.
// Leftovers removed at open are our own names only: <20 digits>.ckpt.tmp and sealed.tmp.
//
// Sealing (a partition released from its engine, engine::release): the file `sealed` names
// the checkpoint that is the partition's last word. While it exists the partition holds
// nothing in its lane, which may release every segment, the ones that checkpoint would replay
// from included; recovery accepts that one checkpoint although its lane now starts after its
// position (recovery.cpp). The partition's next owner takes a new checkpoint before it
// removes the file.
//
// Single-threaded per partition.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "statefold/coding.hpp"
#include "statefold/dedup_window.hpp"
#include "statefold/envelope.hpp"
#include "statefold/file_system.hpp"
#include "statefold/status.hpp"

namespace statefold {

namespace checkpoint_format {
inline constexpr std::string_view magic = "SFCKPT01";
inline constexpr uint32_t version = 4;
inline constexpr std::size_t header_size = 40;
/// Header + codec + lane + position: what read_position() reads.
inline constexpr std::size_t position_end = header_size + 16;
std::string file_name(uint64_t lsn);
bool parse_file_name(std::string_view name, uint64_t& lsn);
/// `sealed`: magic "SFSEAL01", the sealed checkpoint's LSN u64, masked CRC32C of both u32.
inline constexpr std::string_view sealed_name = "sealed";
inline constexpr std::string_view sealed_magic = "SFSEAL01";
inline constexpr std::size_t sealed_size = 20;
}  // namespace checkpoint_format

/// Builds a checkpoint image in memory: sources, then dedup, then entities, then finish().
class checkpoint_builder {
 public:
  checkpoint_builder(uint32_t partition, uint64_t lsn, uint64_t epoch, uint32_t codec_version,
                     uint32_t lane, uint64_t position);
  void add_sources(const std::vector<std::pair<std::string, source_progress>>& sources);
  void add_dedup(const dedup_window& window);
  /// Then, `count` times, add_entity.
  void begin_entities(uint64_t count);
  /// `encode_state` appends the state's bytes to the string it is given.
  template <class Encoder>
  void add_entity(std::string_view key, Encoder&& encode_state);
  /// The finished file content.
  std::string finish() &&;
  /// Bytes so far, and room for more: an image grown by doubling copies itself each time
  /// (tens of ms at 64 MB, on the partition's thread).
  std::size_t size() const noexcept { return buf_.size(); }
  void reserve(std::size_t bytes) { buf_.reserve(bytes); }
  uint64_t lsn() const noexcept { return lsn_; }
  /// False when an entity's state was too large for the format (> 4 GiB); do not write it.
  bool ok() const noexcept { return ok_; }

 private:
  std::string buf_;
  uint64_t lsn_;
  bool ok_ = true;
};

/// A verified checkpoint, parsed; entity bytes are views into `bytes`.
struct loaded_checkpoint {
  std::string path;
  uint64_t lsn = 0;
  uint64_t epoch = 0;
  uint32_t codec_version = 0;
  uint32_t lane = 0;
  uint64_t position = 0;  ///< lane LSN replay starts from
  std::vector<std::pair<std::string, source_progress>> sources;
  uint64_t dedup_evictions = 0;
  std::vector<dedup_entry> dedup;  // oldest first
  std::vector<std::pair<std::string_view, std::string_view>> entities;
  std::string bytes;
};

/// Parses and verifies a checkpoint image (file content). `path` is used in messages.
result<loaded_checkpoint> decode_checkpoint(std::string bytes, const std::string& path,
                                            uint32_t partition);

class checkpoint_store {
 public:
  /// Creates the directory if needed and removes leftover .tmp files (then syncs it).
  static result<checkpoint_store> open(file_system& fs, std::string dir, uint32_t partition);
  /// For readers: changes nothing (a missing directory lists no checkpoints). list() and
  /// load() only; the writing members must not be called.
  static checkpoint_store open_read_only(file_system& fs, std::string dir, uint32_t partition);

  /// LSNs of the checkpoint files present, newest first (not yet verified).
  result<std::vector<uint64_t>> list() const;
  result<loaded_checkpoint> load(uint64_t lsn) const;
  /// The lane position a checkpoint records, from its first bytes only (no CRC check: for
  /// deciding what a lane may release, where a damaged one is skipped anyway by recovery).
  /// not_found when the file is gone; corruption when its header makes no sense.
  result<uint64_t> read_position(uint64_t lsn) const;
  /// Durably writes a checkpoint built by checkpoint_builder (see Lifecycle above).
  status write(uint64_t lsn, std::string_view image);

  /// The same write in steps, for a thread that has other work to do in between (the
  /// partition's flusher, whose log syncs must not wait ~100 ms for an 80 MB image).
  class staged_write {
   public:
    /// Writes up to `bytes` more of the image; each slice goes to the device before the next
    /// (write_back), so the final fdatasync is short and the log's syncs never queue behind
    /// the whole image. true once everything is written.
    result<bool> step(std::size_t bytes);
    /// fdatasync, rename into place, fsync the directory. The checkpoint is durable after.
    status finish();
    uint64_t lsn() const noexcept { return lsn_; }

   private:
    friend class checkpoint_store;
    checkpoint_store* store_ = nullptr;
    uint64_t lsn_ = 0;
    std::string image_;
    std::unique_ptr<file> f_;
    std::size_t written_ = 0;
  };
  /// Creates the .tmp file; nothing is visible under a checkpoint name until finish().
  result<staged_write> begin_write(uint64_t lsn, std::string image);
  /// Removes all but the `keep` newest checkpoints (never fewer than one).
  status prune(std::size_t keep);
  /// Removes checkpoints with LSN >= lsn (after a point-in-time cut of the log).
  status remove_from(uint64_t lsn);

  /// Seals the checkpoint at `lsn` (see Sealing above), durably. It must exist.
  status seal(uint64_t lsn);
  /// The sealed checkpoint's LSN, or nullopt when the partition is not sealed. corruption
  /// (naming the file) when the file is damaged.
  result<std::optional<uint64_t>> sealed() const;
  /// Removes the seal, durably (nothing when there is none).
  status unseal();
  const std::string& dir() const noexcept { return dir_; }
  std::string path_of(uint64_t lsn) const;
  /// Stray files removed by open().
  const std::vector<std::string>& removed_at_open() const noexcept { return removed_; }

 private:
  checkpoint_store(file_system& fs, std::string dir, uint32_t partition)
      : fs_(&fs), dir_(std::move(dir)), partition_(partition) {}
  file_system* fs_;
  std::string dir_;
  uint32_t partition_;
  std::vector<std::string> removed_;
  std::string sealed_path() const;
};

template <class Encoder>
void checkpoint_builder::add_entity(std::string_view key, Encoder&& encode_state) {
  put_bytes(buf_, key);
  // The state's length is not known before encoding: reserve a fixed 4-byte length.
  const std::size_t at = buf_.size();
  buf_.append(4, '\0');
  encode_state(buf_);
  const uint64_t len = buf_.size() - at - 4;
  if (len > UINT32_MAX) ok_ = false;
  store_u32(buf_.data() + at, static_cast<uint32_t>(len));
}

}  // namespace statefold
