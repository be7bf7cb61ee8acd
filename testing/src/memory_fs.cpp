#include "statefold/testing/memory_fs.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string_view>

namespace statefold::testing {

// Byte order of names, as std::string compares them; written out here (memcmp) rather than
// std::less<> so that, in the fuzz build, no coverage-instrumented string_view::compare
// instantiation ends up on this path.
struct name_less {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept {
    const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
    return c != 0 ? c < 0 : a.size() < b.size();
  }
};

// A file or a directory (an inode). Directories own their entries; `parent` is the directory
// that holds this one (the root's is itself), for "..".
struct memory_file_system::node : std::enable_shared_from_this<node> {
  explicit node(bool dir, node* up) : is_dir(dir), parent(up) {}
  bool is_dir;
  node* parent;
  std::string data;                                                // file
  std::map<std::string, std::shared_ptr<node>, name_less> entries;  // directory
  bool locked = false;                                             // lock() holder alive
};

struct memory_file_system::tree {
  std::mutex mu;
  std::shared_ptr<node> root;
  tree() : root(std::make_shared<node>(true, nullptr)) { root->parent = root.get(); }
};

namespace {

using node = memory_file_system::node;
using tree = memory_file_system::tree;

constexpr std::size_t name_max = 255;   // NAME_MAX
constexpr std::size_t path_max = 4096;  // PATH_MAX, terminating NUL included

// Where a path leads. `dir` holds `leaf`; `leaf` is empty when the path names a directory
// without naming an entry of it ("/", ".", "..", "a/.."): nothing to create, remove or
// rename. `target` is null when the entry does not exist.
struct place {
  node* dir = nullptr;
  std::string_view leaf;
  node* target = nullptr;
  bool trailing_slash = false;
};

// Path resolution, as namei does it (no symlinks). Returns 0 or an errno value.
int resolve(tree& t, const std::string& path_in, place& out) {
  const std::string_view path(path_in.c_str());  // the kernel stops at the first NUL
  if (path.empty()) return ENOENT;
  if (path.size() >= path_max) return ENAMETOOLONG;
  out.trailing_slash = path.back() == '/';
  node* cur = t.root.get();
  std::size_t pos = 0;
  std::string_view last;
  bool have_last = false;
  while (pos < path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view c = path.substr(pos, end - pos);
    pos = end + 1;
    if (c.empty()) continue;
    if (have_last) {  // `last` is an intermediate component: it must be a directory
      if (last == "..") {
        cur = cur->parent;
      } else if (last != ".") {
        auto it = cur->entries.find(last);
        if (it == cur->entries.end()) return ENOENT;
        if (!it->second->is_dir) return ENOTDIR;
        cur = it->second.get();
      }
    }
    // After the lookup of the component before it, as the kernel: a missing directory
    // followed by an over-long name is ENOENT.
    if (c.size() > name_max) return ENAMETOOLONG;
    last = c;
    have_last = true;
  }
  if (!have_last || last == ".") {
    out.dir = cur;
    out.target = cur;
  } else if (last == "..") {
    out.dir = cur->parent;
    out.target = cur->parent;
  } else {
    out.dir = cur;
    out.leaf = last;
    auto it = cur->entries.find(last);
    if (it != cur->entries.end()) out.target = it->second.get();
  }
  if (out.target && !out.target->is_dir && out.trailing_slash) return ENOTDIR;
  return 0;
}

class memory_file final : public file {
 public:
  memory_file(std::shared_ptr<tree> t, std::shared_ptr<node> n, std::string path, bool writable)
      : t_(std::move(t)), n_(std::move(n)), path_(std::move(path)), writable_(writable) {}

  result<std::size_t> read_at(uint64_t offset, char* buf, std::size_t n) override {
    std::lock_guard<std::mutex> g(t_->mu);
    if (n_->is_dir) return os_error_at("read", path_, offset, n, EISDIR);
    if (n == 0) return std::size_t{0};
    if (offset > static_cast<uint64_t>(INT64_MAX)) return os_error_at("read", path_, offset, n, EINVAL);
    const std::string& d = n_->data;
    if (offset >= d.size()) return std::size_t{0};
    const std::size_t got = std::min<std::size_t>(n, d.size() - static_cast<std::size_t>(offset));
    std::memcpy(buf, d.data() + offset, got);
    return got;
  }

