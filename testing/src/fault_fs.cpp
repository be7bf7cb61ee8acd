#include "statefold/testing/fault_fs.hpp"

#include <algorithm>
#include <csignal>
#include <random>

namespace statefold::testing {

const char* to_string(fs_op op) noexcept {
  static const char* names[fs_op_count] = {"read",   "write", "sync",     "truncate",
                                            "open",   "rename", "remove",  "list",
                                            "sync_dir", "create_dirs", "lock"};
  return names[static_cast<int>(op)];
}

// One file's unsynced modifications, oldest first. Reverting an entry writes `old_bytes` back
// at `offset` and restores `old_size`; that undoes a write and a truncate alike.
struct fault_file_system::node {
  std::string path;
  struct undo {
    uint64_t offset;
    std::string old_bytes;
    uint64_t old_size;
    uint64_t new_len;  // bytes the write put at offset (0 for truncate)
  };
  std::vector<undo> unsynced;
  // Writes whose fdatasync failed. Linux may already have marked their pages clean
  // ("fsyncgate"): no later sync makes them durable, and a power loss reverts them.
  std::vector<undo> lost;
};

struct fault_file_system::journal_entry {
  enum kind_t { create, rename, remove } kind;
  std::string dir;
  std::string a;  // create: path; rename: from; remove: path
  std::string b;  // rename: to; remove: hidden trash path
};

namespace {
constexpr const char* trash_prefix = ".fault-trash-";
}

class fault_file final : public file {
 public:
  fault_file(fault_file_system& fs, std::unique_ptr<file> base,
             std::shared_ptr<fault_file_system::node> n, uint64_t generation)
      : fs_(fs), base_(std::move(base)), node_(std::move(n)), generation_(generation) {}

  result<std::size_t> read_at(uint64_t offset, char* buf, std::size_t n) override {
    std::lock_guard lock(fs_.mu_);
    SF_RETURN_IF_ERROR(check_alive());
    SF_RETURN_IF_ERROR(fs_.admit(fs_op::read, where(offset)));
    return base_->read_at(offset, buf, n);
  }

  status write_at(uint64_t offset, std::string_view data) override {
    std::lock_guard lock(fs_.mu_);
    SF_RETURN_IF_ERROR(check_alive());
    bool cut = false;
    SF_RETURN_IF_ERROR(fs_.admit(fs_op::write, where(offset), &cut));
    std::string_view part = cut ? data.substr(0, data.size() / 2) : data;
    SF_RETURN_IF_ERROR(remember(offset, part.size()));
    SF_RETURN_IF_ERROR(base_->write_at(offset, part));
    if (cut)
      return {errc::no_space, "write " + where(offset) + ": injected short write (" +
                                  std::to_string(part.size()) + " of " +
                                  std::to_string(data.size()) + " bytes)"};
    return status::ok();
  }

  status sync() override {
    std::lock_guard lock(fs_.mu_);
    SF_RETURN_IF_ERROR(check_alive());
    status st = fs_.admit(fs_op::sync, base_->path());
    if (st.is_ok()) st = base_->sync();
    if (node_) {
      if (!st.is_ok()) {
        node_->lost.insert(node_->lost.end(), node_->unsynced.begin(), node_->unsynced.end());
      }
      node_->unsynced.clear();
    }
    return st;
  }

  status truncate(uint64_t size) override {
    std::lock_guard lock(fs_.mu_);
    SF_RETURN_IF_ERROR(check_alive());
    SF_RETURN_IF_ERROR(fs_.admit(fs_op::truncate, base_->path()));
    SF_ASSIGN_OR_RETURN(uint64_t old_size, base_->size());
    if (node_ && size < old_size) {
      std::string cut(old_size - size, '\0');
      SF_ASSIGN_OR_RETURN(std::size_t got, base_->read_at(size, cut.data(), cut.size()));
      cut.resize(got);
      node_->unsynced.push_back({size, std::move(cut), old_size, 0});
    } else if (node_) {
      node_->unsynced.push_back({old_size, {}, old_size, 0});
    }
    return base_->truncate(size);
  }

