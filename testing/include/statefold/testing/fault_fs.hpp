#pragma once

// fault_file_system: a file_system wrapper for tests that injects errors and simulates a
// process crash or a power loss. It is real I/O on a real directory underneath; it only
// remembers enough to undo what a power loss would undo.
//
// What a simulated power loss (`power_loss()`) reverts, in this order:
//  1. bytes written to, or truncated from, a file since that file's last successful sync() —
//     restored to their previous content (with `torn`, a random prefix of the unsynced writes
//     of each file survives, the last one possibly cut mid-way). Writes covered by a FAILED
//     sync are lost for good, as on Linux ("fsyncgate"): no later sync makes them durable;
//  2. creations, renames and removals not followed by sync_dir() of their directory — undone
//     newest first. A removed file is kept under a hidden name until its directory is synced.
// Directory creation (create_dirs) is atomic and durable in this model: the POSIX
// implementation fsyncs the parent of every path component on every call, so a directory
// whose creation was interrupted is made durable by the next call.
//
// Crash points: every mutating operation (write, sync, truncate, creating open, rename,
// remove, sync_dir, create_dirs) is counted. `crash_at(n)` makes the n-th one not happen and
// every operation after it fail with errc::crashed, as if the process had died there;
// `kill_at(n)` raises SIGKILL instead (for multi-process tests). Errors (`fail`) are injected
// at the n-th operation of one kind, once or from then on.
//
// Thread-safe (one mutex). Handles opened before a power loss fail with errc::crashed after it.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "statefold/file_system.hpp"

namespace statefold::testing {

enum class fs_op : uint8_t {
  read, write, sync, truncate, open, rename, remove, list, sync_dir, create_dirs, lock,
};
inline constexpr int fs_op_count = 11;
const char* to_string(fs_op op) noexcept;

class fault_file_system final : public file_system {
 public:
  explicit fault_file_system(file_system& base);
  ~fault_file_system() override;

  // -- injection --------------------------------------------------------------------------
  /// The `nth` (1-based, counted from now) operation of kind `op` fails with `code`; with
  /// `persistent`, so does every later one of that kind.
  void fail(fs_op op, uint64_t nth, errc code, bool persistent = false);
  /// The same, counting only operations on paths that contain `path_part` (e.g. "p-0001/").
  void fail_on(const std::string& path_part, fs_op op, uint64_t nth, errc code,
               bool persistent = false);
  /// The `nth` mutating operation of any kind (counted from now) fails with `code`; with
  /// `persistent`, so does every mutating operation after it. For I/O-error sweeps.
  void fail_mutation(uint64_t nth, errc code, bool persistent = false);
  /// The `nth` write (counted from now) writes only its first half, then fails with no_space.
  void short_write(uint64_t nth);
  /// The n-th mutating operation (1-based, counted from now) does not happen; it and everything
  /// after it fail with errc::crashed until power_loss() or restart_after_crash().
  void crash_at(uint64_t n);
  /// SIGKILL this process just before the n-th mutating operation (counted from now).
  void kill_at(uint64_t n);
  /// Drops every pending fail / short_write / crash_at / kill_at.
  void clear_faults();

  bool crashed() const;
  /// Mutating operations performed since construction (or reset_counts()).
  uint64_t mutating_ops() const;
  uint64_t ops(fs_op op) const;
  void reset_counts();

  struct power_loss_options {
    bool torn = false;   ///< keep a random prefix of each file's unsynced writes
    uint64_t seed = 0;   ///< for `torn`
  };
  /// Simulates power loss: reverts everything not made durable (see above), invalidates every
  /// open handle, clears the crashed state and all faults.
  status power_loss(power_loss_options options);
  status power_loss() { return power_loss(power_loss_options{}); }
  /// A process crash: the kernel keeps unsynced data, but it is still not durable — a later
  /// power_loss() reverts it. Invalidates open handles, clears the crashed state and faults.
  void restart_after_crash();

  // -- file_system ------------------------------------------------------------------------
  result<std::unique_ptr<file>> open(const std::string& path, open_mode mode) override;
  status rename(const std::string& from, const std::string& to) override;
  status remove(const std::string& path) override;
  result<std::vector<std::string>> list(const std::string& dir) override;
  status sync_dir(const std::string& dir) override;
  status create_dirs(const std::string& dir) override;
  result<bool> exists(const std::string& path) override;
  result<std::unique_ptr<file_lock>> lock(const std::string& path) override;
  result<bool> is_locked(const std::string& path) override;

 private:
  friend class fault_file;
  struct node;
  struct journal_entry;
  struct rule {
    fs_op op;
    uint64_t at;  // the rule fires at the at-th matching operation from now
    errc code;
    bool persistent;
    bool short_write;
    std::string path_part;  // empty: every path
    uint64_t seen = 0;
    bool any_mutation = false;  // matches every mutating operation, whatever `op` says
  };

  // Counts the operation and decides its fate. Returns ok to proceed. `*short_write` is set
  // when the write must be cut. Called with mu_ held.
  status admit(fs_op op, const std::string& what, bool* short_write = nullptr);
  static bool is_mutating(fs_op op) noexcept;
  std::shared_ptr<node> node_for(const std::string& path);

  file_system& base_;
  mutable std::mutex mu_;
  uint64_t counts_[fs_op_count] = {};
  uint64_t mutating_ = 0;
  uint64_t crash_at_ = 0;  // absolute mutating count; 0 = none
  uint64_t kill_at_ = 0;
  bool crashed_ = false;
  uint64_t generation_ = 0;
  uint64_t trash_seq_ = 0;
  std::vector<rule> rules_;
  std::map<std::string, std::shared_ptr<node>> nodes_;
  std::vector<journal_entry> journal_;
};

}  // namespace statefold::testing
