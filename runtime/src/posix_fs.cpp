#include "statefold/file_system.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace statefold {

status os_error(const std::string& what, const std::string& path, int err) {
  errc code = err == ENOSPC || err == EDQUOT ? errc::no_space
              : err == ENOENT               ? errc::not_found
              : err == EEXIST               ? errc::already_exists
                                            : errc::io_error;
  return {code, what + " " + path + ": " + std::strerror(err)};
}

status os_error_at(const std::string& what, const std::string& path, uint64_t offset,
                   std::size_t n, int err) {
  return os_error(what, path + " at offset " + std::to_string(offset) + " (" +
                            std::to_string(n) + " bytes)",
                  err);
}

namespace {

class posix_file final : public file {
 public:
  posix_file(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~posix_file() override { ::close(fd_); }

  result<std::size_t> read_at(uint64_t offset, char* buf, std::size_t n) override {
    std::size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return os_error_at("read", path_, offset + done, n - done, errno);
      }
      if (r == 0) break;  // end of file
      done += static_cast<std::size_t>(r);
    }
    return done;
  }

  status write_at(uint64_t offset, std::string_view data) override {
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t r = ::pwrite(fd_, data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return os_error_at("write", path_, offset + done, data.size() - done, errno);
      }
      done += static_cast<std::size_t>(r);
    }
    return status::ok();
  }

  status sync() override {
    if (::fdatasync(fd_) != 0) return os_error("fdatasync", path_, errno);
    return status::ok();
  }

  status write_back(uint64_t offset, uint64_t len) override {
    const unsigned flags =
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(len), flags) != 0)
      return os_error_at("sync_file_range", path_, offset, len, errno);
    return status::ok();
  }

  status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return os_error("truncate to " + std::to_string(size) + " bytes", path_, errno);
    return status::ok();
  }

  result<uint64_t> size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return os_error("stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override { return path_; }

 private:
  int fd_;
  std::string path_;
};

class posix_lock final : public file_lock {
 public:
  explicit posix_lock(int fd) : fd_(fd) {}
  ~posix_lock() override { ::close(fd_); }  // closing the descriptor releases the lock

 private:
  int fd_;
};

class posix_fs final : public file_system {
 public:
  result<std::unique_ptr<file>> open(const std::string& path, open_mode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case open_mode::read: flags |= O_RDONLY; break;
      case open_mode::read_write: flags |= O_RDWR; break;
      case open_mode::create: flags |= O_RDWR | O_CREAT; break;
      case open_mode::create_new: flags |= O_RDWR | O_CREAT | O_EXCL; break;
    }
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return os_error("open", path, errno);
    return std::unique_ptr<file>(new posix_file(fd, path));
  }

  status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return os_error("rename to " + to, from, errno);
    return status::ok();
  }

  status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return os_error("remove", path, errno);
    return status::ok();
  }

  result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return os_error("list directory", dir, errno);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return os_error("list directory", dir, err);
    std::sort(names.begin(), names.end());
    return names;
  }

  status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_error("open directory", dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return os_error("fsync directory", dir, err);
    return status::ok();
  }

  status create_dirs(const std::string& dir) override {
    if (dir.empty() || dir == "/" || dir == ".") return status::ok();
    const std::string parent = parent_dir(dir);
    if (parent != dir) SF_RETURN_IF_ERROR(create_dirs(parent));
    if (::mkdir(dir.c_str(), 0755) != 0) {
      if (errno != EEXIST) return os_error("create directory", dir, errno);
      struct stat st;
      if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return {errc::already_exists, dir + " exists and is not a directory"};
    }
    // Sync the parent every time, not only after our own mkdir: if an earlier run created
    // the directory and died before this fsync, nobody else would ever make it durable.
    return sync_dir(parent);
  }

  result<bool> exists(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return os_error("stat", path, errno);
  }

  // An open file description (OFD) lock, fcntl(F_OFD_SETLK): like flock, held by the
  // descriptor and dropped when it closes, exclusive also between two descriptors of one
  // process; unlike flock, another process can test for it without taking it (is_locked).
  result<std::unique_ptr<file_lock>> lock(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return os_error("open lock file", path, errno);
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
    if (::fcntl(fd, F_OFD_SETLK, &l) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EAGAIN || err == EACCES)
        return status{errc::locked, path + " is locked: another process (or another open "
                                           "engine in this process) owns this data directory"};
      return os_error("fcntl(F_OFD_SETLK)", path, err);
    }
    return std::unique_ptr<file_lock>(new posix_lock(fd));
  }

  result<bool> is_locked(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return false;
      return os_error("open lock file", path, errno);
    }
    struct flock l {};
    l.l_type = F_RDLCK;  // would a reader's lock conflict? Only with a writer's.
    l.l_whence = SEEK_SET;
    const int rc = ::fcntl(fd, F_OFD_GETLK, &l);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return os_error("fcntl(F_OFD_GETLK)", path, err);
    return l.l_type != F_UNLCK;
  }
};

}  // namespace

file_system& posix_file_system() {
  static posix_fs fs;
  return fs;
}

result<std::string> file_system::read_file(const std::string& path) {
  SF_ASSIGN_OR_RETURN(auto f, open(path, open_mode::read));
  SF_ASSIGN_OR_RETURN(uint64_t n, f->size());
  std::string out(n, '\0');
  SF_ASSIGN_OR_RETURN(std::size_t got, f->read_at(0, out.data(), n));
  out.resize(got);
  return out;
}

status file_system::write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  {
    SF_ASSIGN_OR_RETURN(auto f, open(tmp, open_mode::create));
    SF_RETURN_IF_ERROR(f->truncate(0));
    SF_RETURN_IF_ERROR(f->write_at(0, data));
    SF_RETURN_IF_ERROR(f->sync());
  }
  SF_RETURN_IF_ERROR(rename(tmp, path));
  std::string dir = parent_dir(path);
  return sync_dir(dir.empty() ? "." : dir);
}

std::string path_join(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out(dir);
  if (out.back() != '/') out.push_back('/');
  out.append(name);
  return out;
}

std::string parent_dir(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace statefold