  result<uint64_t> size() override {
    std::lock_guard lock(fs_.mu_);
    SF_RETURN_IF_ERROR(check_alive());
    return base_->size();
  }

  const std::string& path() const override { return base_->path(); }

 private:
  std::string where(uint64_t offset) const {
    return base_->path() + " at offset " + std::to_string(offset);
  }
  status check_alive() const {
    if (generation_ != fs_.generation_ || fs_.crashed_)
      return {errc::crashed, base_->path() + ": simulated crash; handle is dead"};
    return status::ok();
  }
  status remember(uint64_t offset, std::size_t len) {
    if (!node_) return status::ok();
    SF_ASSIGN_OR_RETURN(uint64_t old_size, base_->size());
    std::string old;
    if (offset < old_size) {
      old.resize(std::min<uint64_t>(len, old_size - offset));
      SF_ASSIGN_OR_RETURN(std::size_t got, base_->read_at(offset, old.data(), old.size()));
      old.resize(got);
    }
    node_->unsynced.push_back({offset, std::move(old), old_size, len});
    return status::ok();
  }

  fault_file_system& fs_;
  std::unique_ptr<file> base_;
  std::shared_ptr<fault_file_system::node> node_;
  uint64_t generation_;
};

fault_file_system::fault_file_system(file_system& base) : base_(base) {}
fault_file_system::~fault_file_system() = default;

bool fault_file_system::is_mutating(fs_op op) noexcept {
  switch (op) {
    case fs_op::write: case fs_op::sync: case fs_op::truncate: case fs_op::open:
    case fs_op::rename: case fs_op::remove: case fs_op::sync_dir: case fs_op::create_dirs:
      return true;
    default:
      return false;
  }
}

status fault_file_system::admit(fs_op op, const std::string& what, bool* short_write) {
  if (crashed_) return {errc::crashed, std::string(to_string(op)) + " " + what + ": simulated crash"};
  ++counts_[static_cast<int>(op)];
  if (is_mutating(op)) {
    ++mutating_;
    if (kill_at_ != 0 && mutating_ >= kill_at_) std::raise(SIGKILL);
    if (crash_at_ != 0 && mutating_ >= crash_at_) {
      crashed_ = true;
      return {errc::crashed, std::string(to_string(op)) + " " + what +
                                 ": simulated crash at operation " + std::to_string(mutating_)};
    }
  }
  for (rule& r : rules_) {
    if (r.any_mutation ? !is_mutating(op) : r.op != op) continue;
    if (!r.path_part.empty() && what.find(r.path_part) == std::string::npos) continue;
    ++r.seen;
    if (r.seen == r.at || (r.persistent && r.seen > r.at)) {
      if (r.short_write && short_write != nullptr) {
        *short_write = true;
        return status::ok();
      }
      return {r.code, std::string(to_string(op)) + " " + what + ": injected " +
                          statefold::to_string(r.code)};
    }
  }
  return status::ok();
}

void fault_file_system::fail(fs_op op, uint64_t nth, errc code, bool persistent) {
  fail_on({}, op, nth, code, persistent);
}

void fault_file_system::fail_on(const std::string& path_part, fs_op op, uint64_t nth, errc code,
                                bool persistent) {
  std::lock_guard lock(mu_);
  rules_.push_back({op, nth, code, persistent, false, path_part});
}

void fault_file_system::fail_mutation(uint64_t nth, errc code, bool persistent) {
  std::lock_guard lock(mu_);
  rule r{fs_op::write, nth, code, persistent, false, {}};
  r.any_mutation = true;
  rules_.push_back(r);
}

void fault_file_system::short_write(uint64_t nth) {
  std::lock_guard lock(mu_);
  rules_.push_back({fs_op::write, nth, errc::no_space, false, true, {}});
}

void fault_file_system::crash_at(uint64_t n) {
  std::lock_guard lock(mu_);
  crash_at_ = mutating_ + n;
}

void fault_file_system::kill_at(uint64_t n) {
  std::lock_guard lock(mu_);
  kill_at_ = mutating_ + n;
}

void fault_file_system::clear_faults() {
  std::lock_guard lock(mu_);
  rules_.clear();
  crash_at_ = kill_at_ = 0;
}

bool fault_file_system::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

uint64_t fault_file_system::mutating_ops() const {
  std::lock_guard lock(mu_);
  return mutating_;
}

uint64_t fault_file_system::ops(fs_op op) const {
  std::lock_guard lock(mu_);
  return counts_[static_cast<int>(op)];
}

void fault_file_system::reset_counts() {
  std::lock_guard lock(mu_);
  std::fill(std::begin(counts_), std::end(counts_), 0);
  mutating_ = 0;
  rules_.clear();
  crash_at_ = kill_at_ = 0;
}

std::shared_ptr<fault_file_system::node> fault_file_system::node_for(const std::string& path) {
  auto& slot = nodes_[path];
  if (!slot) {
    slot = std::make_shared<node>();
    slot->path = path;
  }
  return slot;
}

void fault_file_system::restart_after_crash() {
  // A process crash loses nothing the kernel already has, but makes nothing durable either:
  // unsynced writes and directory changes stay pending, so a later power_loss() still
  // reverts them. Only the handles die.
  std::lock_guard lock(mu_);
  crashed_ = false;
  rules_.clear();
  crash_at_ = kill_at_ = 0;
  ++generation_;
}

status fault_file_system::power_loss(power_loss_options options) {
  std::lock_guard lock(mu_);
  std::mt19937_64 rng(options.seed);
  status first_error;
  auto note = [&](status st) {
    if (!st.is_ok() && first_error.is_ok()) first_error = std::move(st);
  };
  for (auto& [path, n] : nodes_) {
    auto& u = n->unsynced;
    if (u.empty() && n->lost.empty()) continue;
    auto f = base_.open(n->path, open_mode::read_write);
    if (!f) {
      note(f.error());
      continue;
    }
    std::size_t keep = 0;           // entries [0, keep) survive whole
    uint64_t keep_partial = 0;      // bytes of entry `keep` that survive
    if (options.torn) {
      keep = std::uniform_int_distribution<std::size_t>(0, u.size())(rng);
      if (keep < u.size() && u[keep].new_len > 0)
        keep_partial = std::uniform_int_distribution<uint64_t>(0, u[keep].new_len - 1)(rng);
    }
    for (std::size_t i = u.size(); i-- > keep;) {
      const auto& e = u[i];
      uint64_t skip = (i == keep) ? keep_partial : 0;
      if (skip < e.old_bytes.size())
        note((*f)->write_at(e.offset + skip, std::string_view(e.old_bytes).substr(skip)));
      note((*f)->truncate(std::max(e.old_size, skip > 0 ? e.offset + skip : 0)));
    }
    for (std::size_t i = n->lost.size(); i-- > 0;) {
      const auto& e = n->lost[i];
      if (!e.old_bytes.empty()) note((*f)->write_at(e.offset, e.old_bytes));
      note((*f)->truncate(e.old_size));
    }
    u.clear();
    n->lost.clear();
  }
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) {
    switch (it->kind) {
      case journal_entry::create: {
        status st = base_.remove(it->a);
        if (st.code() != errc::not_found) note(st);
        nodes_.erase(it->a);
        break;
      }
      case journal_entry::rename:
      case journal_entry::remove:
        note(base_.rename(it->b, it->a));
        break;
    }
  }
  journal_.clear();
  nodes_.clear();
  crashed_ = false;
  rules_.clear();
  crash_at_ = kill_at_ = 0;
  ++generation_;
  return first_error;
}