  status write_at(uint64_t offset, std::string_view data) override {
    std::lock_guard<std::mutex> g(t_->mu);
    if (data.empty()) return status::ok();  // posix_fs's pwrite loop does not run at all
    if (!writable_) return os_error_at("write", path_, offset, data.size(), EBADF);
    if (offset > memory_file_system::max_file_size ||
        data.size() > memory_file_system::max_file_size - offset)
      return os_error_at("write", path_, offset, data.size(), EFBIG);
    std::string& d = n_->data;
    const std::size_t end = static_cast<std::size_t>(offset) + data.size();
    if (d.size() < end) d.resize(end, '\0');
    std::memcpy(d.data() + offset, data.data(), data.size());
    return status::ok();
  }

  status sync() override {
    std::lock_guard<std::mutex> g(t_->mu);  // fdatasync works on any descriptor
    return status::ok();
  }

  status write_back(uint64_t offset, uint64_t len) override {
    if (offset > static_cast<uint64_t>(INT64_MAX) || len > static_cast<uint64_t>(INT64_MAX))
      return os_error_at("sync_file_range", path_, offset, len, EINVAL);
    return status::ok();
  }

  status truncate(uint64_t size) override {
    std::lock_guard<std::mutex> g(t_->mu);
    // ftruncate: EINVAL on a descriptor not open for writing (and on a negative size).
    if (!writable_ || size > static_cast<uint64_t>(INT64_MAX))
      return os_error("truncate to " + std::to_string(size) + " bytes", path_, EINVAL);
    if (size > memory_file_system::max_file_size)
      return os_error("truncate to " + std::to_string(size) + " bytes", path_, EFBIG);
    n_->data.resize(static_cast<std::size_t>(size), '\0');
    return status::ok();
  }

  result<uint64_t> size() override {
    std::lock_guard<std::mutex> g(t_->mu);
    return n_->is_dir ? uint64_t{0} : static_cast<uint64_t>(n_->data.size());
  }

  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<tree> t_;
  std::shared_ptr<node> n_;  // stays valid after remove/rename, like an open descriptor
  std::string path_;
  bool writable_;
};

class memory_lock final : public file_lock {
 public:
  memory_lock(std::shared_ptr<tree> t, std::shared_ptr<node> n) : t_(std::move(t)), n_(std::move(n)) {}
  ~memory_lock() override {
    std::lock_guard<std::mutex> g(t_->mu);
    n_->locked = false;
  }

 private:
  std::shared_ptr<tree> t_;
  std::shared_ptr<node> n_;
};

// open(2) without the handle. Called with the mutex held.
int open_node(tree& t, const std::string& path, open_mode mode, std::shared_ptr<node>& out) {
  place p;
  if (int err = resolve(t, path, p)) return err;
  if (p.target) {
    if (mode == open_mode::create_new) return EEXIST;
    if (p.target->is_dir && mode != open_mode::read) return EISDIR;
    out = p.target->shared_from_this();
    return 0;
  }
  if (mode == open_mode::read || mode == open_mode::read_write) return ENOENT;
  if (p.trailing_slash) return EISDIR;
  auto n = std::make_shared<node>(false, p.dir);
  p.dir->entries.emplace(std::string(p.leaf), n);
  out = std::move(n);
  return 0;
}

// Resolves a path that must name a directory (opendir, open(O_DIRECTORY)).
int find_dir(tree& t, const std::string& path, node*& out) {
  place p;
  if (int err = resolve(t, path, p)) return err;
  if (!p.target) return ENOENT;
  if (!p.target->is_dir) return ENOTDIR;
  out = p.target;
  return 0;
}

// rename(2). Called with the mutex held.
int rename_node(tree& t, const std::string& from, const std::string& to) {
  place src, dst;
  if (int err = resolve(t, from, src)) return err;
  if (!src.target) return ENOENT;
  if (int err = resolve(t, to, dst)) {
    // "file" -> "missing/": the kernel reports ENOTDIR for a file source.
    return err;
  }
  if (src.leaf.empty() || dst.leaf.empty()) return src.target->is_dir ? EBUSY : EISDIR;
  const std::shared_ptr<node> moving = src.target->shared_from_this();
  if (!moving->is_dir && dst.trailing_slash) return dst.target ? EISDIR : ENOTDIR;
  if (dst.target == moving.get()) return 0;  // the same file: nothing to do
  if (moving->is_dir) {
    for (node* up = dst.dir;; up = up->parent) {  // no directory into its own subtree
      if (up == moving.get()) return EINVAL;
      if (up == up->parent) break;
    }
    if (dst.target && !dst.target->is_dir) return ENOTDIR;
    if (dst.target && !dst.target->entries.empty()) return ENOTEMPTY;
  } else if (dst.target && dst.target->is_dir) {
    return EISDIR;
  }
  const std::string leaf(dst.leaf);
  src.dir->entries.erase(src.dir->entries.find(src.leaf));
  dst.dir->entries.insert_or_assign(leaf, moving);
  moving->parent = dst.dir;
  return 0;
}

// unlink(2).
int remove_node(tree& t, const std::string& path) {
  place p;
  if (int err = resolve(t, path, p)) return err;
  if (!p.target) return ENOENT;
  if (p.target->is_dir || p.leaf.empty()) return EISDIR;
  p.dir->entries.erase(p.dir->entries.find(p.leaf));
  return 0;
}

// mkdir(2).
int make_dir(tree& t, const std::string& path) {
  place p;
  const int err = resolve(t, path, p);
  if (err == ENOTDIR && p.target) return EEXIST;  // "file/": the name exists
  if (err) return err;
  if (p.target) return EEXIST;
  p.dir->entries.emplace(std::string(p.leaf), std::make_shared<node>(true, p.dir));
  return 0;
}

}  // namespace

memory_file_system::memory_file_system() : t_(std::make_shared<tree>()) {}
memory_file_system::~memory_file_system() = default;

result<std::unique_ptr<file>> memory_file_system::open(const std::string& path, open_mode mode) {
  std::lock_guard<std::mutex> g(t_->mu);
  std::shared_ptr<node> n;
  if (int err = open_node(*t_, path, mode, n)) return os_error("open", path, err);
  return std::unique_ptr<file>(new memory_file(t_, std::move(n), path, mode != open_mode::read));
}

status memory_file_system::rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> g(t_->mu);
  if (int err = rename_node(*t_, from, to)) return os_error("rename to " + to, from, err);
  return status::ok();
}