result<std::unique_ptr<file>> fault_file_system::open(const std::string& path, open_mode mode) {
  std::lock_guard lock(mu_);
  const bool creating = mode == open_mode::create || mode == open_mode::create_new;
  if (creating) {
    SF_RETURN_IF_ERROR(admit(fs_op::open, path));
  } else if (crashed_) {
    return status{errc::crashed, "open " + path + ": simulated crash"};
  }
  bool existed = true;
  if (creating) {
    SF_ASSIGN_OR_RETURN(existed, base_.exists(path));
  }
  SF_ASSIGN_OR_RETURN(auto f, base_.open(path, mode));
  std::shared_ptr<node> n;
  if (mode != open_mode::read) n = node_for(path);
  if (creating && !existed) journal_.push_back({journal_entry::create, parent_dir(path), path, {}});
  return std::unique_ptr<file>(new fault_file(*this, std::move(f), std::move(n), generation_));
}

status fault_file_system::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::rename, from + " -> " + to));
  SF_ASSIGN_OR_RETURN(bool source_exists, base_.exists(from));
  if (!source_exists) return {errc::not_found, "rename " + from + " to " + to + ": No such file"};
  // Replacing an existing file: hide the old one first so that a power loss can restore it.
  SF_ASSIGN_OR_RETURN(bool target_exists, base_.exists(to));
  if (target_exists) {
    std::string trash = path_join(parent_dir(to), trash_prefix + std::to_string(++trash_seq_));
    SF_RETURN_IF_ERROR(base_.rename(to, trash));
    journal_.push_back({journal_entry::remove, parent_dir(to), to, trash});
    if (auto it = nodes_.find(to); it != nodes_.end()) {
      it->second->path = trash;
      nodes_[trash] = it->second;
      nodes_.erase(it);
    }
  }
  SF_RETURN_IF_ERROR(base_.rename(from, to));
  journal_.push_back({journal_entry::rename, parent_dir(to), from, to});
  if (auto it = nodes_.find(from); it != nodes_.end()) {
    it->second->path = to;
    nodes_[to] = it->second;
    nodes_.erase(it);
  }
  return status::ok();
}

status fault_file_system::remove(const std::string& path) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::remove, path));
  SF_ASSIGN_OR_RETURN(bool present, base_.exists(path));
  if (!present) return {errc::not_found, "remove " + path + ": No such file or directory"};
  std::string trash = path_join(parent_dir(path), trash_prefix + std::to_string(++trash_seq_));
  SF_RETURN_IF_ERROR(base_.rename(path, trash));
  journal_.push_back({journal_entry::remove, parent_dir(path), path, trash});
  if (auto it = nodes_.find(path); it != nodes_.end()) {
    it->second->path = trash;
    nodes_[trash] = it->second;
    nodes_.erase(it);
  }
  return status::ok();
}

result<std::vector<std::string>> fault_file_system::list(const std::string& dir) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::list, dir));
  SF_ASSIGN_OR_RETURN(auto names, base_.list(dir));
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) { return n.rfind(trash_prefix, 0) == 0; }),
              names.end());
  return names;
}

status fault_file_system::sync_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::sync_dir, dir));
  SF_RETURN_IF_ERROR(base_.sync_dir(dir));
  // Everything journaled for this directory is durable now.
  std::vector<journal_entry> rest;
  for (auto& e : journal_) {
    if (e.dir != dir) {
      rest.push_back(std::move(e));
    } else if (e.kind == journal_entry::remove) {
      nodes_.erase(e.b);
      ignore(base_.remove(e.b));
    }
  }
  journal_ = std::move(rest);
  return status::ok();
}

status fault_file_system::create_dirs(const std::string& dir) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::create_dirs, dir));
  return base_.create_dirs(dir);
}

result<bool> fault_file_system::exists(const std::string& path) {
  std::lock_guard lock(mu_);
  if (crashed_) return status{errc::crashed, "stat " + path + ": simulated crash"};
  return base_.exists(path);
}

result<std::unique_ptr<file_lock>> fault_file_system::lock(const std::string& path) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::lock, path));
  return base_.lock(path);
}

result<bool> fault_file_system::is_locked(const std::string& path) {
  std::lock_guard lock(mu_);
  SF_RETURN_IF_ERROR(admit(fs_op::lock, path));
  return base_.is_locked(path);
}

}  // namespace statefold::testing