status memory_file_system::remove(const std::string& path) {
  std::lock_guard<std::mutex> g(t_->mu);
  if (int err = remove_node(*t_, path)) return os_error("remove", path, err);
  return status::ok();
}

result<std::vector<std::string>> memory_file_system::list(const std::string& dir) {
  std::lock_guard<std::mutex> g(t_->mu);
  node* d = nullptr;
  if (int err = find_dir(*t_, dir, d)) return os_error("list directory", dir, err);
  std::vector<std::string> names;
  names.reserve(d->entries.size());
  for (const auto& e : d->entries) names.push_back(e.first);  // std::map: sorted already
  return names;
}

status memory_file_system::sync_dir(const std::string& dir) {
  std::lock_guard<std::mutex> g(t_->mu);
  node* d = nullptr;
  if (int err = find_dir(*t_, dir, d)) return os_error("open directory", dir, err);
  return status::ok();
}

status memory_file_system::create_dirs(const std::string& dir) {
  // The same recursion as posix_fs (and the same results for "a/../b", "x/", ...).
  if (dir.empty() || dir == "/" || dir == ".") return status::ok();
  const std::string parent = parent_dir(dir);
  if (parent != dir) SF_RETURN_IF_ERROR(create_dirs(parent));
  {
    std::lock_guard<std::mutex> g(t_->mu);
    if (int err = make_dir(*t_, dir)) {
      if (err != EEXIST) return os_error("create directory", dir, err);
      place p;
      if (resolve(*t_, dir, p) != 0 || !p.target || !p.target->is_dir)
        return {errc::already_exists, dir + " exists and is not a directory"};
    }
  }
  return sync_dir(parent);
}

result<bool> memory_file_system::exists(const std::string& path) {
  std::lock_guard<std::mutex> g(t_->mu);
  place p;
  const int err = resolve(*t_, path, p);
  if (err == 0) return p.target != nullptr;
  if (err == ENOENT) return false;
  return os_error("stat", path, err);
}

result<std::unique_ptr<file_lock>> memory_file_system::lock(const std::string& path) {
  std::lock_guard<std::mutex> g(t_->mu);
  std::shared_ptr<node> n;
  if (int err = open_node(*t_, path, open_mode::create, n))
    return os_error("open lock file", path, err);
  if (n->locked)
    return status{errc::locked, path + " is locked: another process (or another open "
                                       "engine in this process) owns this data directory"};
  n->locked = true;
  return std::unique_ptr<file_lock>(new memory_lock(t_, std::move(n)));
}

result<bool> memory_file_system::is_locked(const std::string& path) {
  std::lock_guard<std::mutex> g(t_->mu);
  std::shared_ptr<node> n;
  if (int err = open_node(*t_, path, open_mode::read, n)) {
    if (err == ENOENT) return false;
    return os_error("open lock file", path, err);
  }
  return n->locked;
}

}  // namespace statefold::testing
